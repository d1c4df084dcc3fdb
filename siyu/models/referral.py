"""Referral programs (裂变, 老带新): codes, visits, attributions, rewards and tiered unlocks.

A member's referral code is per program. Its link `/r/{code}` (and the QR on their poster) records
a visit, then sends the visitor on to the program's live code so the add is attributed. The first
valid referral of a new customer wins (unique on the referee); rewards are issued once the program's
condition is met and reversed when the qualifying order is refunded.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, JsonDoc, WorkspaceScoped


class ProgramKind(StrEnum):
    REFERRAL = "referral"
    """Classic 老带新: each qualified referral rewards both sides; unlocks at invite thresholds."""
    GROUP_FISSION = "group_fission"
    """群裂变: invite N friends into the program's group to unlock the reward."""
    TASK_FISSION = "task_fission"
    """任务宝: invite N friends to add staff to unlock the reward."""


class ProgramStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


class ReferralCondition(StrEnum):
    """When a referral counts (qualifies)."""

    ADDED_STAFF = "added_staff"
    JOINED_GROUP = "joined_group"
    FIRST_ORDER = "first_order"
    FIRST_ORDER_OVER = "first_order_over"
    """A first order whose paid amount is at least `min_order_fen`."""


class ReferralProgram(WorkspaceScoped, Base):
    """A referral or fission campaign."""

    __tablename__ = "referral_programs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[ProgramKind] = mapped_column(String(20), default=ProgramKind.REFERRAL)
    status: Mapped[ProgramStatus] = mapped_column(String(10), default=ProgramStatus.DRAFT)
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    eligible_segment_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("segments.id", ondelete="SET NULL"))
    """Who may invite: members of this segment (None = everyone not erased)."""
    eligible_tier_ids: Mapped[list[Any]] = mapped_column(JsonDoc, default=list)
    """Who may invite: members holding one of these tiers (empty = any tier or none)."""
    condition: Mapped[ReferralCondition] = mapped_column(String(20), default=ReferralCondition.ADDED_STAFF)
    min_order_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    """For `first_order_over`: the qualifying first order's paid amount must reach this."""
    live_code_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("live_codes.id", ondelete="SET NULL"))
    """Where a referral link sends the visitor: this live code's routes (staff or groups), so the add is
    attributed to the code's channel as well as to the referrer."""
    group_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("community_groups.id", ondelete="SET NULL"))
    """Group fission: the group invitees must join."""
    target_count: Mapped[int] = mapped_column(default=0)
    """Group/task fission: qualified invitees needed to unlock the reward (0 for plain referral)."""
    referrer_reward: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Per qualified referral, to the referrer: {"points": n} | {"coupon_template_id": id} |
    {"reward_id": id} (a mall gift, granted without points); {} = nothing."""
    referee_reward: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Per qualified referral, to the new customer; same shape as `referrer_reward`."""
    attribution_days: Mapped[int] = mapped_column(default=7)
    """A visit through a referral link counts for an add this many days later at most."""
    daily_cap_per_referrer: Mapped[int | None]
    """Most referrals one referrer may make per brand-local day; more are rejected (None = no cap)."""
    burst_threshold: Mapped[int | None]
    """Flag a referrer's referrals for review when this many arrive within `burst_window_minutes`."""
    burst_window_minutes: Mapped[int] = mapped_column(default=60)
    point_cost_fen: Mapped[int] = mapped_column(default=1)
    """What one point costs the brand, for the cost-per-referred-customer metric (fen per point)."""
    poster_title: Mapped[str] = mapped_column(String(60), default="")
    poster_text: Mapped[str] = mapped_column(String(200), default="")
    poster_background_png: Mapped[bytes | None] = mapped_column(LargeBinary)
    """Optional brand background for the share poster (PNG/JPEG ≤ 2 MB, stored normalised as PNG)."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ReferralUnlock(WorkspaceScoped, Base):
    """A tiered unlock: at `threshold` qualified referrals, the referrer gets `reward` once."""

    __tablename__ = "referral_unlocks"
    __table_args__ = (UniqueConstraint("program_id", "threshold"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("referral_programs.id", ondelete="CASCADE"))
    threshold: Mapped[int]
    name: Mapped[str] = mapped_column(String(100))
    reward: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Same shape as `ReferralProgram.referrer_reward`."""
    retired_at: Mapped[datetime | None]
    """Taken off the ladder by an edit while rewards already pointed at it: kept (never deleted, so
    its rewards stay), skipped by the ladder and by reconciliation; re-adding the threshold revives it."""


class ReferralCode(WorkspaceScoped, Base):
    """A member's code for one program; its link is `/r/{code}`."""

    __tablename__ = "referral_codes"
    __table_args__ = (UniqueConstraint("code"), UniqueConstraint("program_id", "customer_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("referral_programs.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(16))
    """Random, unambiguous letters and digits, unique across workspaces."""
    shares_count: Mapped[int] = mapped_column(default=0)
    visits_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]


class VisitKind(StrEnum):
    SHARE = "share"
    """The member shared their link or saved their poster (reported by the H5 page)."""
    SCAN = "scan"
    """Someone opened the link or scanned the poster."""
    VIEW = "view"
    """The member opened their own referral page or poster: only records their device for the
    shared-device rule; metrics ignore it."""


class ReferralVisit(WorkspaceScoped, Base):
    """A share or a scan of a referral code: the invites of the K-factor."""

    __tablename__ = "referral_visits"
    __table_args__ = (
        Index("ix_referral_visits_code_time", "code_id", "occurred_at"),
        Index("ix_referral_visits_visitor", "workspace_id", "visitor_id", "occurred_at"),
        Index("ix_referral_visits_ws_program_time", "workspace_id", "program_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("referral_programs.id", ondelete="CASCADE"))
    code_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("referral_codes.id", ondelete="CASCADE"))
    kind: Mapped[VisitKind] = mapped_column(String(10))
    visitor_id: Mapped[str | None] = mapped_column(String(64))
    """The scanner's visitor hash (same cookie as live code scans), so the later add finds this visit."""
    device_id: Mapped[str | None] = mapped_column(String(64))
    """A hash of user agent + network, for the shared-device fraud rule."""
    occurred_at: Mapped[datetime]


class ReferralStatus(StrEnum):
    PENDING = "pending"
    """Attributed; waiting for the program's condition (e.g. the first order)."""
    QUALIFIED = "qualified"
    """Condition met and rewards issued."""
    FLAGGED = "flagged"
    """Held for review (a burst); an operator approves (→ pending/qualified) or rejects."""
    REJECTED = "rejected"
    """Refused by a fraud rule or by review; `reason` says which."""
    REVERSED = "reversed"
    """Was qualified; the qualifying order was refunded and the rewards taken back."""


class Referral(WorkspaceScoped, Base):
    """The attribution of a new customer (referee) to the member who invited them (referrer).

    One per referee per workspace: the first valid referral wins. The referral tree is the chain
    referee → referrer through these rows.
    """

    __tablename__ = "referrals"
    __table_args__ = (
        UniqueConstraint("workspace_id", "referee_customer_id"),
        Index("ix_referrals_program_referrer", "program_id", "referrer_customer_id", "attributed_at"),
        Index("ix_referrals_ws_status", "workspace_id", "status"),
        Index("ix_referrals_referrer", "referrer_customer_id"),
        Index("ix_referrals_qualifying_order", "qualifying_order_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("referral_programs.id", ondelete="CASCADE"))
    code_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("referral_codes.id", ondelete="CASCADE"))
    referrer_customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    referee_customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    visit_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("referral_visits.id", ondelete="SET NULL"))
    status: Mapped[ReferralStatus] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(String(200))
    """Why it was rejected, flagged or reversed (a fraud rule, a reviewer's note, a refund)."""
    attributed_at: Mapped[datetime]
    qualified_at: Mapped[datetime | None]
    qualifying_order_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("orders.id", ondelete="SET NULL"))
    reversed_at: Mapped[datetime | None]
    reviewed_by_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None]


class RewardRole(StrEnum):
    REFERRER = "referrer"
    REFEREE = "referee"
    UNLOCK = "unlock"


class ReferralReward(WorkspaceScoped, Base):
    """A reward issued by a referral program; reversed (never deleted) when its order is refunded."""

    __tablename__ = "referral_rewards"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key"),
        Index("ix_referral_rewards_customer", "customer_id"),
        Index("ix_referral_rewards_program", "program_id", "issued_at"),
        Index("ix_referral_rewards_referral", "referral_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("referral_programs.id", ondelete="CASCADE"))
    referral_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("referrals.id", ondelete="CASCADE"))
    unlock_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("referral_unlocks.id", ondelete="SET NULL"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    role: Mapped[RewardRole] = mapped_column(String(10))
    points: Mapped[int] = mapped_column(default=0)
    points_entry_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("points_entries.id"))
    coupon_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("coupons.id", ondelete="SET NULL"))
    redemption_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("redemptions.id", ondelete="SET NULL"))
    cost_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    """What the reward cost the brand (points × point cost, coupon face value, gift cost)."""
    idempotency_key: Mapped[str] = mapped_column(String(200))
    issued_at: Mapped[datetime]
    reversed_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    """Set when the coupon or gift could not be issued (out of stock, limit): nothing was given, the
    row only records the attempt (`note` says why); it counts neither as issued nor in the cost."""
    note: Mapped[str | None] = mapped_column(Text)
