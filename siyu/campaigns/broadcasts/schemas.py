"""Request shapes of broadcasts (API and console share them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator

from siyu.kit.schemas import Input
from siyu.models import QuietHoursMode

Text100 = Annotated[str, Field(min_length=1, max_length=100)]


class VariantIn(Input):
    key: Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9_-]+$")]
    content_id: int
    weight: Annotated[int, Field(ge=0, le=100)] = 50


class GoalIn(Input):
    type: Literal["order", "click", "event"]
    days: Annotated[int, Field(ge=1, le=90)] = 7
    event_type: Annotated[str | None, Field(max_length=60)] = None
    """For type "event": the event that counts, e.g. "checkin"."""


class BriefIn(Input):
    """The campaign brief (目的 · 对象 · 抓手 · 机制 · 路径)."""

    objective: Annotated[str, Field(max_length=500)] = ""
    audience: Annotated[str, Field(max_length=500)] = ""
    hook: Annotated[str, Field(max_length=500)] = ""
    mechanism: Annotated[str, Field(max_length=500)] = ""
    path: Annotated[str, Field(max_length=500)] = ""


class BroadcastIn(Input):
    name: Text100
    segment_id: int
    channel_account_ids: Annotated[list[int], Field(min_length=1, max_length=5)]
    variants: Annotated[list[VariantIn], Field(min_length=1, max_length=5)]
    holdout_pct: Annotated[int, Field(ge=0, le=50)] = 0
    goal: GoalIn | None = None
    brief: BriefIn = Field(default_factory=BriefIn)
    quiet_hours: QuietHoursMode = QuietHoursMode.HOLD
    scheduled_at: datetime | None = None
    coupon_template_id: Annotated[int | None, Field(gt=0)] = None
    """Issue every recipient a coupon of this template (key `broadcast:{id}:c{customer}`); the
    content's `{{ coupon_code }}` is the recipient's code."""

    @field_validator("variants")
    @classmethod
    def _distinct_keys(cls, value: list[VariantIn]) -> list[VariantIn]:
        keys = [v.key for v in value]
        if len(set(keys)) != len(keys):
            raise ValueError("variant keys must be distinct")
        return value

    @field_validator("channel_account_ids")
    @classmethod
    def _distinct_accounts(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("a channel account appears twice")
        return value

    @field_validator("scheduled_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-11-24T20:00:00+08:00")
        return value
