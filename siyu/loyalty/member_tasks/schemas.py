"""Request shapes of member tasks (API and console share them)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from siyu.kit.schemas import Input
from siyu.models import LimitPeriod, TaskKind

MAX_TASK_POINTS = 1_000_000
"""No task pays more per completion: more is a typo."""


class TaskIn(Input):
    """A task as the operator defines it. Cross-field rules (check-in is daily, streak bonuses only
    for check-in, profile fields exist) are checked by `definitions.validate_task`."""

    key: Annotated[str, Field(min_length=1, max_length=50)]
    """Stable name used in URLs and by other areas (`complete_task(task_key=…)`); the check-in's is "check_in"."""
    kind: TaskKind
    name: Annotated[str, Field(min_length=1, max_length=100)]
    description: Annotated[str | None, Field(max_length=2000)] = None
    points: Annotated[int, Field(ge=0, le=MAX_TASK_POINTS)]
    limit_period: LimitPeriod = LimitPeriod.DAY
    limit_count: Annotated[int, Field(ge=1, le=100)] = 1
    streak_bonuses: dict[str, int] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    is_active: bool = True
    sort_order: Annotated[int, Field(ge=-10_000, le=10_000)] = 0


class CompletionIn(Input):
    ref: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    """What was done (a post id, a shared URL, an invitee): the same ref in the same period is a retry."""
