"""Loyalty: the program's rules, members, tiers, the points ledger with its lots, tasks and the rewards mall.

The points ledger (`points_entries`) is append-only; a member's `points_balance` is a cache of its
sum, written in the same transaction as every entry, under the member's row lock.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, JsonDoc, WorkspaceScoped


class ExpiryPolicy(StrEnum):
    """When earned points expire; `n` is `LoyaltyProgram.expiry_n`."""

    NEVER = "never"
    DAYS = "days"
    """N days after they were earned."""
    MONTH_END = "month_end"
    """At the end of the month N months after the month they were earned in (N=0: this month)."""
    YEAR_END = "year_end"
    """At the end of the calendar year N years after the year they were earned in (N=1: next 31 Dec)."""


class TierBasis(StrEnum):
    SPEND = "spend"
    """Net spend in fen (paid minus refunded) inside the window."""
    POINTS = "points"
    """Points earned (not spent) inside the window, net of reversals."""


class TierWindow(StrEnum):
    ROLLING = "rolling"
    """The last `tier_window_days` days."""
    CALENDAR_YEAR = "calendar_year"
    """From 1 January of the current year (brand time zone)."""


class ReviewPeriod(StrEnum):
    """How often tiers are reviewed for downgrades (on the 1st of the period, brand time zone)."""

    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"


class LoyaltyProgram(WorkspaceScoped, Base):
    """One row per workspace: how points are earned and expire, and how tiers qualify."""

    __tablename__ = "loyalty_programs"
    __table_args__ = (UniqueConstraint("workspace_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    points_per_yuan: Mapped[int] = mapped_column(default=1)
    """Points per yuan of net spend, before the tier multiplier (fractions of a point are dropped)."""
    expiry_policy: Mapped[ExpiryPolicy] = mapped_column(String(10), default=ExpiryPolicy.YEAR_END)
    expiry_n: Mapped[int] = mapped_column(default=1)
    expiring_notice_days: Mapped[int] = mapped_column(default=30)
    """"Points expiring soon" covers lots expiring within this many days (H5, segments, the journey trigger)."""
    tier_basis: Mapped[TierBasis] = mapped_column(String(10), default=TierBasis.SPEND)
    tier_window: Mapped[TierWindow] = mapped_column(String(15), default=TierWindow.ROLLING)
    tier_window_days: Mapped[int] = mapped_column(default=365)
    review_period: Mapped[ReviewPeriod] = mapped_column(String(10), default=ReviewPeriod.QUARTERLY)
    grace_days: Mapped[int] = mapped_column(default=30)
    """After a review finds a member below their tier, they keep it this many days before the downgrade."""
    last_review_on: Mapped[date | None]
    """The last review date processed, so a review runs once even if the daily job runs twice."""
    updated_at: Mapped[datetime]


class Tier(WorkspaceScoped, Base):
    """A membership level (普通 / 高级 / 尊享). Rank 0 is the base tier every member starts in."""

    __tablename__ = "tiers"
    __table_args__ = (UniqueConstraint("workspace_id", "rank"), UniqueConstraint("workspace_id", "name"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    rank: Mapped[int]
    threshold: Mapped[int] = mapped_column(BigInteger, default=0)
    """Qualifying value (fen or points, per the program's basis) inside the window; ignored for paid tiers."""
    is_paid: Mapped[bool] = mapped_column(default=False)
    """A paid tier (付费会员卡) is bought, not earned; it lasts `validity_days` from purchase."""
    price_fen: Mapped[int | None] = mapped_column(BigInteger)
    validity_days: Mapped[int | None]
    points_multiplier_pct: Mapped[int] = mapped_column(default=100)
    """Purchase points × this / 100 (150 = 1.5×)."""
    benefits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """`{"member_price_pct": 95, "free_shipping": true, "priority_service": true,
    "birthday_coupon_template_id": 3, "welcome_coupon_template_ids": [4, 5]}`."""
    color: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Member(WorkspaceScoped, Base):
    """A customer's loyalty account: tier, points balance (cached) and purchase flags.

    Created on the customer's first order, points or task. Locked (`FOR UPDATE`) by every points
    movement, so two redemptions never both spend the same points.
    """

    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("workspace_id", "customer_id"),
        Index("ix_members_ws_tier", "workspace_id", "tier_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    tier_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("tiers.id", ondelete="SET NULL"))
    """The tier the member has now (the higher of the earned and a valid paid tier)."""
    tier_since: Mapped[datetime | None]
    earned_tier_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("tiers.id", ondelete="SET NULL"))
    """The tier earned by spend or points (or set by hand), whatever a paid tier adds on top; None: the
    member's `tier_id` (members created before it was tracked)."""
    paid_tier_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("tiers.id", ondelete="SET NULL"))
    paid_tier_until: Mapped[datetime | None]
    grace_until: Mapped[datetime | None]
    """Set by a review that found the member below their tier; the downgrade happens after it."""
    points_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    """Cache of the sum of the member's points entries; never negative."""
    points_debt: Mapped[int] = mapped_column(BigInteger, default=0)
    """Points a refund should have taken back but could not (already spent); settled from the next earn."""
    points_earned_total: Mapped[int] = mapped_column(BigInteger, default=0)
    spend_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    """Lifetime net spend in the private domain (paid minus refunded)."""
    orders_count: Mapped[int] = mapped_column(default=0)
    """Private-domain orders not fully refunded."""
    first_order_id: Mapped[int | None] = mapped_column(BigInteger)
    first_order_at: Mapped[datetime | None]
    """The first order inside the private domain (首单)."""
    last_order_at: Mapped[datetime | None]
    is_repurchaser: Mapped[bool] = mapped_column(default=False)
    """Has two or more private-domain orders not fully refunded (复购)."""
    checkin_streak: Mapped[int] = mapped_column(default=0)
    last_checkin_on: Mapped[date | None]
    """Brand-local date of the last daily check-in (签到)."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TierChangeReason(StrEnum):
    JOINED = "joined"
    QUALIFIED = "qualified"
    REFUND = "refund"
    REVIEW_DOWNGRADE = "review_downgrade"
    PAID = "paid"
    PAID_EXPIRED = "paid_expired"
    MANUAL = "manual"


class TierChange(WorkspaceScoped, Base):
    """Every change of a member's tier, with why (append-only)."""

    __tablename__ = "tier_changes"
    __table_args__ = (UniqueConstraint("workspace_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id", ondelete="CASCADE"), index=True)
    from_tier_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("tiers.id", ondelete="SET NULL"))
    to_tier_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("tiers.id", ondelete="SET NULL"))
    reason: Mapped[TierChangeReason] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(String(300))
    """Human-readable why: "spend 5,230.00 in the last 365 days ≥ 5,000.00"."""
    source_ref: Mapped[str | None] = mapped_column(String(100))
    """What caused it: "order:123", "review:2026-10-01", "refund:45"."""
    actor: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    """Retriable changes (a paid tier bought, a manual change) carry one; a retry finds this row."""
    changed_at: Mapped[datetime]


class PointsKind(StrEnum):
    EARN = "earn"
    SPEND = "spend"
    EXPIRE = "expire"
    REVERSE = "reverse"
    """Taking back earned points (a refund), or giving back spent points (a cancelled redemption)."""
    ADJUST = "adjust"


class PointsReason(StrEnum):
    PURCHASE = "purchase"
    CHECK_IN = "check_in"
    TASK = "task"
    REFERRAL = "referral"
    MANUAL = "manual"
    REDEEM = "redeem"
    EXPIRE = "expire"
    REFUND = "refund"
    CANCEL = "cancel"
    """A redemption cancelled: its points go back to the lots they came from."""
    ADJUST = "adjust"


class PointsEntry(WorkspaceScoped, Base):
    """One movement of points. Rows are only ever added; the balance is their sum."""

    __tablename__ = "points_entries"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key"),
        Index("ix_points_entries_member_at", "member_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id", ondelete="CASCADE"))
    amount: Mapped[int] = mapped_column(BigInteger)
    """Signed points: positive adds to the balance, negative takes from it."""
    kind: Mapped[PointsKind] = mapped_column(String(10))
    reason: Mapped[PointsReason] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(String(200))
    """The reason as the member reads it on the H5 page ("订单 TB123 消费得积分")."""
    source_ref: Mapped[str | None] = mapped_column(String(100))
    """What caused it: "order:123", "task:check_in:2026-11-23", "redemption:9", "entry:77"."""
    idempotency_key: Mapped[str] = mapped_column(String(200))
    reverses_entry_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("points_entries.id"))
    """For reversals: the earn or spend entry this one undoes (in part or whole)."""
    shortfall: Mapped[int] = mapped_column(BigInteger, default=0)
    """For reversals of earned points: what could not be taken back because it was already spent.
    It is added to the member's `points_debt`; `-amount + shortfall` is what the reversal undid."""
    forgiven: Mapped[int] = mapped_column(BigInteger, default=0)
    """For reversals of earned points: what had already expired from the reversed entry's own lot.
    The member never had the use of it, so it is neither taken again nor owed; `-amount + shortfall
    + forgiven` is what the reversal undid."""
    balance_after: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime]


class PointsLot(WorkspaceScoped, Base):
    """Points earned together, with one expiry. Spending takes from the lots that expire soonest."""

    __tablename__ = "points_lots"
    __table_args__ = (
        Index("ix_points_lots_member_expires", "member_id", "expires_at"),
        Index("ix_points_lots_ws_expires", "workspace_id", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id", ondelete="CASCADE"))
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("points_entries.id"), index=True)
    """The earn (or positive adjust) entry that created the lot."""
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    """What is left to spend; the sum over a member's lots equals their balance."""
    earned_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    """None: never expires."""


class PointsAllocation(WorkspaceScoped, Base):
    """How an entry moved points in and out of lots: spends, expiries and reversals name their lots,
    so a cancelled redemption gives points back to exactly the lots they came from."""

    __tablename__ = "points_allocations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("points_entries.id", ondelete="CASCADE"), index=True)
    lot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("points_lots.id", ondelete="CASCADE"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    """Signed: negative takes from the lot, positive gives back to it."""


class TaskKind(StrEnum):
    CHECK_IN = "check_in"
    POST = "post"
    SHARE = "share"
    PROFILE = "profile"
    JOIN_GROUP = "join_group"
    INVITE = "invite"
    CUSTOM = "custom"


class LimitPeriod(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    LIFETIME = "lifetime"


class LoyaltyTask(WorkspaceScoped, Base):
    """Something a member does for points (签到, 晒单, share, complete the profile, join a group, invite)."""

    __tablename__ = "loyalty_tasks"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(50))
    kind: Mapped[TaskKind] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    points: Mapped[int]
    limit_period: Mapped[LimitPeriod] = mapped_column(String(10), default=LimitPeriod.DAY)
    limit_count: Mapped[int] = mapped_column(default=1)
    """Completions that earn points per period; enforced by the unique (task, member, period, slot) key."""
    streak_bonuses: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Check-in only: extra points on reaching a streak length, `{"3": 10, "7": 50}`."""
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Per kind: `profile` → `{"required_fields": ["name", "gender", "birthday", "city"]}` (profile
    columns or `attributes.<key>`); other kinds keep free-form hints for the pages that show them."""
    is_active: Mapped[bool] = mapped_column(default=True)
    sort_order: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TaskCompletion(WorkspaceScoped, Base):
    """One completion of a task in a period; the unique key is the cap."""

    __tablename__ = "task_completions"
    __table_args__ = (
        UniqueConstraint("task_id", "member_id", "period_key", "slot"),
        UniqueConstraint("task_id", "member_id", "period_key", "ref"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("loyalty_tasks.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id", ondelete="CASCADE"), index=True)
    period_key: Mapped[str] = mapped_column(String(20))
    """"2026-11-23" (day), "2026-W48" (week), "2026-11" (month) or "lifetime", in brand time."""
    slot: Mapped[int]
    streak: Mapped[int | None]
    """Check-ins: the streak length this check-in reached."""
    ref: Mapped[str | None] = mapped_column(String(200))
    """What was done: a post id, a shared URL, a group id; the same ref in the same period is a retry."""
    points_entry_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("points_entries.id"))
    completed_at: Mapped[datetime]


class RewardKind(StrEnum):
    COUPON = "coupon"
    GIFT = "gift"
    """A physical gift: stock, and a fulfilment (address, shipped)."""
    PRIVILEGE = "privilege"
    LOTTERY_ENTRY = "lottery_entry"


class Reward(WorkspaceScoped, Base):
    """Something in the rewards mall (积分商城) bought with points."""

    __tablename__ = "rewards"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[RewardKind] = mapped_column(String(20))
    points_price: Mapped[int]
    stock: Mapped[int | None]
    """Left to redeem; None = unlimited. Decremented under the reward's row lock."""
    redeemed_count: Mapped[int] = mapped_column(default=0)
    per_member_limit: Mapped[int | None]
    """Redemptions per member, ever; enforced by the unique (reward, member, slot) key."""
    visible_tier_ids: Mapped[list[Any]] = mapped_column(JsonDoc, default=list)
    """Tiers that see the reward; empty = all."""
    visible_segment_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("segments.id", ondelete="SET NULL"))
    coupon_template_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("coupon_templates.id"))
    lottery_draw_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("lottery_draws.id", ondelete="SET NULL"))
    """`RewardKind.LOTTERY_ENTRY`: the draw a redemption enters (one ticket per redemption)."""
    description: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(String(500))
    is_active: Mapped[bool] = mapped_column(default=True)
    sort_order: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RedemptionStatus(StrEnum):
    COMPLETED = "completed"
    """Coupon issued, privilege granted, lottery entry recorded."""
    AWAITING_SHIPMENT = "awaiting_shipment"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    """Points and stock given back."""


class Redemption(WorkspaceScoped, Base):
    """A member spent points on a reward."""

    __tablename__ = "redemptions"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key"),
        UniqueConstraint("reward_id", "member_id", "slot"),
        Index("ix_redemptions_ws_status", "workspace_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reward_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("rewards.id"), index=True)
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id", ondelete="CASCADE"), index=True)
    slot: Mapped[int]
    """1..per_member_limit for limited rewards; the redemption's own number otherwise; `-id` once
    cancelled, which frees the member's slot."""
    points: Mapped[int]
    idempotency_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[RedemptionStatus] = mapped_column(String(20))
    points_entry_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("points_entries.id"))
    coupon_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("coupons.id", ondelete="SET NULL"))
    address: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    """Gifts: `{"name", "phone", "address"}` as the member entered them."""
    tracking_no: Mapped[str | None] = mapped_column(String(100))
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
