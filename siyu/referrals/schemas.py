"""Request shapes of referral programs (the API and the console share them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, model_validator

from siyu.kit.ids import DbId
from siyu.kit.schemas import Input
from siyu.models import ProgramKind, ReferralCondition

MAX_POINTS = 1_000_000


class RewardSpecIn(Input):
    """One reward: points, a coupon of a template, or a mall reward given without points; at most one."""

    points: Annotated[int | None, Field(ge=1, le=MAX_POINTS)] = None
    coupon_template_id: DbId | None = None
    reward_id: DbId | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> RewardSpecIn:
        given = [v for v in (self.points, self.coupon_template_id, self.reward_id) if v is not None]
        if len(given) > 1:
            raise ValueError("give one of points, coupon_template_id, reward_id")
        return self

    def as_dict(self) -> dict[str, int]:
        """The stored shape: `{}` or one key."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class UnlockIn(Input):
    """A tiered unlock: at `threshold` qualified referrals the referrer gets `reward` once."""

    threshold: Annotated[int, Field(ge=1, le=10_000)]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    reward: RewardSpecIn


class _ProgramFields(Input):
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    eligible_segment_id: DbId | None = None
    eligible_tier_ids: Annotated[list[DbId], Field(max_length=50)] = Field(default_factory=list)
    condition: ReferralCondition = ReferralCondition.ADDED_STAFF
    min_order_fen: Annotated[int, Field(ge=0, le=10_000_000_000)] = 0
    live_code_id: DbId | None = None
    group_id: DbId | None = None
    target_count: Annotated[int, Field(ge=0, le=10_000)] = 0
    referrer_reward: RewardSpecIn = Field(default_factory=RewardSpecIn)
    referee_reward: RewardSpecIn = Field(default_factory=RewardSpecIn)
    attribution_days: Annotated[int, Field(ge=1, le=365)] = 7
    daily_cap_per_referrer: Annotated[int | None, Field(ge=1, le=100_000)] = None
    burst_threshold: Annotated[int | None, Field(ge=2, le=100_000)] = None
    burst_window_minutes: Annotated[int, Field(ge=1, le=10_080)] = 60
    point_cost_fen: Annotated[int, Field(ge=0, le=100_000)] = 1
    poster_title: Annotated[str, Field(max_length=60)] = ""
    poster_text: Annotated[str, Field(max_length=200)] = ""
    unlocks: Annotated[list[UnlockIn], Field(max_length=20)] = Field(default_factory=list)


class ProgramIn(_ProgramFields):
    """A new program (created as a draft)."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    kind: ProgramKind = ProgramKind.REFERRAL


class ProgramPatch(Input):
    """A change to a program: only the fields given change; `unlocks`, when given, replaces them all.
    The kind is fixed once created."""

    name: Annotated[str | None, Field(min_length=1, max_length=100)] = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    eligible_segment_id: DbId | None = None
    eligible_tier_ids: Annotated[list[DbId] | None, Field(max_length=50)] = None
    condition: ReferralCondition | None = None
    min_order_fen: Annotated[int | None, Field(ge=0, le=10_000_000_000)] = None
    live_code_id: DbId | None = None
    group_id: DbId | None = None
    target_count: Annotated[int | None, Field(ge=0, le=10_000)] = None
    referrer_reward: RewardSpecIn | None = None
    referee_reward: RewardSpecIn | None = None
    attribution_days: Annotated[int | None, Field(ge=1, le=365)] = None
    daily_cap_per_referrer: Annotated[int | None, Field(ge=1, le=100_000)] = None
    burst_threshold: Annotated[int | None, Field(ge=2, le=100_000)] = None
    burst_window_minutes: Annotated[int | None, Field(ge=1, le=10_080)] = None
    point_cost_fen: Annotated[int | None, Field(ge=0, le=100_000)] = None
    poster_title: Annotated[str | None, Field(max_length=60)] = None
    poster_text: Annotated[str | None, Field(max_length=200)] = None
    unlocks: Annotated[list[UnlockIn] | None, Field(max_length=20)] = None


class StatusIn(Input):
    status: Annotated[str, Field(min_length=1, max_length=10)]


class ReviewIn(Input):
    approve: bool
    note: Annotated[str, Field(max_length=200)] = ""
