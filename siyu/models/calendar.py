"""Calendars: group SOP posts (社群 SOP), moments (朋友圈) per staff persona, and the script library (话术)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, JsonDoc, WorkspaceScoped


class Slot(StrEnum):
    MORNING = "morning"
    NOON = "noon"
    EVENING = "evening"


class GroupCalendar(WorkspaceScoped, Base):
    """A weekly plan of posts for a set of community groups."""

    __tablename__ = "group_calendars"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    group_ids: Mapped[list[int]] = mapped_column(JsonDoc, default=list)
    channel_account_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("channel_accounts.id", ondelete="SET NULL")
    )
    slot_times: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """{"morning": "08:30", "noon": "12:00", "evening": "20:00"} in the brand's time zone."""
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class GroupCalendarEntry(WorkspaceScoped, Base):
    """One slot of the weekly plan: on these weekdays at this slot, post this content."""

    __tablename__ = "group_calendar_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    calendar_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("group_calendars.id", ondelete="CASCADE"))
    weekdays: Mapped[list[int]] = mapped_column(JsonDoc, default=list)
    """ISO weekdays 1 (Monday) … 7 (Sunday)."""
    slot: Mapped[Slot] = mapped_column(String(10))
    content_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("content_items.id"))


class GroupPost(WorkspaceScoped, Base):
    """A group SOP post made for one group on one day's slot: unique, so a sweep posts it once."""

    __tablename__ = "group_posts"
    __table_args__ = (UniqueConstraint("entry_id", "group_id", "post_date"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("group_calendar_entries.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("community_groups.id", ondelete="CASCADE"))
    post_date: Mapped[date]
    status: Mapped[str] = mapped_column(String(12))
    """"sent" or "failed"."""
    message: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(String(500))
    posted_at: Mapped[datetime]


class Persona(WorkspaceScoped, Base):
    """A staff member's public persona (人设) for moments: how the brand speaks through them."""

    __tablename__ = "personas"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("staff.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(100))
    avatar_url: Mapped[str | None] = mapped_column(String(1000))
    signature: Mapped[str | None] = mapped_column(String(200))
    background_url: Mapped[str | None] = mapped_column(String(1000))
    tone: Mapped[str | None] = mapped_column(String(200))
    """How this persona writes: "warm, expert, never pushy"."""
    created_at: Mapped[datetime]


class MomentPost(WorkspaceScoped, Base):
    """A planned moments (朋友圈) post for a persona's slot, published as a task to its staff."""

    __tablename__ = "moment_posts"
    __table_args__ = (
        UniqueConstraint("persona_id", "post_date", "slot"),
        Index("ix_moment_posts_ws_date", "workspace_id", "post_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    persona_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("personas.id", ondelete="CASCADE"))
    post_date: Mapped[date]
    slot: Mapped[Slot] = mapped_column(String(10))
    content_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("content_items.id"))
    is_marketing: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(12), default="planned")
    """"planned", "published" (sent to staff as a task / to the sandbox), "failed"."""
    published_at: Mapped[datetime | None]
    likes: Mapped[int] = mapped_column(default=0)
    comments: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]


class Script(WorkspaceScoped, Base):
    """A script (话术) staff use: greeting, follow-up, objection, after-sale, with variables."""

    __tablename__ = "scripts"
    __table_args__ = (Index("ix_scripts_ws_stage", "workspace_id", "stage"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    stage: Mapped[str] = mapped_column(String(20))
    """"greeting", "follow_up", "objection", "after_sale" (or a brand's own)."""
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    """A sandboxed Jinja template with the same variables as message content."""
    tags: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
