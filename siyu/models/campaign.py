"""Campaigns: broadcasts (群发) to a segment, and staff tasks that sends and SOP steps create."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, JsonDoc, WorkspaceScoped


class BroadcastStatus(StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    """The audience is over the approval threshold: an admin must approve before it sends."""
    SCHEDULED = "scheduled"
    """Approved (or small enough); planning starts at `scheduled_at`."""
    PLANNING = "planning"
    """Deliveries are being planned in batches (resumes from `planned_through` after a crash)."""
    SENDING = "sending"
    """Every delivery is planned; senders drain the queue."""
    DONE = "done"
    CANCELLED = "cancelled"


class QuietHoursMode(StrEnum):
    HOLD = "hold"
    """Deliveries falling in quiet hours wait for the window to open."""
    DROP = "drop"
    """They are suppressed with reason quiet_hours."""


class Broadcast(WorkspaceScoped, Base):
    """One message (with optional A/B variants) to a segment, with a holdout and a goal."""

    __tablename__ = "broadcasts"
    __table_args__ = (Index("ix_broadcasts_ws_status", "workspace_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[BroadcastStatus] = mapped_column(String(20), default=BroadcastStatus.DRAFT)
    segment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("segments.id"))
    channel_account_ids: Mapped[list[int]] = mapped_column(JsonDoc, default=list)
    """Channel accounts in preference order; with more than one, each customer gets the first that
    reaches them ("best available channel")."""
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    """[{"key": "A", "content_id": 3, "weight": 50}, …]; one entry without A/B testing."""
    holdout_pct: Mapped[int] = mapped_column(default=0)
    """Percent of the audience kept as a control group (0–50), chosen by a stable hash."""
    goal: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """{"type": "order" | "click" | "event", "days": 7, "event_type": "checkin"}."""
    brief: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The campaign brief: objective 目的, audience 对象, hook 抓手, mechanism 机制, path 路径."""
    priority: Mapped[int] = mapped_column(default=2)
    quiet_hours: Mapped[QuietHoursMode] = mapped_column(String(10), default=QuietHoursMode.HOLD)
    scheduled_at: Mapped[datetime | None]
    """When to send; None sends as soon as it is scheduled."""
    audience_size: Mapped[int | None]
    """The segment's size when the broadcast was submitted."""
    planned_through: Mapped[int] = mapped_column(BigInteger, default=0)
    """The highest customer id planned so far: planning resumes after it."""
    requested_by: Mapped[str | None] = mapped_column(String(200))
    approved_by: Mapped[str | None] = mapped_column(String(200))
    approved_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    planned_at: Mapped[datetime | None]
    """When planning finished."""
    finished_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StaffTaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class StaffTask(WorkspaceScoped, Base):
    """A to-do for a staff member: "send this to 张三", created by SOP steps and WeCom sends."""

    __tablename__ = "staff_tasks"
    __table_args__ = (Index("ix_staff_tasks_ws_staff_status", "workspace_id", "staff_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("staff.id", ondelete="SET NULL"))
    customer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(20))
    source_id: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    script_id: Mapped[int | None] = mapped_column(BigInteger)
    """The script (话术) the task suggests, when the step referenced one."""
    status: Mapped[StaffTaskStatus] = mapped_column(String(12), default=StaffTaskStatus.OPEN)
    due_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
