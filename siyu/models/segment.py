"""Segments: saved audiences (dynamic definitions or static member lists) and their history."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, JsonDoc, WorkspaceScoped


class SegmentKind(StrEnum):
    DYNAMIC = "dynamic"  # the definition is evaluated whenever the segment is used
    STATIC = "static"  # a fixed member list: a snapshot or an uploaded list of identities


class MembershipChange(StrEnum):
    ENTERED = "entered"
    LEFT = "left"


class Segment(WorkspaceScoped, Base):
    """A named audience. Broadcasts, SOPs, offers and reports refer to segments by id."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500))
    kind: Mapped[SegmentKind] = mapped_column(String(10))
    definition: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    """The filter tree (see docs/segments.md). Static segments keep the one they were snapshotted from, if any."""
    version: Mapped[int] = mapped_column(default=1)
    """Bumped on every change of the definition; each version is kept in `segment_versions`."""
    is_tracked: Mapped[bool] = mapped_column(default=False)
    """Dynamic segments only: keep current members in `segment_members` and record who entered and left."""
    member_count: Mapped[int | None]
    """The size at `counted_at`: exact for static segments, the last evaluation for dynamic ones."""
    counted_at: Mapped[datetime | None]
    refreshed_at: Mapped[datetime | None]
    """When a tracked segment's membership was last fully recomputed."""
    source: Mapped[str | None] = mapped_column(String(200))
    """How a static segment was made: "snapshot:<segment id>", "upload:<file name>"."""
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]
    """Archived segments are hidden from lists and pickers; references to them keep working."""


class SegmentVersion(WorkspaceScoped, Base):
    """One saved version of a dynamic segment's definition (rows are only ever added)."""

    __tablename__ = "segment_versions"
    __table_args__ = (UniqueConstraint("segment_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    segment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("segments.id", ondelete="CASCADE"))
    version: Mapped[int]
    definition: Mapped[dict[str, Any]]
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class SegmentMember(WorkspaceScoped, Base):
    """A member of a static segment, or a current member of a tracked dynamic segment."""

    __tablename__ = "segment_members"
    __table_args__ = (
        UniqueConstraint("segment_id", "customer_id"),
        Index("ix_segment_members_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    segment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("segments.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    added_at: Mapped[datetime]


class SegmentMembershipEvent(WorkspaceScoped, Base):
    """Who entered or left a tracked segment, and when. Feeds "enters segment" SOP triggers."""

    __tablename__ = "segment_membership_events"
    __table_args__ = (
        Index("ix_segment_membership_events_segment_time", "segment_id", "occurred_at"),
        Index("ix_segment_membership_events_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    segment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("segments.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    change: Mapped[MembershipChange] = mapped_column(String(10))
    occurred_at: Mapped[datetime]
    trigger: Mapped[str] = mapped_column(String(20))
    """What noticed the change: "refresh" (a scheduled or manual sweep) or "customer" (an event or order)."""


class SegmentSizePoint(WorkspaceScoped, Base):
    """A segment's size on one brand-local day (the last count of the day), for trend lines."""

    __tablename__ = "segment_size_points"
    __table_args__ = (UniqueConstraint("segment_id", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    segment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("segments.id", ondelete="CASCADE"))
    day: Mapped[date]
    size: Mapped[int]
