"""Request and response shapes of journeys and staff tasks (API and console share them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from siyu.kit.schemas import Input
from siyu.models import Journey, JourneyEnrolment, StaffTask

from .service import JourneyInput, JourneyStats


class JourneyIn(Input):
    """A journey. `trigger`, `steps` and `goal` are checked by the definition language, whose
    errors name a JSON path such as "$.steps[2].then" (docs/journeys.md lists every field)."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    trigger: Any
    steps: Any
    goal: Any = None
    channel_account_ids: Annotated[list[Any], Field(default_factory=list, max_length=100)]
    reentry: bool = False

    def as_input(self) -> JourneyInput:
        return JourneyInput(
            name=self.name,
            trigger=self.trigger,
            steps=self.steps,
            goal=self.goal,
            channel_account_ids=list(self.channel_account_ids),
            reentry=self.reentry,
        )


class JourneyRead(BaseModel):
    id: int
    name: str
    status: str
    trigger: dict[str, Any]
    steps: list[dict[str, Any]]
    goal: dict[str, Any] | None
    channel_account_ids: list[int]
    reentry: bool
    activated_at: datetime | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime


def journey_read(journey: Journey) -> JourneyRead:
    return JourneyRead(
        id=journey.id,
        name=journey.name,
        status=str(journey.status),
        trigger=journey.trigger,
        steps=journey.steps,
        goal=journey.goal,
        channel_account_ids=journey.channel_account_ids,
        reentry=journey.reentry,
        activated_at=journey.activated_at,
        created_by=journey.created_by,
        created_at=journey.created_at,
        updated_at=journey.updated_at,
    )


class EnrolmentRead(BaseModel):
    id: int
    customer_id: int
    entry_key: str
    status: str
    step_index: int
    next_run_at: datetime | None
    context: dict[str, Any]
    exit_reason: str | None
    enrolled_at: datetime
    finished_at: datetime | None


def enrolment_read(row: JourneyEnrolment) -> EnrolmentRead:
    return EnrolmentRead(
        id=row.id,
        customer_id=row.customer_id,
        entry_key=row.entry_key,
        status=str(row.status),
        step_index=row.step_index,
        next_run_at=row.next_run_at,
        context=row.context or {},
        exit_reason=row.exit_reason,
        enrolled_at=row.enrolled_at,
        finished_at=row.finished_at,
    )


class EnrolmentPage(BaseModel):
    items: list[EnrolmentRead]
    next_cursor: str | None


class StepStatsRead(BaseModel):
    index: int
    step_id: str
    type: str
    ran: int
    here: int
    outcomes: dict[str, int]
    sends: dict[str, int]


class JourneyStatsRead(BaseModel):
    enrolled: int
    by_status: dict[str, int]
    goal_met: int
    steps: list[StepStatsRead]


def stats_read(stats: JourneyStats) -> JourneyStatsRead:
    return JourneyStatsRead(
        enrolled=stats.enrolled,
        by_status=stats.by_status,
        goal_met=stats.goal_met,
        steps=[StepStatsRead(**vars(s)) for s in stats.steps],
    )


class StaffTaskRead(BaseModel):
    id: int
    staff_id: int | None
    customer_id: int | None
    source: str
    source_id: int
    title: str
    body: str
    script_id: int | None
    status: str
    due_at: datetime | None
    done_at: datetime | None
    created_at: datetime


def task_read(task: StaffTask) -> StaffTaskRead:
    return StaffTaskRead(
        id=task.id,
        staff_id=task.staff_id,
        customer_id=task.customer_id,
        source=task.source,
        source_id=task.source_id,
        title=task.title,
        body=task.body,
        script_id=task.script_id,
        status=str(task.status),
        due_at=task.due_at,
        done_at=task.done_at,
        created_at=task.created_at,
    )
