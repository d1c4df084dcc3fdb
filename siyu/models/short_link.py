"""Short links (短链): tracked redirects, per campaign or per recipient."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class ShortLink(WorkspaceScoped, Base):
    """A redirect `/s/{slug}` → `target_url`. Per-recipient links point to their campaign link."""

    __tablename__ = "short_links"
    __table_args__ = (
        UniqueConstraint("slug"),
        UniqueConstraint("parent_id", "customer_id"),
        Index("ix_short_links_ws_campaign", "workspace_id", "campaign"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(32))
    target_url: Mapped[str] = mapped_column(String(2000))
    name: Mapped[str | None] = mapped_column(String(100))
    campaign: Mapped[str | None] = mapped_column(String(100))
    channel_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("channels.id", ondelete="SET NULL"))
    experiment_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("experiments.id", ondelete="SET NULL"))
    utm: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """UTM-style tags appended to the target: {"utm_source": "sms", "utm_campaign": "双11"}."""
    parent_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("short_links.id", ondelete="CASCADE"))
    """For a per-recipient link: the campaign link it was derived from."""
    customer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    """For a per-recipient link: who it was sent to, so a click identifies them."""
    expires_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class ShortLinkClick(WorkspaceScoped, Base):
    """One click on a short link."""

    __tablename__ = "short_link_clicks"
    __table_args__ = (
        Index("ix_short_link_clicks_link_time", "link_id", "clicked_at"),
        Index("ix_short_link_clicks_campaign_time", "campaign_link_id", "clicked_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    link_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("short_links.id", ondelete="CASCADE"))
    campaign_link_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("short_links.id", ondelete="CASCADE"))
    """The campaign link (the link itself when it has no parent): campaign reports read one index."""
    customer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="SET NULL"))
    visitor_id: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str | None] = mapped_column(String(20))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    clicked_at: Mapped[datetime]
