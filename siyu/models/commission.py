"""Distribution (分销) for approved KOCs: commission rules, an append-only commission ledger, and
statements that settle it.

A KOC earns a share of the orders of the customers they referred, for N days after each referral,
capped; a refund writes a reversing entry; a statement gathers the unsettled entries of a period and,
once settled, is exported for payment. Amounts are fen.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class CommissionRule(WorkspaceScoped, Base):
    """How much an approved KOC earns on their referees' orders."""

    __tablename__ = "commission_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    rate_bp: Mapped[int]
    """Share of each order's paid amount, in basis points (1000 = 10%)."""
    days: Mapped[int]
    """Orders paid within this many days of the referral earn commission."""
    cap_per_referee_fen: Mapped[int | None] = mapped_column(BigInteger)
    """Most commission one referee's orders can earn in all (None = no cap)."""
    cap_per_month_fen: Mapped[int | None] = mapped_column(BigInteger)
    """Most commission one KOC can earn per brand-local calendar month (None = no cap)."""
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CommissionKind(StrEnum):
    EARN = "earn"
    REVERSE = "reverse"
    """A refund took back (part of) an earn; negative amount."""
    ADJUST = "adjust"
    """An operator's correction with a reason; either sign."""


class CommissionEntry(WorkspaceScoped, Base):
    """One movement of a KOC's commission; rows are only ever added. The balance is their sum."""

    __tablename__ = "commission_entries"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key"),
        Index("ix_commission_entries_koc_time", "koc_customer_id", "occurred_at"),
        Index("ix_commission_entries_statement", "statement_id"),
        Index("ix_commission_entries_order", "order_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    koc_customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    referee_customer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="SET NULL"))
    order_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("orders.id", ondelete="SET NULL"))
    refund_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("refunds.id", ondelete="SET NULL"))
    rule_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("commission_rules.id", ondelete="SET NULL"))
    kind: Mapped[CommissionKind] = mapped_column(String(10))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    """Signed: earns positive, reversals negative."""
    reason: Mapped[str] = mapped_column(String(200), default="")
    """Shown to the KOC on their statement."""
    idempotency_key: Mapped[str] = mapped_column(String(200))
    statement_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("commission_statements.id", ondelete="SET NULL")
    )
    """The statement that settled this entry; None while unsettled."""
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime]


class StatementStatus(StrEnum):
    OPEN = "open"
    SETTLED = "settled"


class CommissionStatement(WorkspaceScoped, Base):
    """A KOC's commission for one period, frozen once settled (paid)."""

    __tablename__ = "commission_statements"
    __table_args__ = (UniqueConstraint("koc_customer_id", "period_start", "period_end"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    koc_customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    period_start: Mapped[date]
    period_end: Mapped[date]
    """Inclusive brand-local dates."""
    total_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    entries_count: Mapped[int] = mapped_column(default=0)
    status: Mapped[StatementStatus] = mapped_column(String(10), default=StatementStatus.OPEN)
    settled_at: Mapped[datetime | None]
    settled_by_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    payment_ref: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
