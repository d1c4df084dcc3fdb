"""SOPs and journeys: a trigger, then timed steps per customer; enrolment state in the database."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, JsonDoc, WorkspaceScoped


class JourneyStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


class Journey(WorkspaceScoped, Base):
    """A per-customer SOP: `trigger` enrols customers, `steps` run in order, `goal` exits them."""

    __tablename__ = "journeys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[JourneyStatus] = mapped_column(String(12), default=JourneyStatus.DRAFT)
    trigger: Mapped[dict[str, Any]]
    """{"type": "relationship_added" | "group_joined" | "tag_added" | "segment_entered" | "first_order"
    | "product_ordered" | "birthday" | "inactive", …params}."""
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc)
    """Step list: {"id", "type": "wait" | "branch" | "split" | "send" | "tag" | "untag" | "coupon"
    | "task" | "exit", …}; branches name the step ids they jump to."""
    goal: Mapped[dict[str, Any] | None]
    """Exit when met: {"type": "order" | "event" | "segment", …}."""
    channel_account_ids: Mapped[list[int]] = mapped_column(JsonDoc, default=list)
    """Channel preference for the journey's send steps."""
    reentry: Mapped[bool] = mapped_column(default=False)
    """May a customer enter again after leaving (each entry has its own key)?"""
    watermark: Mapped[int] = mapped_column(BigInteger, default=0)
    """The last trigger row (event / membership change id) already considered for enrolment."""
    activated_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class EnrolmentStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    EXITED = "exited"
    """Left early: goal met, or an exit step."""
    FAILED = "failed"


class JourneyEnrolment(WorkspaceScoped, Base):
    """One customer's pass through a journey; the unique entry key makes enrolment happen once."""

    __tablename__ = "journey_enrolments"
    __table_args__ = (
        UniqueConstraint("journey_id", "customer_id", "entry_key"),
        Index("ix_journey_enrolments_due", "status", "next_run_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    journey_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("journeys.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    entry_key: Mapped[str] = mapped_column(String(80))
    """What enrolled them: the trigger row ("event:123"), or "birthday:2026" for yearly triggers."""
    status: Mapped[EnrolmentStatus] = mapped_column(String(12), default=EnrolmentStatus.ACTIVE)
    step_index: Mapped[int] = mapped_column(default=0)
    """The next step to run (index into the journey's steps)."""
    next_run_at: Mapped[datetime | None]
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """What steps remember: the split arm, the product that triggered it…"""
    exit_reason: Mapped[str | None] = mapped_column(String(40))
    enrolled_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class JourneyStepRun(WorkspaceScoped, Base):
    """A step an enrolment has run: the unique key stops a resumed run from acting twice."""

    __tablename__ = "journey_step_runs"
    __table_args__ = (UniqueConstraint("enrolment_id", "step_index"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("journey_enrolments.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("journeys.id", ondelete="CASCADE"), index=True)
    step_index: Mapped[int]
    step_id: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(40))
    """"sent", "waited", "branch:yes", "split:B", "tagged", "task", "exited"…"""
    ran_at: Mapped[datetime]
