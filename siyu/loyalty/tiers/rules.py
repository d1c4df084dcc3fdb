"""Tier arithmetic: the qualifying window, a member's qualifying value, which tier a value meets,
and the review calendar. Reads only; the service writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from siyu.kit.clock import as_utc
from siyu.loyalty.program import local_midnight
from siyu.models import (
    LoyaltyProgram,
    Member,
    Order,
    PointsEntry,
    PointsKind,
    ReviewPeriod,
    Tier,
    TierBasis,
    TierWindow,
)


@dataclass(frozen=True)
class Window:
    """The qualifying window: [start, end) in UTC, and how it reads to a person."""

    start: datetime
    end: datetime
    label: str


def window(program: LoyaltyProgram, now: datetime, zone: ZoneInfo) -> Window:
    """The last `tier_window_days` days, or the brand-local calendar year so far."""
    now = as_utc(now)
    if program.tier_window == TierWindow.CALENDAR_YEAR:
        year = now.astimezone(zone).year
        return Window(start=local_midnight(date(year, 1, 1), zone), end=now, label=f"{year}年")
    days = max(int(program.tier_window_days), 1)
    return Window(start=now - timedelta(days=days), end=now, label=f"近{days}天")


def earned_tiers(session: Session, workspace_id: int) -> list[Tier]:
    """Tiers reached by spend or points (not paid ones), lowest rank first."""
    return list(
        session.scalars(
            select(Tier).where(Tier.workspace_id == workspace_id, Tier.is_paid.is_(False)).order_by(Tier.rank)
        )
    )


def tier_met(tiers: Sequence[Tier], value: int) -> Tier | None:
    """The highest of `tiers` (earned tiers, by rank) whose threshold `value` reaches."""
    met: Tier | None = None
    for tier in tiers:
        reached = tier.rank == 0 or value >= tier.threshold
        if reached and (met is None or tier.rank > met.rank):
            met = tier
    return met


def spend_by_customer(session: Session, workspace_id: int, customer_ids: Sequence[int], win: Window) -> dict[int, int]:
    """Net spend (paid minus refunded, fen) of orders paid inside the window, per customer."""
    if not customer_ids:
        return {}
    rows = session.execute(
        select(Order.customer_id, func.sum(Order.total_fen - Order.refunded_fen))
        .where(
            Order.workspace_id == workspace_id,
            Order.customer_id.in_(list(customer_ids)),
            Order.paid_at >= win.start,
            Order.paid_at <= win.end,
        )
        .group_by(Order.customer_id)
    ).all()
    return {int(customer_id): int(total or 0) for customer_id, total in rows}


def points_by_member(session: Session, workspace_id: int, member_ids: Sequence[int], win: Window) -> dict[int, int]:
    """Points earned inside the window (earn entries, tasks and purchases alike), net of what
    reversals (refunds) took back of them, per member. Spending does not lower it."""
    if not member_ids:
        return {}
    earned = dict(
        session.execute(
            select(PointsEntry.member_id, func.sum(PointsEntry.amount))
            .where(
                PointsEntry.workspace_id == workspace_id,
                PointsEntry.member_id.in_(list(member_ids)),
                PointsEntry.kind == PointsKind.EARN,
                PointsEntry.occurred_at >= win.start,
                PointsEntry.occurred_at <= win.end,
            )
            .group_by(PointsEntry.member_id)
        ).all()
    )
    source = aliased(PointsEntry)
    reversed_ = dict(
        session.execute(
            select(PointsEntry.member_id, func.sum(PointsEntry.shortfall - PointsEntry.amount))
            .join(source, source.id == PointsEntry.reverses_entry_id)
            .where(
                PointsEntry.workspace_id == workspace_id,
                PointsEntry.member_id.in_(list(member_ids)),
                PointsEntry.kind == PointsKind.REVERSE,
                source.kind == PointsKind.EARN,
                source.occurred_at >= win.start,
                source.occurred_at <= win.end,
            )
            .group_by(PointsEntry.member_id)
        ).all()
    )
    return {int(m): int(earned.get(m) or 0) - int(reversed_.get(m) or 0) for m in set(earned) | set(reversed_)}


def qualifying_values(
    session: Session, program: LoyaltyProgram, members: Sequence[Member], win: Window
) -> dict[int, int]:
    """Each member's qualifying value (by member id) under the program's basis."""
    if program.tier_basis == TierBasis.POINTS:
        by_member = points_by_member(session, program.workspace_id, [m.id for m in members], win)
        return {m.id: by_member.get(m.id, 0) for m in members}
    by_customer = spend_by_customer(session, program.workspace_id, [m.customer_id for m in members], win)
    return {m.id: by_customer.get(m.customer_id, 0) for m in members}


def describe(program: LoyaltyProgram, value: int) -> str:
    """A qualifying value as a person reads it: "¥5,230.00" or "1,200 积分"."""
    if program.tier_basis == TierBasis.POINTS:
        return f"{value:,} 积分"
    sign = "-" if value < 0 else ""
    return f"{sign}¥{abs(value) // 100:,}.{abs(value) % 100:02d}"


def review_date(period: ReviewPeriod, today: date) -> date:
    """The latest review date on or before `today`: the 1st of the month, quarter or year."""
    if period == ReviewPeriod.MONTHLY:
        return today.replace(day=1)
    if period == ReviewPeriod.QUARTERLY:
        return date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
    return date(today.year, 1, 1)


def next_review_date(period: ReviewPeriod, today: date) -> date:
    """The first review date after `today`."""
    current = review_date(period, today)
    months = {ReviewPeriod.MONTHLY: 1, ReviewPeriod.QUARTERLY: 3}.get(period, 12)
    index = current.year * 12 + current.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)
