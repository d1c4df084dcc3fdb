"""Visits, attribution and its fraud rules, qualification and refund reversal of referrals.

Attribution (`attribute`) runs when a new friend edge opens through a live code (the add listener)
and finds the scan visit of the same visitor cookie. Rules, in order:

1. nothing when the program is not running or the referrer is erased/merged;
2. the referee already has a referral in the workspace → that one stands (first wins);
3. REJECTED `self_referral` (same customer), `shared_identity` (phone or an identity value in
   common), `shared_device` (the device of one of the referrer's own shares), `not_new_customer`
   (not new per the add, or a relationship/order before the visit), `daily_cap` (the referrer's
   referrals of the brand-local day reached the cap);
4. FLAGGED `burst` when this makes `burst_threshold` referrals of the referrer in the window;
5. otherwise PENDING, and QUALIFIED at once for the `added_staff` condition.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.kit.errors import DomainError
from siyu.loyalty.member_tasks.periods import local_day
from siyu.loyalty.program import brand_zone
from siyu.models import (
    Customer,
    Identity,
    LoyaltyTask,
    Order,
    ProgramKind,
    Referral,
    ReferralCode,
    ReferralCondition,
    ReferralProgram,
    ReferralStatus,
    ReferralVisit,
    Refund,
    Relationship,
    RewardRole,
    TaskKind,
    VisitKind,
)
from siyu.referrals.programs import is_running, live_customer
from siyu.referrals.rewards import issue, lock_referrer, reconcile_referrer, referral_rewards, reverse

COUNTED = (ReferralStatus.PENDING, ReferralStatus.QUALIFIED, ReferralStatus.FLAGGED, ReferralStatus.REVERSED)
"""Referrals that count towards the daily cap and the burst window (all but rejected ones)."""


def record_visit(
    session: Session,
    *,
    code: ReferralCode,
    kind: VisitKind,
    visitor_id: str | None,
    device_id: str | None,
    clock: Clock,
) -> ReferralVisit:
    """Record a share (by the member) or a scan (by a visitor) of a code and bump its counter."""
    visit = ReferralVisit(
        workspace_id=code.workspace_id,
        program_id=code.program_id,
        code_id=code.id,
        kind=VisitKind(kind),
        visitor_id=(visitor_id or None) and visitor_id[:64],
        device_id=(device_id or None) and device_id[:64],
        occurred_at=clock.now(),
    )
    session.add(visit)
    if visit.kind == VisitKind.SHARE:
        bump = update(ReferralCode).values(shares_count=ReferralCode.shares_count + 1)
    else:
        bump = update(ReferralCode).values(visits_count=ReferralCode.visits_count + 1)
    session.execute(bump.where(ReferralCode.id == code.id).execution_options(synchronize_session=False))
    session.flush()
    session.refresh(code)
    return visit


def latest_scan(session: Session, *, workspace_id: int, visitor_id: str, at: datetime) -> ReferralVisit | None:
    """The visitor's latest scan of a referral link still inside its program's attribution window."""
    candidates = session.scalars(
        select(ReferralVisit)
        .where(
            ReferralVisit.workspace_id == workspace_id,
            ReferralVisit.visitor_id == visitor_id,
            ReferralVisit.kind == VisitKind.SCAN,
            ReferralVisit.occurred_at <= at,
            ReferralVisit.occurred_at > at - timedelta(days=365),
        )
        .order_by(ReferralVisit.occurred_at.desc(), ReferralVisit.id.desc())
        .limit(20)
    )
    for visit in candidates:
        program = session.get(ReferralProgram, visit.program_id)
        if program is not None and visit.occurred_at > at - timedelta(days=program.attribution_days):
            return visit
    return None


def _shares_identity(session: Session, referrer_id: int, referee_id: int) -> bool:
    people = session.execute(select(Customer.id, Customer.phone).where(Customer.id.in_([referrer_id, referee_id])))
    phones = dict(people.all())
    if phones.get(referrer_id) and phones.get(referrer_id) == phones.get(referee_id):
        return True
    rows = session.execute(
        select(Identity.customer_id, Identity.type, Identity.value).where(
            Identity.customer_id.in_([referrer_id, referee_id])
        )
    )
    values: dict[int, set[tuple[str, str]]] = {referrer_id: set(), referee_id: set()}
    for customer_id, kind, value in rows:
        values[customer_id].add((kind, value.strip().lower()))
    return bool(values[referrer_id] & values[referee_id])


def _shares_device(session: Session, code: ReferralCode, device_id: str | None) -> bool:
    if not device_id:
        return False
    own_codes = select(ReferralCode.id).where(ReferralCode.customer_id == code.customer_id)
    found = session.scalar(
        select(ReferralVisit.id)
        .where(
            ReferralVisit.code_id.in_(own_codes),
            ReferralVisit.kind == VisitKind.SHARE,
            ReferralVisit.device_id == device_id,
        )
        .limit(1)
    )
    return found is not None


def _not_new(session: Session, referee_id: int, is_new_customer: bool, before: datetime) -> bool:
    if not is_new_customer:
        return True
    earlier_edge = session.scalar(
        select(Relationship.id).where(Relationship.customer_id == referee_id, Relationship.added_at < before).limit(1)
    )
    if earlier_edge is not None:
        return True
    earlier_order = session.scalar(
        select(Order.id).where(Order.customer_id == referee_id, Order.paid_at < before).limit(1)
    )
    return earlier_order is not None


def _counted_since(session: Session, program_id: int, referrer_id: int, since: datetime) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                Referral.program_id == program_id,
                Referral.referrer_customer_id == referrer_id,
                Referral.attributed_at >= since,
                Referral.status.in_(COUNTED),
            )
        )
        or 0
    )


def _verdict(
    session: Session,
    *,
    program: ReferralProgram,
    code: ReferralCode,
    referee_id: int,
    visit: ReferralVisit | None,
    is_new_customer: bool,
    device_id: str | None,
    now: datetime,
) -> tuple[ReferralStatus, str | None]:
    referrer_id = code.customer_id
    if referee_id == referrer_id:
        return ReferralStatus.REJECTED, "self_referral"
    if _shares_identity(session, referrer_id, referee_id):
        return ReferralStatus.REJECTED, "shared_identity"
    if _shares_device(session, code, device_id or (visit.device_id if visit is not None else None)):
        return ReferralStatus.REJECTED, "shared_device"
    if _not_new(session, referee_id, is_new_customer, visit.occurred_at if visit is not None else now):
        return ReferralStatus.REJECTED, "not_new_customer"
    if program.daily_cap_per_referrer is not None:
        zone = brand_zone(session, program.workspace_id)
        day = local_day(now, zone)
        day_start = datetime(day.year, day.month, day.day, tzinfo=zone)
        if _counted_since(session, program.id, referrer_id, day_start) >= program.daily_cap_per_referrer:
            return ReferralStatus.REJECTED, "daily_cap"
    if program.burst_threshold is not None:
        since = now - timedelta(minutes=program.burst_window_minutes)
        if _counted_since(session, program.id, referrer_id, since) + 1 >= program.burst_threshold:
            return ReferralStatus.FLAGGED, "burst"
    return ReferralStatus.PENDING, None


def attribute(
    session: Session,
    *,
    workspace_id: int,
    referee_customer_id: int,
    code: ReferralCode,
    visit: ReferralVisit | None,
    is_new_customer: bool,
    device_id: str | None,
    clock: Clock,
) -> Referral | None:
    """Attribute a new customer to the code's member, applying every fraud rule (module docstring).

    Returns the referral (possibly rejected or flagged), the referee's existing referral when it is
    for the same code (a repeated report), or None: program not running, referrer gone, or the
    referee was already attributed to someone else."""
    if code.workspace_id != workspace_id:
        return None
    program = session.get(ReferralProgram, code.program_id)
    now = clock.now()
    if program is None or not is_running(program, now):
        return None
    if live_customer(session, workspace_id, code.customer_id) is None:
        return None
    if live_customer(session, workspace_id, referee_customer_id) is None:
        return None
    lock_referrer(session, program.id, code.customer_id)
    existing = _referral_of(session, workspace_id, referee_customer_id)
    if existing is not None:
        return existing if existing.code_id == code.id else None
    status, reason = _verdict(
        session,
        program=program,
        code=code,
        referee_id=referee_customer_id,
        visit=visit,
        is_new_customer=is_new_customer,
        device_id=device_id,
        now=now,
    )
    referral = Referral(
        workspace_id=workspace_id,
        program_id=program.id,
        code_id=code.id,
        referrer_customer_id=code.customer_id,
        referee_customer_id=referee_customer_id,
        visit_id=visit.id if visit is not None else None,
        status=status,
        reason=reason,
        attributed_at=now,
    )
    try:
        with session.begin_nested():
            session.add(referral)
            session.flush()
    except IntegrityError:
        existing = _referral_of(session, workspace_id, referee_customer_id)
        return existing if existing is not None and existing.code_id == code.id else None
    if status == ReferralStatus.PENDING and program.condition == ReferralCondition.ADDED_STAFF:
        qualify(session, referral=referral, order_id=None, clock=clock)
    return referral


def _referral_of(session: Session, workspace_id: int, referee_id: int) -> Referral | None:
    return session.scalar(
        select(Referral).where(Referral.workspace_id == workspace_id, Referral.referee_customer_id == referee_id)
    )


def _complete_invite_task(session: Session, referral: Referral, clock: Clock) -> None:
    from siyu.loyalty.member_tasks.service import complete_task

    key = session.scalar(
        select(LoyaltyTask.key)
        .where(
            LoyaltyTask.workspace_id == referral.workspace_id,
            LoyaltyTask.kind == TaskKind.INVITE,
            LoyaltyTask.is_active.is_(True),
        )
        .order_by(LoyaltyTask.id)
        .limit(1)
    )
    if key is None:
        return
    try:
        with session.begin_nested():
            complete_task(
                session,
                workspace_id=referral.workspace_id,
                customer_id=referral.referrer_customer_id,
                task_key=key,
                ref=f"referral:{referral.id}",
                clock=clock,
            )
    except DomainError:
        pass  # over the task's limit: the referral still counts, the task pays no more


def qualify(session: Session, *, referral: Referral, order_id: int | None, clock: Clock) -> Referral:
    """The program's condition is met: reward both sides (a fission referrer only at the target),
    reconcile unlocks and complete the referrer's invite task. Only a pending referral qualifies."""
    program = session.get(ReferralProgram, referral.program_id)
    assert program is not None
    lock_referrer(session, program.id, referral.referrer_customer_id)
    session.refresh(referral)
    if referral.status != ReferralStatus.PENDING:
        return referral
    referral.status = ReferralStatus.QUALIFIED
    referral.qualified_at = clock.now()
    referral.qualifying_order_id = order_id
    session.flush()
    if program.kind == ProgramKind.REFERRAL:
        issue(
            session,
            program=program,
            customer_id=referral.referrer_customer_id,
            role=RewardRole.REFERRER,
            spec=program.referrer_reward,
            key=f"referral:{referral.id}:referrer",
            description=f"邀请好友奖励：{program.name}",
            clock=clock,
            referral_id=referral.id,
        )
    issue(
        session,
        program=program,
        customer_id=referral.referee_customer_id,
        role=RewardRole.REFEREE,
        spec=program.referee_reward,
        key=f"referral:{referral.id}:referee",
        description=f"受邀奖励：{program.name}",
        clock=clock,
        referral_id=referral.id,
    )
    reconcile_referrer(
        session, program=program, referrer_id=referral.referrer_customer_id, clock=clock, referral_id=referral.id
    )
    _complete_invite_task(session, referral, clock)
    return referral


def reverse_referral(session: Session, *, referral: Referral, reason: str, clock: Clock) -> Referral:
    """Take back a qualified referral's rewards (and unlocks/targets no longer met); REVERSED."""
    program = session.get(ReferralProgram, referral.program_id)
    assert program is not None
    lock_referrer(session, program.id, referral.referrer_customer_id)
    session.refresh(referral)
    if referral.status != ReferralStatus.QUALIFIED:
        return referral
    referral.status = ReferralStatus.REVERSED
    referral.reversed_at = clock.now()
    referral.reason = reason[:200]
    session.flush()
    for reward in referral_rewards(session, referral):
        reverse(session, reward=reward, reason=reason, clock=clock)
    reconcile_referrer(session, program=program, referrer_id=referral.referrer_customer_id, clock=clock, reason=reason)
    return referral


# --- listeners' work --------------------------------------------------------------------------


def on_add(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int,
    is_new_customer: bool,
    visitor_id: str | None,
    clock: Clock,
) -> Referral | None:
    """A new friend edge through a live code: attribute it to the visitor's latest referral scan."""
    if not visitor_id:
        return None
    visit = latest_scan(session, workspace_id=workspace_id, visitor_id=visitor_id, at=clock.now())
    if visit is None:
        return None
    code = session.get(ReferralCode, visit.code_id)
    if code is None:
        return None
    return attribute(
        session,
        workspace_id=workspace_id,
        referee_customer_id=customer_id,
        code=code,
        visit=visit,
        is_new_customer=is_new_customer,
        device_id=None,
        clock=clock,
    )


def _first_order(session: Session, customer_id: int) -> Order | None:
    return session.scalar(
        select(Order).where(Order.customer_id == customer_id).order_by(Order.paid_at, Order.id).limit(1)
    )


def order_meets(program: ReferralProgram, order: Order) -> bool:
    """Does this (first) order satisfy the program's order condition, after refunds so far?"""
    kept = order.total_fen - order.refunded_fen
    if program.condition == ReferralCondition.FIRST_ORDER_OVER:
        return kept >= program.min_order_fen
    return kept > 0


def on_orders(session: Session, orders: Sequence[Order], clock: Clock) -> None:
    """Paid orders: a pending referee's first order qualifies the referral (order conditions only)."""
    customer_ids = {o.customer_id for o in orders}
    pending = list(
        session.scalars(
            select(Referral)
            .join(ReferralProgram, ReferralProgram.id == Referral.program_id)
            .where(
                Referral.workspace_id.in_({o.workspace_id for o in orders}),
                Referral.referee_customer_id.in_(customer_ids),
                Referral.status == ReferralStatus.PENDING,
                ReferralProgram.condition.in_([ReferralCondition.FIRST_ORDER, ReferralCondition.FIRST_ORDER_OVER]),
            )
            .order_by(Referral.id)
        )
    )
    batch = {o.id for o in orders}
    for referral in pending:
        first = _first_order(session, referral.referee_customer_id)
        if first is None or first.id not in batch:
            continue
        program = session.get(ReferralProgram, referral.program_id)
        assert program is not None
        if order_meets(program, first):
            qualify(session, referral=referral, order_id=first.id, clock=clock)
        else:
            referral.status = ReferralStatus.REJECTED
            referral.reason = "first_order_below_minimum"
            session.flush()


def on_group_join(session: Session, *, workspace_id: int, customer_id: int, group_id: int, clock: Clock) -> None:
    """A referee joined a group: qualifies a pending `joined_group` referral (the program's group if set)."""
    referral = session.scalar(
        select(Referral)
        .join(ReferralProgram, ReferralProgram.id == Referral.program_id)
        .where(
            Referral.workspace_id == workspace_id,
            Referral.referee_customer_id == customer_id,
            Referral.status == ReferralStatus.PENDING,
            ReferralProgram.condition == ReferralCondition.JOINED_GROUP,
            or_(ReferralProgram.group_id.is_(None), ReferralProgram.group_id == group_id),
        )
    )
    if referral is not None:
        qualify(session, referral=referral, order_id=None, clock=clock)


def on_refund(session: Session, order: Order, refund: Refund, clock: Clock) -> None:
    """A refund of a qualifying order: a full refund, or one leaving it under the minimum, reverses."""
    referral = session.scalar(
        select(Referral).where(Referral.qualifying_order_id == order.id, Referral.status == ReferralStatus.QUALIFIED)
    )
    if referral is None:
        return
    program = session.get(ReferralProgram, referral.program_id)
    assert program is not None
    if not order_meets(program, order):
        reverse_referral(session, referral=referral, reason=f"refund:{refund.id}", clock=clock)
