"""Acquisition channels (渠道) and what they cost."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class ChannelType(StrEnum):
    PACKAGE_CARD = "package_card"  # 包裹卡
    SMS = "sms"
    KOL = "kol"  # KOL / KOC posts
    PAID_ADS = "paid_ads"  # 信息流
    OFFICIAL_ACCOUNT = "official_account"
    STORE = "store"
    ECOMMERCE = "ecommerce"  # e-commerce shop (Taobao, JD…)
    REFERRAL = "referral"
    OTHER = "other"


class CostModel(StrEnum):
    """How a channel's cost is computed for a period."""

    ENTRIES = "entries"  # the sum of dated cost entries
    CPA = "cpa"  # a price per add (KOL/KOC deals), plus any dated entries
    CPS = "cps"  # a share of attributed GMV, plus any dated entries


class Channel(WorkspaceScoped, Base):
    """An acquisition source: where customers come from, the hook offered and what it costs."""

    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[ChannelType] = mapped_column(String(20))
    owner_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    """The operator responsible for the channel."""
    hook: Mapped[str | None] = mapped_column(String(200))
    """The offer that makes people add (钩子): "free sample", "5-yuan red packet", "styling advice"."""
    starts_on: Mapped[date | None]
    ends_on: Mapped[date | None]
    cost_model: Mapped[CostModel] = mapped_column(String(10), default=CostModel.ENTRIES)
    cpa_fen: Mapped[int | None] = mapped_column(BigInteger)
    """Price per add in fen when `cost_model` is CPA."""
    cps_basis_points: Mapped[int | None]
    """Share of attributed GMV in 1/10,000 when `cost_model` is CPS (1500 = 15 %)."""
    is_archived: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class ChannelCostEntry(WorkspaceScoped, Base):
    """Money spent on (and, when known, exposures bought from) a channel on one day."""

    __tablename__ = "channel_cost_entries"
    __table_args__ = (Index("ix_channel_cost_entries_channel_day", "channel_id", "spent_on"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("channels.id", ondelete="CASCADE"))
    spent_on: Mapped[date]
    """The day (brand time zone) the money was spent."""
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    exposures: Mapped[int | None] = mapped_column(BigInteger)
    """Impressions / cards shipped / SMS sent that day, when the channel reports them."""
    note: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
