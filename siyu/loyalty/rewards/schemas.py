"""Request shapes of the rewards mall (API and console share them)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from siyu.kit.ids import DbId
from siyu.kit.schemas import Input
from siyu.models import RewardKind

MAX_PRICE = 100_000_000


class RewardIn(Input):
    """A reward as the operator defines it; references and kind rules are checked by `catalog.validate_reward`."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    kind: RewardKind
    points_price: Annotated[int, Field(ge=0, le=MAX_PRICE)]
    stock: Annotated[int | None, Field(ge=0, le=100_000_000)] = None
    """Left to redeem; None = unlimited."""
    per_member_limit: Annotated[int | None, Field(ge=1, le=1000)] = None
    visible_tier_ids: Annotated[list[DbId], Field(max_length=50)] = Field(default_factory=list)
    visible_segment_id: DbId | None = None
    coupon_template_id: DbId | None = None
    lottery_draw_id: DbId | None = None
    """A lottery-entry reward: the draw a redemption enters (optional; without one it is only recorded)."""
    description: Annotated[str | None, Field(max_length=5000)] = None
    image_url: Annotated[str | None, Field(max_length=500)] = None
    is_active: bool = True
    sort_order: Annotated[int, Field(ge=-10_000, le=10_000)] = 0


class AddressIn(Input):
    name: Annotated[str, Field(max_length=50)] = ""
    phone: Annotated[str, Field(max_length=30)] = ""
    address: Annotated[str, Field(max_length=300)] = ""


class RedemptionIn(Input):
    reward_id: DbId
    idempotency_key: Annotated[str, Field(min_length=1, max_length=150)]
    """The client's key for this redemption: a retry with it returns the first redemption."""
    address: AddressIn | None = None
    """Physical gifts: where to ship (name, phone, address)."""


class ShipIn(Input):
    tracking_no: Annotated[str, Field(min_length=1, max_length=100)]


class CancelIn(Input):
    reason: Annotated[str | None, Field(max_length=200)] = None
