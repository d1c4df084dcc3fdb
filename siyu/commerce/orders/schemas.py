"""The order shapes every ingestion path (API, batch, CSV/XLSX import, webhook) hands to `ingest`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator, model_validator

from siyu.customers.schemas import IdentityIn
from siyu.kit.schemas import Input
from siyu.models import Platform

MAX_FEN = 10**13
"""100 billion yuan: anything larger is a unit mistake (yuan × 100 × 100), not an order."""


class OrderItemIn(Input):
    """One line: the SKU, how many, and what the line cost after discounts (fen)."""

    sku: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    """Product name; taken from the product catalogue when the SKU is known and this is empty."""
    category: str | None = Field(default=None, max_length=100)
    quantity: int = Field(default=1, ge=1, le=100_000)
    amount_fen: int = Field(ge=0, le=MAX_FEN)


class OrderIn(Input):
    """An order from any platform. `(platform, external_id)` is its idempotency key: sending it again
    with the same content changes nothing; with other amounts or items it is refused."""

    platform: Platform
    external_id: str = Field(min_length=1, max_length=100)
    customer_id: int | None = None
    """The siyu customer, when the caller knows it; otherwise the buyer is resolved by identities."""
    identities: list[IdentityIn] = Field(default_factory=list, max_length=20)
    """The buyer's identities: phone, the platform's buyer id (taobao_nick, jd_pin, youzan_id, openid…)."""
    buyer_name: str | None = Field(default=None, max_length=100)
    total_fen: int = Field(ge=0, le=MAX_FEN)
    """What the buyer paid: the items' amounts plus shipping."""
    discount_fen: int = Field(default=0, ge=0, le=MAX_FEN)
    shipping_fen: int = Field(default=0, ge=0, le=MAX_FEN)
    paid_at: datetime
    items: list[OrderItemIn] = Field(min_length=1, max_length=500)
    staff_code: str | None = Field(default=None, max_length=64)
    store_code: str | None = Field(default=None, max_length=50)
    campaign: str | None = Field(default=None, max_length=100)
    coupon_code: str | None = Field(default=None, max_length=64)
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("paid_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("paid_at needs a time zone (e.g. 2026-11-23T10:00:00+08:00)")
        return value

    @model_validator(mode="after")
    def _adds_up(self) -> OrderIn:
        lines = sum(item.amount_fen for item in self.items)
        if lines + self.shipping_fen != self.total_fen:
            raise ValueError(
                f"items ({lines} fen) plus shipping ({self.shipping_fen} fen) "
                f"must equal total_fen ({self.total_fen} fen)"
            )
        if self.customer_id is None and not self.identities:
            raise ValueError("give customer_id or at least one identity of the buyer")
        return self
