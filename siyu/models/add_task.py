"""Add-by-phone tasks (主动添加): phone lists split into daily per-staff work."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class AddTaskStatus(StrEnum):
    PENDING = "pending"  # on a staff member's list for `due_on`
    REQUESTED = "requested"  # the staff member sent the friend request
    ADDED = "added"  # the customer became a friend (matched when the add arrived)
    FAILED = "failed"  # not found / refused, as marked by the staff member


class AddTaskList(WorkspaceScoped, Base):
    """An imported phone list and how it was split."""

    __tablename__ = "add_task_lists"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    source: Mapped[str | None] = mapped_column(String(100))
    """Where the phones came from: "淘宝老客", "短信回复"…"""
    channel_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("channels.id", ondelete="SET NULL"))
    greeting: Mapped[str] = mapped_column(String(500))
    """Suggested friend-request greeting shown to staff; may use {name}."""
    daily_limit: Mapped[int]
    """Most tasks per staff member per day (WeCom limits active adds)."""
    starts_on: Mapped[date]
    total_rows: Mapped[int] = mapped_column(default=0)
    duplicate_rows: Mapped[int] = mapped_column(default=0)
    """Rows dropped as repeats within the list or already friends in the pool."""
    invalid_rows: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class AddTask(WorkspaceScoped, Base):
    """One phone number to add, assigned to a staff member for a day."""

    __tablename__ = "add_tasks"
    __table_args__ = (
        UniqueConstraint("list_id", "phone"),
        Index("ix_add_tasks_staff_due", "staff_id", "due_on", "status"),
        Index("ix_add_tasks_ws_phone", "workspace_id", "phone"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("add_task_lists.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("staff.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(20))
    """E.164."""
    name: Mapped[str | None] = mapped_column(String(100))
    customer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="SET NULL"))
    """The pool customer with this phone, when there is one (known but not yet a friend)."""
    due_on: Mapped[date]
    status: Mapped[AddTaskStatus] = mapped_column(String(10), default=AddTaskStatus.PENDING)
    updated_at: Mapped[datetime | None]
    added_at: Mapped[datetime | None]
