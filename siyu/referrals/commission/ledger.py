"""The commission ledger: earning on referees' paid orders, reversal on refunds, operator adjustments.

Rows are only ever added; a KOC's balance is the sum of their entries. Every write locks the KOC's
`KocProfile` row first (SELECT … FOR UPDATE; SQLite serialises writers), so two orders at once cannot
both take the last room under a cap. Caps count gross earnings: a refund reverses commission but does
not give the cap room back (a buy-and-refund cycle cannot refill it).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock, as_utc
from siyu.kit.errors import InvalidInput, NotFound
from siyu.loyalty.program import brand_zone, local_midnight
from siyu.models import (
    CommissionEntry,
    CommissionKind,
    CommissionRule,
    CommissionStatement,
    Customer,
    KocProfile,
    KocStatus,
    Order,
    Referral,
    ReferralStatus,
    Refund,
    StatementStatus,
)
from siyu.referrals.commission.schemas import AdjustIn

EARNING_STATUSES = (ReferralStatus.QUALIFIED, ReferralStatus.PENDING)
"""A referral whose referee's orders earn commission (not flagged, rejected or reversed)."""


def order_key(order_id: int) -> str:
    return f"commission:order:{order_id}"


def refund_key(refund_id: int) -> str:
    return f"commission:refund:{refund_id}"


def _by_key(session: Session, workspace_id: int, key: str) -> CommissionEntry | None:
    return session.scalar(
        select(CommissionEntry).where(
            CommissionEntry.workspace_id == workspace_id, CommissionEntry.idempotency_key == key
        )
    )


def lock_koc(session: Session, *, workspace_id: int, customer_id: int) -> KocProfile | None:
    """The KOC's profile, locked for the rest of the transaction (re-read, not the cached row)."""
    return session.scalar(
        select(KocProfile)
        .where(KocProfile.workspace_id == workspace_id, KocProfile.customer_id == customer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _sum(session: Session, *conditions: object) -> int:
    total = session.scalar(select(func.coalesce(func.sum(CommissionEntry.amount_fen), 0)).where(*conditions))  # type: ignore[arg-type]
    return int(total or 0)


def month_bounds(day: date, session: Session, workspace_id: int) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the brand-local calendar month holding `day`."""
    zone = brand_zone(session, workspace_id)
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return local_midnight(first, zone), local_midnight(following, zone)


def paid_fen(order: Order) -> int:
    """What the buyer paid and kept when the order arrived (refunds already known are taken off)."""
    return max(0, order.total_fen - order.refunded_fen)


@dataclass(frozen=True)
class _Match:
    referral: Referral
    koc_customer_id: int


def earn_for_orders(session: Session, orders: Sequence[Order], clock: Clock) -> list[CommissionEntry]:
    """Earn commission on newly paid orders of customers referred by an approved KOC with an active rule.

    One indexed query finds the referrals that can earn; nothing else runs when there are none.
    Each order earns once (`commission:order:{order_id}`), within `rule.days` of the referral,
    `floor(paid × rate_bp / 10000)` clipped by the per-referee and the monthly cap.
    """
    workspace_ids = {o.workspace_id for o in orders}
    customer_ids = {o.customer_id for o in orders}
    rows = session.execute(
        select(Referral, KocProfile.customer_id, KocProfile.commission_rule_id)
        .join(
            KocProfile,
            (KocProfile.workspace_id == Referral.workspace_id)
            & (KocProfile.customer_id == Referral.referrer_customer_id),
        )
        .join(CommissionRule, CommissionRule.id == KocProfile.commission_rule_id)
        .where(
            Referral.workspace_id.in_(workspace_ids),
            Referral.referee_customer_id.in_(customer_ids),
            Referral.status.in_([str(s) for s in EARNING_STATUSES]),
            KocProfile.status == KocStatus.APPROVED,
            CommissionRule.is_active.is_(True),
        )
    ).all()
    if not rows:
        return []
    matches = {(r.workspace_id, r.referee_customer_id): _Match(r, koc) for r, koc, _rule in rows}
    mine = sorted((o for o in orders if (o.workspace_id, o.customer_id) in matches), key=lambda o: o.id)
    # lock every KOC involved first, in id order, so two batches touching the same KOCs cannot deadlock
    locked: dict[tuple[int, int], KocProfile | None] = {}
    for ws, koc_id in sorted(
        {(o.workspace_id, matches[(o.workspace_id, o.customer_id)].koc_customer_id) for o in mine}
    ):
        locked[(ws, koc_id)] = lock_koc(session, workspace_id=ws, customer_id=koc_id)
    entries: list[CommissionEntry] = []
    for order in mine:
        match = matches[(order.workspace_id, order.customer_id)]
        koc = locked[(order.workspace_id, match.koc_customer_id)]
        entry = _earn_one(session, order=order, match=match, koc=koc, clock=clock)
        if entry is not None:
            entries.append(entry)
    return entries


def _earn_one(
    session: Session, *, order: Order, match: _Match, koc: KocProfile | None, clock: Clock
) -> CommissionEntry | None:
    ws = order.workspace_id
    if koc is None or koc.status != KocStatus.APPROVED or koc.commission_rule_id is None:
        return None
    rule = session.get(CommissionRule, koc.commission_rule_id)
    if rule is None or not rule.is_active:
        return None
    if _by_key(session, ws, order_key(order.id)) is not None:
        return None  # a re-ingested order earns once
    paid_at = order.paid_at
    attributed = match.referral.attributed_at
    if paid_at < attributed or paid_at > attributed + timedelta(days=rule.days):
        return None
    amount = paid_fen(order) * rule.rate_bp // 10_000
    koc_id = match.koc_customer_id
    earns = (CommissionEntry.workspace_id == ws, CommissionEntry.koc_customer_id == koc_id)
    is_earn = CommissionEntry.kind == CommissionKind.EARN
    if rule.cap_per_referee_fen is not None:
        used = _sum(session, *earns, is_earn, CommissionEntry.referee_customer_id == order.customer_id)
        amount = min(amount, rule.cap_per_referee_fen - used)
    if rule.cap_per_month_fen is not None:
        start, end = month_bounds(paid_at.astimezone(brand_zone(session, ws)).date(), session, ws)
        used = _sum(session, *earns, is_earn, CommissionEntry.occurred_at >= start, CommissionEntry.occurred_at < end)
        amount = min(amount, rule.cap_per_month_fen - used)
    if amount <= 0:
        return None
    entry = CommissionEntry(
        workspace_id=ws,
        koc_customer_id=koc_id,
        referee_customer_id=order.customer_id,
        order_id=order.id,
        rule_id=rule.id,
        kind=CommissionKind.EARN,
        amount_fen=amount,
        reason=order.external_id[:200],
        idempotency_key=order_key(order.id),
        occurred_at=paid_at,
        created_at=clock.now(),
    )
    session.add(entry)
    session.flush()
    return entry


def reverse_for_refund(session: Session, order: Order, refund: Refund, clock: Clock) -> CommissionEntry | None:
    """Take back commission in proportion to the refunded fen (`commission:refund:{refund_id}`).

    The reversed total after this refund is `floor(earned × refunded / total)` (all of it on a full
    refund); never more than was earned on the order. One indexed query when the order earned nothing.
    """
    ws = order.workspace_id
    earned_row = session.execute(
        select(CommissionEntry.koc_customer_id, func.sum(CommissionEntry.amount_fen))
        .where(
            CommissionEntry.order_id == order.id,
            CommissionEntry.workspace_id == ws,
            CommissionEntry.kind == CommissionKind.EARN,
        )
        .group_by(CommissionEntry.koc_customer_id)
    ).first()
    if earned_row is None:
        return None
    koc_id, earned = int(earned_row[0]), int(earned_row[1] or 0)
    lock_koc(session, workspace_id=ws, customer_id=koc_id)
    if _by_key(session, ws, refund_key(refund.id)) is not None:
        return None
    already = -_sum(
        session,
        CommissionEntry.workspace_id == ws,
        CommissionEntry.order_id == order.id,
        CommissionEntry.kind == CommissionKind.REVERSE,
    )
    refunded = min(order.refunded_fen, order.total_fen)
    target = earned if order.total_fen <= 0 or refunded >= order.total_fen else earned * refunded // order.total_fen
    amount = min(target, earned) - already
    if amount <= 0:
        return None
    entry = CommissionEntry(
        workspace_id=ws,
        koc_customer_id=koc_id,
        referee_customer_id=order.customer_id,
        order_id=order.id,
        refund_id=refund.id,
        kind=CommissionKind.REVERSE,
        amount_fen=-amount,
        reason=order.external_id[:200],
        idempotency_key=refund_key(refund.id),
        occurred_at=as_utc(refund.refunded_at),
        created_at=clock.now(),
    )
    session.add(entry)
    session.flush()
    return entry


def adjust(session: Session, *, actor: Actor, data: AdjustIn, clock: Clock) -> CommissionEntry:
    """An operator's correction with a reason (growth:write); a retry with the same key changes nothing."""
    actor.require(Scope.GROWTH_WRITE)
    ws = actor.workspace_id
    profile = lock_koc(session, workspace_id=ws, customer_id=data.koc_customer_id)
    if profile is None:
        raise InvalidInput("koc_customer_id: not a KOC of this workspace", details={"field": "koc_customer_id"})
    key = f"commission:adjust:{data.idempotency_key or uuid.uuid4().hex}"
    if (done := _by_key(session, ws, key)) is not None:
        return done
    now = clock.now()
    entry = CommissionEntry(
        workspace_id=ws,
        koc_customer_id=data.koc_customer_id,
        kind=CommissionKind.ADJUST,
        amount_fen=data.amount_fen,
        reason=data.reason,
        idempotency_key=key,
        occurred_at=now,
        created_at=now,
    )
    session.add(entry)
    session.flush()
    record(
        session, actor, action="commission.adjust", entity_type="commission_entry", entity_id=entry.id, clock=clock,
        after={"koc_customer_id": entry.koc_customer_id, "amount_fen": entry.amount_fen, "reason": entry.reason},
    )  # fmt: skip
    return entry


# --- reading ---------------------------------------------------------------------------------


def _unsettled_condition() -> object:
    open_ids = select(CommissionStatement.id).where(CommissionStatement.status == StatementStatus.OPEN)
    return or_(CommissionEntry.statement_id.is_(None), CommissionEntry.statement_id.in_(open_ids))


def balance(session: Session, *, workspace_id: int, koc_customer_id: int) -> int:
    """The KOC's commission: the sum of every entry, settled or not."""
    return _sum(
        session, CommissionEntry.workspace_id == workspace_id, CommissionEntry.koc_customer_id == koc_customer_id
    )


def unsettled(session: Session, *, workspace_id: int, koc_customer_id: int) -> int:
    """What is not yet paid: entries outside any statement or in an open one."""
    return _sum(
        session,
        CommissionEntry.workspace_id == workspace_id,
        CommissionEntry.koc_customer_id == koc_customer_id,
        _unsettled_condition(),
    )


def list_entries(
    session: Session, *, workspace_id: int, koc_customer_id: int | None = None, limit: int = 100, offset: int = 0
) -> list[CommissionEntry]:
    """Entries, newest first (one KOC's when given)."""
    query = select(CommissionEntry).where(CommissionEntry.workspace_id == workspace_id)
    if koc_customer_id is not None:
        query = query.where(CommissionEntry.koc_customer_id == koc_customer_id)
    query = query.order_by(CommissionEntry.occurred_at.desc(), CommissionEntry.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(query))


@dataclass(frozen=True)
class KocSummary:
    """One KOC's line on the console ledger page."""

    customer_id: int
    name: str
    status: str
    rule_id: int | None
    balance_fen: int
    unsettled_fen: int
    entries: int


def koc_summaries(session: Session, *, workspace_id: int) -> list[KocSummary]:
    """Approved KOCs and anyone holding commission entries, with balances (largest balance first)."""
    sums = {
        int(koc): (int(total or 0), int(count))
        for koc, total, count in session.execute(
            select(CommissionEntry.koc_customer_id, func.sum(CommissionEntry.amount_fen), func.count())
            .where(CommissionEntry.workspace_id == workspace_id)
            .group_by(CommissionEntry.koc_customer_id)
        )
    }
    open_sums = {
        int(koc): int(total or 0)
        for koc, total in session.execute(
            select(CommissionEntry.koc_customer_id, func.sum(CommissionEntry.amount_fen))
            .where(CommissionEntry.workspace_id == workspace_id, _unsettled_condition())  # type: ignore[arg-type]
            .group_by(CommissionEntry.koc_customer_id)
        )
    }
    profiles = session.execute(
        select(KocProfile.customer_id, KocProfile.status, KocProfile.commission_rule_id, Customer.name)
        .join(Customer, Customer.id == KocProfile.customer_id)
        .where(
            KocProfile.workspace_id == workspace_id,
            or_(KocProfile.status == KocStatus.APPROVED, KocProfile.customer_id.in_(list(sums) or [0])),
        )
    ).all()
    rows = [
        KocSummary(
            customer_id=cid,
            name=name or f"#{cid}",
            status=str(status),
            rule_id=rule_id,
            balance_fen=sums.get(cid, (0, 0))[0],
            unsettled_fen=open_sums.get(cid, 0),
            entries=sums.get(cid, (0, 0))[1],
        )
        for cid, status, rule_id, name in profiles
    ]
    return sorted(rows, key=lambda r: (-r.balance_fen, r.customer_id))


def koc_customer(session: Session, *, workspace_id: int, customer_id: int) -> Customer:
    """A customer of the workspace who has a KOC profile, or NotFound."""
    row = session.scalar(
        select(Customer)
        .join(KocProfile, KocProfile.customer_id == Customer.id)
        .where(KocProfile.workspace_id == workspace_id, Customer.id == customer_id)
    )
    if row is None:
        raise NotFound(f"KOC {customer_id} not found")
    return row
