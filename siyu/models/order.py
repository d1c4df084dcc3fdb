"""Orders from any platform and their items. The commerce issue adds products, refunds and coupons."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class OrderStatus(StrEnum):
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


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
    """"taobao", "jd", "youzan", "miniprogram", "pos", "other"."""
    external_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[OrderStatus] = mapped_column(String(20), default=OrderStatus.PAID)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_at: Mapped[datetime]
    created_at: Mapped[datetime]


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
