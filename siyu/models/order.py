"""Commerce: products, orders from any platform, their items, refunds, and orders waiting for a customer."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, JsonDoc, WorkspaceScoped


class Platform(StrEnum):
    """Where an order was placed."""

    TAOBAO = "taobao"
    JD = "jd"
    YOUZAN = "youzan"
    MINIPROGRAM = "miniprogram"
    POS = "pos"
    DOUYIN = "douyin"
    OTHER = "other"


class OrderStatus(StrEnum):
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class OrderSource(StrEnum):
    """How the order reached siyu."""

    API = "api"
    IMPORT = "import"
    WEBHOOK = "webhook"
    DEMO = "demo"


class UnknownCustomerPolicy(StrEnum):
    """What to do with an order whose buyer matches no customer."""

    CREATE = "create"
    """Create the customer from the order's identities (the default)."""
    PARK = "park"
    """Keep the order in `parked_orders` until the customer appears, then ingest it."""


class Product(WorkspaceScoped, Base):
    """A product (SKU) the brand sells; order items refer to it by SKU."""

    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("workspace_id", "sku"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(100))
    price_fen: Mapped[int] = mapped_column(BigInteger)
    repurchase_cycle_days: Mapped[int | None]
    """Typical days between two purchases of this product (a 30-day supply: 30); drives reminders."""
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Order(WorkspaceScoped, Base):
    """A paid order. GMV is `total_fen - refunded_fen`."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("workspace_id", "platform", "external_id"),
        Index("ix_orders_customer_paid", "customer_id", "paid_at"),
        Index("ix_orders_ws_paid", "workspace_id", "paid_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(20))
    """A `Platform` value: "taobao", "jd", "youzan", "miniprogram", "pos", "douyin", "other"."""
    external_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[OrderStatus] = mapped_column(String(20), default=OrderStatus.PAID)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    """What the customer paid, after discounts, shipping included."""
    discount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    """Discounts already taken off `total_fen` (coupons, promotions), for reporting."""
    shipping_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_at: Mapped[datetime]
    created_at: Mapped[datetime]
    """When siyu wrote the order (journey triggers on orders read it), not when it was paid."""
    source: Mapped[str] = mapped_column(String(20), default=OrderSource.API)
    staff_code: Mapped[str | None] = mapped_column(String(64))
    """The staff attribution code the shop recorded (导购码), as given."""
    staff_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("staff.id", ondelete="SET NULL"))
    """The staff member `staff_code` resolved to, if any."""
    store_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("stores.id", ondelete="SET NULL"))
    campaign: Mapped[str | None] = mapped_column(String(100))
    """Campaign reference (utm_campaign, broadcast id "broadcast:12"…)."""
    coupon_code: Mapped[str | None] = mapped_column(String(64))
    """The siyu coupon code used, if any; redeemed when the order is ingested."""
    pool_sequence: Mapped[int | None]
    """1 for the customer's first order inside the private domain (首单), 2+ for repurchases (复购);
    None for orders paid before the customer joined the pool."""
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    """Hash of the order's amounts and items: a resubmission with another hash is a conflict, not a retry."""
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Extra fields from the platform (buyer remark, shop name…)."""


class OrderItem(WorkspaceScoped, Base):
    """One line of an order: what was bought. Segments filter on SKU and category."""

    __tablename__ = "order_items"
    __table_args__ = (
        Index("ix_order_items_ws_sku", "workspace_id", "sku", "customer_id"),
        Index("ix_order_items_ws_category", "workspace_id", "category", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    """The order's customer, repeated here so "bought X" needs no join (follows merges with the order)."""
    sku: Mapped[str] = mapped_column(String(64))
    product_name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(default=1)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    """What the line cost after discounts, in fen."""
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_quantity: Mapped[int] = mapped_column(default=0, server_default="0")
    """Pieces of the line refunded so far (refunds by item); at most `quantity`."""


class Refund(WorkspaceScoped, Base):
    """A refund of part or all of an order. Rows are only added; the order's `refunded_fen` is their sum."""

    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("workspace_id", "order_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(100))
    """The platform's refund id; the idempotency key of the refund within its order."""
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    items: Mapped[list[Any] | None] = mapped_column(JsonDoc)
    """Refunded lines as `[{"sku", "quantity", "amount_fen"}]`; None when the refund is not per line."""
    reason: Mapped[str | None] = mapped_column(String(200))
    refunded_at: Mapped[datetime]
    created_at: Mapped[datetime]


class ParkedOrder(WorkspaceScoped, Base):
    """An order whose buyer matched no customer while the policy is `park`; ingested once they appear."""

    __tablename__ = "parked_orders"
    __table_args__ = (UniqueConstraint("workspace_id", "platform", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    """The order as submitted (the API's `OrderIn` shape)."""
    identities: Mapped[str] = mapped_column(Text, default="")
    """Normalised identities "type:value" one per line, to find the order when a customer appears."""
    reason: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20), default=OrderSource.API, server_default="api")
    """How the order reached siyu (`OrderSource`); the order keeps it when it is finally ingested."""
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    order_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("orders.id", ondelete="SET NULL"))


class CommerceSettings(WorkspaceScoped, Base):
    """One row per workspace: how orders are ingested."""

    __tablename__ = "commerce_settings"
    __table_args__ = (UniqueConstraint("workspace_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    unknown_customer: Mapped[UnknownCustomerPolicy] = mapped_column(String(10), default=UnknownCustomerPolicy.CREATE)
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    """The order webhook's HMAC secret as a Fernet token (see `siyu.messaging.crypto`)."""
    restore_coupon_on_refund: Mapped[bool] = mapped_column(default=True)
    """A fully refunded order gives its coupon back if the coupon is still within its validity."""
    updated_at: Mapped[datetime]
