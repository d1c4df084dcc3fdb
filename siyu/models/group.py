"""Customer groups (社群) that group live codes route to; the community issue extends them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped

DEFAULT_GROUP_LIMIT = 200
MAX_GROUP_LIMIT = 500  # WeCom's ceiling for a customer group


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
    created_at: Mapped[datetime]
