"""Request shapes of coupon templates and coupons (API and console share them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from siyu.commerce.orders.schemas import MAX_FEN
from siyu.kit.schemas import Input
from siyu.models import CouponKind, CouponOffer, Platform

Fen = Annotated[int, Field(ge=0, le=MAX_FEN)]


class CouponTemplateIn(Input):
    """A coupon template. Validity is either fixed (`valid_from`/`valid_until`) or `valid_days`
    brand-local days from issue."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    kind: CouponKind
    value: Fen = 0
    """Fen off (amount_off) or percent off, 1–99 (percent_off: 15 = 15% off)."""
    max_discount_fen: Fen | None = None
    gift_name: Annotated[str | None, Field(max_length=100)] = None
    threshold_fen: Fen = 0
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    valid_days: Annotated[int | None, Field(ge=1, le=3650)] = None
    per_customer_limit: Annotated[int, Field(ge=1, le=100)] = 1
    total_stock: Annotated[int | None, Field(ge=0, le=100_000_000)] = None
    channels: list[Platform] = Field(default_factory=list, max_length=10)
    offer: CouponOffer = CouponOffer.NONE
    offer_settings: dict[str, Any] = Field(default_factory=dict)
    description: Annotated[str | None, Field(max_length=2000)] = None

    @field_validator("valid_from", "valid_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-12-01T00:00:00+08:00")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CouponTemplateIn:
        if self.kind == CouponKind.AMOUNT_OFF and self.value < 1:
            raise ValueError("value: an amount-off coupon takes at least 1 fen off")
        if self.kind == CouponKind.PERCENT_OFF and not 1 <= self.value <= 99:
            raise ValueError("value: percent off must be between 1 and 99")
        if self.kind == CouponKind.GIFT and not (self.gift_name or "").strip():
            raise ValueError("gift_name: a gift coupon names its gift")
        if self.valid_days is not None and (self.valid_from is not None or self.valid_until is not None):
            raise ValueError("valid_days: give either valid_days or fixed dates, not both")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels: a platform appears twice")
        return self


class CouponIssueIn(Input):
    """Issue one coupon to a customer (`customer_id` + `idempotency_key`) or one to every member
    of a segment (`segment_id`, as a job)."""

    template_id: int = Field(gt=0)
    customer_id: int | None = Field(default=None, gt=0)
    segment_id: int | None = Field(default=None, gt=0)
    idempotency_key: Annotated[str | None, Field(min_length=1, max_length=150)] = None

    @model_validator(mode="after")
    def _one_target(self) -> CouponIssueIn:
        if (self.customer_id is None) == (self.segment_id is None):
            raise ValueError("give customer_id or segment_id")
        if self.customer_id is not None and self.idempotency_key is None:
            raise ValueError("idempotency_key: required when issuing to a customer")
        return self


class CouponRedeemIn(Input):
    order_id: int = Field(gt=0)


class CouponVoidIn(Input):
    reason: Annotated[str, Field(min_length=1, max_length=200)]
