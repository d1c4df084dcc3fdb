"""Tags: groups, tags and their assignment to customers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class TagSource(StrEnum):
    MANUAL = "manual"
    RULE = "rule"
    IMPORT = "import"
    WECOM = "wecom"


class TagGroup(WorkspaceScoped, Base):
    __tablename__ = "tag_groups"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    sort_order: Mapped[int] = mapped_column(default=0)
    wecom_group_id: Mapped[str | None] = mapped_column(String(64))
    """The WeCom enterprise tag group (标签组) this group is synced with, if any."""


class Tag(WorkspaceScoped, Base):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("workspace_id", "group_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    group_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tag_groups.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    color: Mapped[str | None] = mapped_column(String(20))
    wecom_tag_id: Mapped[str | None] = mapped_column(String(64))
    """The matching WeCom customer tag id, once synchronised."""


class CustomerTag(WorkspaceScoped, Base):
    """A tag on a customer, with how and when it was applied."""

    __tablename__ = "customer_tags"
    __table_args__ = (
        UniqueConstraint("customer_id", "tag_id"),
        Index("ix_customer_tags_tag", "tag_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    tag_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tags.id", ondelete="CASCADE"))
    source: Mapped[TagSource] = mapped_column(String(10))
    assigned_at: Mapped[datetime]
    assigned_by: Mapped[str | None] = mapped_column(String(200))
