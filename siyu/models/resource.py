"""The resources library (资料沉淀): guides, files and exclusive news published to members."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, JsonDoc, WorkspaceScoped


class ResourceKind(StrEnum):
    GUIDE = "guide"
    FILE = "file"
    NEWS = "news"
    """Exclusive first-hand news (一手信息)."""


class ResourceStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class Resource(WorkspaceScoped, Base):
    """A guide, file or piece of news in the members' library."""

    __tablename__ = "resources"
    __table_args__ = (Index("ix_resources_ws_status_time", "workspace_id", "status", "published_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[ResourceKind] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(120))
    summary: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    """Plain text with line breaks (escaped when shown; no HTML)."""
    file_name: Mapped[str | None] = mapped_column(String(200))
    file_type: Mapped[str | None] = mapped_column(String(100))
    file_data: Mapped[bytes | None] = mapped_column(LargeBinary)
    """Files: the upload itself (≤ 10 MB), served only to members who may see the resource."""
    file_size: Mapped[int | None]
    visible_tier_ids: Mapped[list[Any]] = mapped_column(JsonDoc, default=list)
    """Tiers that see it; empty = every member."""
    visible_segment_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("segments.id", ondelete="SET NULL"))
    status: Mapped[ResourceStatus] = mapped_column(String(10), default=ResourceStatus.DRAFT)
    is_pinned: Mapped[bool] = mapped_column(default=False)
    published_at: Mapped[datetime | None]
    reads_count: Mapped[int] = mapped_column(default=0)
    downloads_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ResourceView(WorkspaceScoped, Base):
    """A member read or downloaded a resource; one row per member, resource, action and day."""

    __tablename__ = "resource_views"
    __table_args__ = (UniqueConstraint("resource_id", "customer_id", "action", "day_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    resource_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("resources.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(10))
    """"read" or "download"."""
    day_key: Mapped[str] = mapped_column(String(10))
    """Brand-local date (YYYY-MM-DD): repeated opens the same day count once."""
    occurred_at: Mapped[datetime]
