"""Coupons: templates (what a coupon is worth and when it may be used) and issued coupons with codes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, JsonDoc, WorkspaceScoped


class CouponKind(StrEnum):
    AMOUNT_OFF = "amount_off"
    """`value` fen off the order."""
    PERCENT_OFF = "percent_off"
    """`value` percent off (15 = 15% off, i.e. 八五折), capped by `max_discount_fen` when set."""
    FREE_SHIPPING = "free_shipping"
    GIFT = "gift"
    """A gift (`gift_name`) with the order."""


class CouponOffer(StrEnum):
    """The standing offers siyu issues by itself; `none` for coupons issued by hand, SOPs or broadcasts."""

    NONE = "none"
    FIRST_ORDER = "first_order"
    """New-customer first-order coupon, issued when a customer joins the pool."""
    BIRTHDAY = "birthday"
    MEMBER_DAY = "member_day"
    TIER_WELCOME = "tier_welcome"


class CouponTemplateStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class CouponTemplate(WorkspaceScoped, Base):
    """What a coupon is: value, threshold, validity, limits. Issued coupons copy their validity at issue."""

    __tablename__ = "coupon_templates"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[CouponKind] = mapped_column(String(20))
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    """Fen off for `amount_off`, percent off for `percent_off`, unused otherwise."""
    max_discount_fen: Mapped[int | None] = mapped_column(BigInteger)
    gift_name: Mapped[str | None] = mapped_column(String(100))
    threshold_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    """The order must pay at least this much before the discount (满 X 可用); 0 = no threshold."""
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    """Fixed validity window; when `valid_days` is set instead, each coupon is valid N days from issue."""
    valid_days: Mapped[int | None]
    per_customer_limit: Mapped[int] = mapped_column(default=1)
    total_stock: Mapped[int | None]
    """How many may ever be issued; None = unlimited."""
    issued_count: Mapped[int] = mapped_column(default=0)
    """Coupons issued so far; updated under the template's row lock so stock never oversells."""
    channels: Mapped[list[Any]] = mapped_column(JsonDoc, default=list)
    """Platforms where the coupon is usable (`Platform` values); empty = everywhere."""
    offer: Mapped[CouponOffer] = mapped_column(String(20), default=CouponOffer.NONE)
    offer_settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Offer parameters: member day `{"weekday": 3}` or `{"month_day": 8}`, tier welcome `{"tier_id": 2}`."""
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[CouponTemplateStatus] = mapped_column(String(10), default=CouponTemplateStatus.ACTIVE)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CouponState(StrEnum):
    ISSUED = "issued"
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    VOID = "void"


class Coupon(WorkspaceScoped, Base):
    """One issued coupon with a unique code."""

    __tablename__ = "coupons"
    __table_args__ = (
        UniqueConstraint("workspace_id", "code"),
        UniqueConstraint("workspace_id", "idempotency_key"),
        UniqueConstraint("template_id", "customer_id", "occasion", "slot"),
        Index("ix_coupons_customer_state", "customer_id", "state"),
        Index("ix_coupons_ws_state_expires", "workspace_id", "state", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    template_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("coupon_templates.id"), index=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    slot: Mapped[int]
    """1..per_customer_limit: the unique (template, customer, occasion, slot) key enforces the limit."""
    occasion: Mapped[str] = mapped_column(String(40), default="", server_default="")
    """What the limit counts within: "" = for life; a recurring offer's occasion ("member_day:2026-11-23",
    "birthday:2027") gives each occasion its own `per_customer_limit`."""
    state: Mapped[CouponState] = mapped_column(String(10), default=CouponState.ISSUED)
    source: Mapped[str] = mapped_column(String(100))
    """Why it was issued: "api", "offer:first_order", "journey:4:step:2", "broadcast:9", "reward:3"…"""
    idempotency_key: Mapped[str] = mapped_column(String(200))
    issued_at: Mapped[datetime]
    valid_from: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    redeemed_at: Mapped[datetime | None]
    order_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("orders.id", ondelete="SET NULL"))
    discount_fen: Mapped[int | None] = mapped_column(BigInteger)
    """What the coupon took off the order it was redeemed against."""
    voided_at: Mapped[datetime | None]
    void_reason: Mapped[str | None] = mapped_column(String(200))


class CouponEvent(WorkspaceScoped, Base):
    """Append-only history of a coupon: issued, redeemed, restored, expired, voided — each with why."""

    __tablename__ = "coupon_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    coupon_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("coupons.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    """"issued", "redeemed", "restored", "expired", "voided"."""
    reason: Mapped[str | None] = mapped_column(String(200))
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    actor: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime]
