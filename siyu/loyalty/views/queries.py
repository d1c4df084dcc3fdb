"""What the loyalty console pages read: always scoped to the actor's workspace and part of the pool."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers.repository import CustomerFilter, filtered_query, visibility_clause
from siyu.kit.pagination import Page, decode_id_cursor, encode_cursor
from siyu.models import (
    Customer,
    LoyaltyProgram,
    LoyaltyTask,
    Member,
    PointsEntry,
    PointsLot,
    Redemption,
    RedemptionStatus,
    Reward,
    Tier,
    TierChange,
)


def program(session: Session, workspace_id: int) -> LoyaltyProgram | None:
    """The saved program, None before it was first used (reads never create it)."""
    return session.scalar(select(LoyaltyProgram).where(LoyaltyProgram.workspace_id == workspace_id))


def notice_days(session: Session, workspace_id: int) -> int:
    """How far ahead "points expiring soon" looks (the program's default when none is saved)."""
    saved = program(session, workspace_id)
    return saved.expiring_notice_days if saved else 30


def tiers(session: Session, workspace_id: int) -> list[Tier]:
    return list(session.scalars(select(Tier).where(Tier.workspace_id == workspace_id).order_by(Tier.rank)))


def tier_names(session: Session, workspace_id: int) -> dict[int, str]:
    return {t.id: t.name for t in tiers(session, workspace_id)}


def members_per_tier(session: Session, workspace_id: int) -> dict[int, int]:
    rows = session.execute(
        select(Member.tier_id, func.count()).where(Member.workspace_id == workspace_id).group_by(Member.tier_id)
    )
    return {tier_id: int(n) for tier_id, n in rows if tier_id is not None}


@dataclass(frozen=True)
class MemberRow:
    customer: Customer
    member: Member | None


def search_members(session: Session, actor: Actor, q: str, *, limit: int = 20) -> list[MemberRow]:
    """Customers the actor sees matching `q` (name, phone, identity, id), with their member row if any."""
    query = (
        filtered_query(actor, CustomerFilter(q=q))
        .add_columns(Member)
        .outerjoin(Member, (Member.customer_id == Customer.id) & (Member.workspace_id == actor.workspace_id))
        .order_by(Customer.id.desc())
        .limit(limit)
    )
    return [MemberRow(customer=c, member=m) for c, m in session.execute(query).all()]


def top_members(session: Session, actor: Actor, *, limit: int = 20) -> list[MemberRow]:
    """The members with the largest balances (the points page before a search)."""
    query = (
        select(Customer, Member)
        .join(Member, Member.customer_id == Customer.id)
        .where(Member.workspace_id == actor.workspace_id, Customer.workspace_id == actor.workspace_id)
        .where(visibility_clause(actor))
        .order_by(Member.points_balance.desc(), Member.id)
        .limit(limit)
    )
    return [MemberRow(customer=c, member=m) for c, m in session.execute(query).all()]


def ledger(session: Session, member: Member, *, cursor: str | None = None, limit: int = 20) -> Page[PointsEntry]:
    """The member's points entries, newest first."""
    query = select(PointsEntry).where(
        PointsEntry.workspace_id == member.workspace_id, PointsEntry.member_id == member.id
    )
    if cursor:
        query = query.where(PointsEntry.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(PointsEntry.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


@dataclass(frozen=True)
class Expiring:
    points: int
    first_expiry: datetime | None


def expiring_within(session: Session, member: Member, *, until: datetime) -> Expiring:
    """Points left in lots expiring before `until`, and the soonest such expiry."""
    row = session.execute(
        select(func.coalesce(func.sum(PointsLot.remaining), 0), func.min(PointsLot.expires_at)).where(
            PointsLot.workspace_id == member.workspace_id,
            PointsLot.member_id == member.id,
            PointsLot.remaining > 0,
            PointsLot.expires_at.is_not(None),
            PointsLot.expires_at <= until,
        )
    ).one()
    return Expiring(points=int(row[0] or 0), first_expiry=row[1])


def tier_changes(session: Session, member: Member, *, limit: int = 20) -> list[TierChange]:
    return list(
        session.scalars(
            select(TierChange)
            .where(TierChange.workspace_id == member.workspace_id, TierChange.member_id == member.id)
            .order_by(TierChange.id.desc())
            .limit(limit)
        )
    )


def loyalty_tasks(session: Session, workspace_id: int) -> list[LoyaltyTask]:
    return list(
        session.scalars(
            select(LoyaltyTask)
            .where(LoyaltyTask.workspace_id == workspace_id)
            .order_by(LoyaltyTask.sort_order, LoyaltyTask.id)
        )
    )


def rewards(session: Session, workspace_id: int) -> list[Reward]:
    return list(
        session.scalars(
            select(Reward).where(Reward.workspace_id == workspace_id).order_by(Reward.sort_order, Reward.id)
        )
    )


@dataclass(frozen=True)
class RedemptionRow:
    redemption: Redemption
    reward: Reward
    customer: Customer


def redemptions(
    session: Session,
    actor: Actor,
    *,
    status: RedemptionStatus | None,
    customer_id: int | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[RedemptionRow]:
    """Redemptions of the customers the actor sees, oldest first within a status (a work queue),
    newest first across all statuses."""
    query = (
        select(Redemption, Reward, Customer)
        .join(Reward, Reward.id == Redemption.reward_id)
        .join(Member, Member.id == Redemption.member_id)
        .join(Customer, Customer.id == Member.customer_id)
        .where(Redemption.workspace_id == actor.workspace_id, visibility_clause(actor))
    )
    if status is not None:
        query = query.where(Redemption.status == status)
    if customer_id is not None:
        query = query.where(Customer.id == customer_id)
    queue = status is not None
    if cursor:
        last = decode_id_cursor(cursor)
        query = query.where(Redemption.id > last if queue else Redemption.id < last)
    query = query.order_by(Redemption.id if queue else Redemption.id.desc()).limit(limit + 1)
    rows = [RedemptionRow(redemption=r, reward=w, customer=c) for r, w, c in session.execute(query).all()]
    next_cursor = encode_cursor(rows[limit - 1].redemption.id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


def status_counts(session: Session, actor: Actor) -> dict[str, int]:
    query = (
        select(Redemption.status, func.count())
        .join(Member, Member.id == Redemption.member_id)
        .join(Customer, Customer.id == Member.customer_id)
        .where(Redemption.workspace_id == actor.workspace_id, visibility_clause(actor))
        .group_by(Redemption.status)
    )
    return {str(s): int(n) for s, n in session.execute(query)}
