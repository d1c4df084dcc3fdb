"""Customer groups (社群) that group live codes route to; the community issue extends them."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped

DEFAULT_GROUP_LIMIT = 200
MAX_GROUP_LIMIT = 500  # WeCom's ceiling for a customer group


class GroupKind(StrEnum):
    LONG_TERM = "long_term"
    FLASH = "flash"
    """闪群: a short sales group, dismissed at `ends_at`."""


class CommunityGroup(WorkspaceScoped, Base):
    """A WeCom customer group (客户群)."""

    __tablename__ = "community_groups"
    __table_args__ = (UniqueConstraint("workspace_id", "wecom_chat_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    owner_staff_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("staff.id", ondelete="SET NULL"))
    wecom_chat_id: Mapped[str | None] = mapped_column(String(64))
    join_url: Mapped[str | None] = mapped_column(String(500))
    """The group's own QR / join link, shown on the landing page of a group live code."""
    member_limit: Mapped[int] = mapped_column(default=DEFAULT_GROUP_LIMIT)
    member_count: Mapped[int] = mapped_column(default=0)
    is_active: Mapped[bool] = mapped_column(default=True)
    kind: Mapped[GroupKind] = mapped_column(String(10), default=GroupKind.LONG_TERM)
    ends_at: Mapped[datetime | None]
    """Flash groups (闪群): when the group is dismissed; its members are marked left then."""
    description: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]


class GroupMemberRole(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    """Admin or assistant (群管理员 / 助理)."""
    KOC = "koc"
    MEMBER = "member"


class GroupMember(WorkspaceScoped, Base):
    """One stay of a customer (or a staff member) in a group: joined, and left once `left_at` is set.

    A customer who leaves and comes back has two rows; at most one open row per group and person."""

    __tablename__ = "group_members"
    __table_args__ = (
        Index("ix_group_members_group_open", "group_id", "left_at"),
        Index("ix_group_members_customer", "customer_id"),
        # At most one open stay per group and person: a join reported twice at once inserts one row.
        Index(
            "uq_group_members_open_customer",
            "group_id",
            "customer_id",
            unique=True,
            postgresql_where=text("left_at IS NULL AND customer_id IS NOT NULL"),
            sqlite_where=text("left_at IS NULL AND customer_id IS NOT NULL"),
        ),
        Index(
            "uq_group_members_open_staff",
            "group_id",
            "staff_id",
            unique=True,
            postgresql_where=text("left_at IS NULL AND staff_id IS NOT NULL"),
            sqlite_where=text("left_at IS NULL AND staff_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    group_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("community_groups.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    staff_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("staff.id", ondelete="CASCADE"))
    role: Mapped[GroupMemberRole] = mapped_column(String(10), default=GroupMemberRole.MEMBER)
    joined_at: Mapped[datetime]
    left_at: Mapped[datetime | None]
    left_reason: Mapped[str | None] = mapped_column(String(20))
    """"left" (the member quit), "removed" (kicked by staff), "dismissed" (the group ended)."""
    join_scene: Mapped[str | None] = mapped_column(String(20))
    """How they joined: "live_code", "invite", "import", "wecom"."""
    invited_by_customer_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("customers.id", ondelete="SET NULL")
    )
    """Group fission: the member whose invitation brought this one in."""


class GroupDay(WorkspaceScoped, Base):
    """A group's member count at the end of a brand-local day, with that day's joins and leaves."""

    __tablename__ = "group_days"
    __table_args__ = (UniqueConstraint("group_id", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    group_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("community_groups.id", ondelete="CASCADE"))
    day: Mapped[date]
    member_count: Mapped[int] = mapped_column(default=0)
    joined: Mapped[int] = mapped_column(default=0)
    left: Mapped[int] = mapped_column(default=0)


class GroupTag(WorkspaceScoped, Base):
    """A tag on a group (not on its members): "新品群", "华东", "VIP"…"""

    __tablename__ = "group_tags"
    __table_args__ = (UniqueConstraint("group_id", "tag_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    group_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("community_groups.id", ondelete="CASCADE"))
    tag_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tags.id", ondelete="CASCADE"))
