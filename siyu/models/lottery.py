"""Lottery draws (抽奖) with a provably fair commit–reveal draw.

Before entries close, the draw publishes `commitment = sha256(seed)`; the seed stays secret. The
draw computes every winner from the seed and the frozen, numbered entry list; afterwards the seed
is revealed, so anyone can recompute the commitment and the winners.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class DrawStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    """Taking entries; the commitment is published."""
    DRAWN = "drawn"
    """Winners chosen; the seed is revealed."""
    CANCELLED = "cancelled"


class DrawMethod(StrEnum):
    FIXED = "fixed"
    """Each prize has exactly `winners` winners (or fewer if entries run out)."""
    PROBABILITY = "probability"
    """Each entry wins a prize with the prize's probability, never past its stock."""


class EntrySource(StrEnum):
    POINTS = "points"
    TASK = "task"
    CAMPAIGN = "campaign"
    REDEMPTION = "redemption"
    """A rewards-mall lottery entry (`RewardKind.LOTTERY_ENTRY`)."""


class LotteryDraw(WorkspaceScoped, Base):
    """A draw."""

    __tablename__ = "lottery_draws"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    method: Mapped[DrawMethod] = mapped_column(String(12))
    status: Mapped[DrawStatus] = mapped_column(String(10), default=DrawStatus.DRAFT)
    entry_points: Mapped[int | None]
    """Points one entry costs on the member H5 page (None: not enterable by points)."""
    max_entries_per_member: Mapped[int] = mapped_column(default=1)
    one_win_per_customer: Mapped[bool] = mapped_column(default=True)
    """A customer wins at most one prize, however many tickets they hold."""
    opens_at: Mapped[datetime | None]
    closes_at: Mapped[datetime | None]
    commitment: Mapped[str | None] = mapped_column(String(64))
    """sha256 hex of the seed, published when the draw opens."""
    seed: Mapped[str | None] = mapped_column(String(64))
    """Secret until drawn, then revealed for verification."""
    entries_digest: Mapped[str | None] = mapped_column(String(64))
    """sha256 of the frozen entry list (ticket numbers and customer ids) the draw used."""
    drawn_at: Mapped[datetime | None]
    notify_channel_account_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("channel_accounts.id", ondelete="SET NULL")
    )
    """Winners are told through this touch-layer account (deliveries obey quiet hours and caps)."""
    notify_content_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("content_items.id", ondelete="SET NULL")
    )
    """The (transactional) message winners get; no message without both account and content."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class LotteryPrize(WorkspaceScoped, Base):
    """A prize of a draw."""

    __tablename__ = "lottery_prizes"
    __table_args__ = (
        Index("ix_lottery_prizes_draw", "draw_id", "position"),
        CheckConstraint("awarded_count >= 0 AND awarded_count <= stock", name="awarded_within_stock"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    draw_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lottery_draws.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(String(100))
    stock: Mapped[int]
    """How many of this prize exist; never exceeded."""
    winners: Mapped[int | None]
    """Fixed draws: how many winners (≤ stock)."""
    probability_ppm: Mapped[int | None]
    """Probability draws: chance per entry in parts per million."""
    points: Mapped[int] = mapped_column(default=0)
    """Points awarded to a winner (0: none)."""
    coupon_template_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("coupon_templates.id", ondelete="SET NULL")
    )
    awarded_count: Mapped[int] = mapped_column(default=0)


class LotteryEntry(WorkspaceScoped, Base):
    """One ticket in a draw."""

    __tablename__ = "lottery_entries"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key"),
        UniqueConstraint("draw_id", "ticket_no"),
        Index("ix_lottery_entries_draw_customer", "draw_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    draw_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lottery_draws.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    ticket_no: Mapped[int]
    """1, 2, 3… in entry order within the draw (allocated under the draw's row lock)."""
    source: Mapped[EntrySource] = mapped_column(String(12))
    source_ref: Mapped[str | None] = mapped_column(String(100))
    points_entry_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("points_entries.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class LotteryWin(WorkspaceScoped, Base):
    """A winning ticket and what it won."""

    __tablename__ = "lottery_wins"
    __table_args__ = (UniqueConstraint("draw_id", "entry_id"), Index("ix_lottery_wins_customer", "customer_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    draw_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lottery_draws.id", ondelete="CASCADE"))
    prize_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lottery_prizes.id", ondelete="CASCADE"))
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lottery_entries.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    points_entry_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("points_entries.id"))
    coupon_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("coupons.id", ondelete="SET NULL"))
    delivery_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("deliveries.id", ondelete="SET NULL"))
    """The winner notification sent through the touch layer."""
    award_error: Mapped[str | None] = mapped_column(String(300))
    """Why the prize could not be given (e.g. the coupon template ran out); None when awarded."""
    notify_error: Mapped[str | None] = mapped_column(String(300))
    """Why the winner could not be told; None when queued (or no notification configured)."""
    created_at: Mapped[datetime]
