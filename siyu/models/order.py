"""Orders from any platform. The commerce issue adds items, refunds and coupons."""

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
