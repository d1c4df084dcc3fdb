"""Shapes of the loyalty program settings and of a tier, as the API and the console send them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from siyu.kit.ids import MAX_ID
from siyu.models import ExpiryPolicy, ReviewPeriod, TierBasis, TierWindow


class ProgramIn(BaseModel):
    """How points are earned and expire, and how tiers qualify and are reviewed."""

    model_config = ConfigDict(extra="forbid")

    points_per_yuan: int = Field(ge=0, le=1000, description="Points per yuan of net spend, before the tier multiplier.")
    expiry_policy: ExpiryPolicy
    expiry_n: int = Field(ge=0, le=120, description="Days (days), months (month_end) or years (year_end).")
    expiring_notice_days: int = Field(default=30, ge=1, le=365)
    tier_basis: TierBasis
    tier_window: TierWindow
    tier_window_days: int = Field(default=365, ge=1, le=3660)
    review_period: ReviewPeriod
    grace_days: int = Field(default=30, ge=0, le=365)


class TierBenefits(BaseModel):
    """What a tier gives; every key is optional."""

    model_config = ConfigDict(extra="forbid")

    member_price_pct: int | None = Field(default=None, ge=1, le=100, description="Member price as % of list price.")
    free_shipping: bool | None = None
    priority_service: bool | None = None
    birthday_coupon_template_id: int | None = Field(default=None, gt=0, le=MAX_ID)
    welcome_coupon_template_ids: list[int] | None = Field(default=None, max_length=20)


class TierIn(BaseModel):
    """A tier. Rank 0 is the base tier (earned, threshold 0); earned tiers' thresholds rise with rank;
    a paid tier has a price and a validity and no threshold."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=50)
    rank: int = Field(ge=0, le=100)
    threshold: int = Field(default=0, ge=0, le=10**13, description="Fen or points, per the program's basis.")
    is_paid: bool = False
    price_fen: int | None = Field(default=None, gt=0, le=10**11)
    validity_days: int | None = Field(default=None, gt=0, le=3660)
    points_multiplier_pct: int = Field(default=100, ge=0, le=1000, description="150 = 1.5× purchase points.")
    benefits: TierBenefits = Field(default_factory=TierBenefits)
    color: str | None = Field(default=None, max_length=20)
