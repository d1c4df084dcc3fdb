"""The customer timeline: append-only behaviour events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class CustomerEvent(WorkspaceScoped, Base):
    """Something a customer did or that happened to them. Rows are only ever added."""

    __tablename__ = "customer_events"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key"),
        Index("ix_customer_events_customer_time", "customer_id", "occurred_at"),
        # customer_id last: segment conditions ("event T ≥ 3 times in 30 days") group by customer
        # straight from the index, without touching the table.
        Index("ix_customer_events_ws_type_time", "workspace_id", "type", "occurred_at", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(60))
    """Dotted event name: "page.view", "relationship.added", "consent.changed", "order.paid"…"""
    occurred_at: Mapped[datetime]
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(40))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    """Retried ingestion with the same key records the event once."""
    recorded_at: Mapped[datetime]
