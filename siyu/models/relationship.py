"""Staff–customer relationships (friend edges on WeCom)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class RemovedBy(StrEnum):
    CUSTOMER = "customer"  # the customer deleted the staff member (删粉)
    STAFF = "staff"  # the staff member deleted the customer
    TRANSFERRED = "transferred"  # handed to another staff member (在职/离职继承): not a deletion


class Relationship(WorkspaceScoped, Base):
    """A friend edge between a staff member and a customer, open while `removed_at` is null.

    Pool size counts open edges; deletion rate counts edges closed per period.
    """

    __tablename__ = "relationships"
    __table_args__ = (
        Index("ix_relationships_ws_staff_open", "workspace_id", "staff_id", "removed_at"),
        Index("ix_relationships_ws_added", "workspace_id", "added_at"),
        Index("ix_relationships_ws_channel_added", "workspace_id", "channel_id", "added_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("staff.id"), index=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    added_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]
    removed_by: Mapped[RemovedBy | None] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(100))
    """A free-text source label (imports from other systems); `channel_id` is the attributed channel."""
    channel_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("channels.id", ondelete="SET NULL"))
    """The acquisition channel the add is attributed to (first-/last-touch reports read this)."""
    live_code_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("live_codes.id", ondelete="SET NULL"))
    variant: Mapped[str | None] = mapped_column(String(20))
    """The experiment variant decoded from the live code state, when the code ran an experiment."""
    wecom_seen_at: Mapped[datetime | None]
    """When a WeCom full sync last saw this edge; edges of a synced staff member not seen by the run
    that just finished are gone on WeCom."""
    wecom_remark: Mapped[str | None] = mapped_column(String(100))
    """The staff member's remark (备注) on this customer in WeCom, as the last callback or sync reported it."""
    live_code_state: Mapped[str | None] = mapped_column(String(30))
    """The live code `state` (≤30 chars, WeCom's limit) the customer scanned."""
