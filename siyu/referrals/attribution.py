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
from siyu.loyalty.member_tasks.periods import local_day
from siyu.loyalty.program import brand_zone, local_midnight
from siyu.models import (
    Customer,
    GroupMember,
    Identity,
    LoyaltyTask,
    Member,
    Order,
    PointsEntry,
    PointsReason,
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
    TaskCompletion,
    TaskKind,
    VisitKind,
)
from siyu.referrals.programs import is_running, live_customer
from siyu.referrals.rewards import issue, lock_referrer, reconcile_referrer, referral_rewards, reverse

ORDER_CONDITIONS = (ReferralCondition.FIRST_ORDER, ReferralCondition.FIRST_ORDER_OVER)
COUNTED = (ReferralStatus.PENDING, ReferralStatus.QUALIFIED, ReferralStatus.FLAGGED, ReferralStatus.REVERSED)
"""Referrals that count towards the daily cap and the burst window (all but rejected ones)."""


def _local_day_start(session: Session, workspace_id: int, at: datetime) -> datetime:
    zone = brand_zone(session, workspace_id)
    return local_midnight(local_day(at, zone), zone)


def record_visit(
    session: Session,
    *,
    code: ReferralCode,
    kind: VisitKind,
    visitor_id: str | None,
    device_id: str | None,
    clock: Clock,
) -> ReferralVisit:
    """Record a share (by the member), a scan (by a visitor) or a view (the member's own page or
    poster, for the shared-device rule) of a code.

    A share bumps `shares_count`; a scan is always recorded (the add needs the latest one) but bumps
    `visits_count` only on the visitor's first scan of the code that brand-local day, so reloads are
    not new invites; a view bumps nothing (see `record_view`)."""
    kind = VisitKind(kind)
    visitor = (visitor_id or None) and visitor_id[:64]
    device = (device_id or None) and device_id[:64]
    now = clock.now()
    bump = None
    if kind == VisitKind.SHARE:
        bump = update(ReferralCode).values(shares_count=ReferralCode.shares_count + 1)
    elif kind == VisitKind.SCAN:
        again = visitor is not None and session.scalar(
            select(ReferralVisit.id)
            .where(
                ReferralVisit.code_id == code.id,
                ReferralVisit.kind == VisitKind.SCAN,
                ReferralVisit.visitor_id == visitor,
                ReferralVisit.occurred_at >= _local_day_start(session, code.workspace_id, now),
            )
            .limit(1)
        )
        if not again:
            bump = update(ReferralCode).values(visits_count=ReferralCode.visits_count + 1)
    visit = ReferralVisit(
        workspace_id=code.workspace_id,
        program_id=code.program_id,
        code_id=code.id,
        kind=kind,
        visitor_id=visitor,
        device_id=device,
        occurred_at=now,
    )
    session.add(visit)
    if bump is not None:
        session.execute(bump.where(ReferralCode.id == code.id).execution_options(synchronize_session=False))
    session.flush()
    session.refresh(code)
    return visit


def record_view(session: Session, *, code: ReferralCode, device_id: str | None, clock: Clock) -> None:
    """The member opened their own referral page or poster from this device: remember the device once
    (a `view` visit) so a "friend" scanning from it is caught by the shared-device rule."""
    if not device_id:
        return
    seen = session.scalar(
        select(ReferralVisit.id)
        .where(
            ReferralVisit.code_id == code.id,
            ReferralVisit.kind == VisitKind.VIEW,
            ReferralVisit.device_id == device_id[:64],
        )
        .limit(1)
    )
    if seen is None:
        record_visit(session, code=code, kind=VisitKind.VIEW, visitor_id=None, device_id=device_id, clock=clock)


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
            ReferralVisit.kind.in_([VisitKind.SHARE, VisitKind.VIEW]),
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
        day_start = _local_day_start(session, program.workspace_id, now)
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
    if status == ReferralStatus.PENDING and program.condition != ReferralCondition.JOINED_GROUP:
        # an added_staff referral qualifies at once; if the referee ordered between the scan and the
        # add, their first order decides now. A group join is left to `on_group_join`, as before.
        settle_pending(session, program=program, referral=referral, clock=clock)
    return referral


def settle_pending(session: Session, *, program: ReferralProgram, referral: Referral, clock: Clock) -> None:
    """Decide a pending referral whose program's condition may already be met; nothing when it is
    not (yet), or when the referral is not pending.

    - `added_staff`: qualifies (no order).
    - `joined_group`: qualifies if the referee is still in a group (the program's group if set) they
      joined at or after the attribution.
    - `first_order` / `first_order_over`: the referee's first paid order, if any, qualifies the
      referral, or rejects it `first_order_below_minimum` (`order_meets`).

    Used at attribution and when a flagged referral is approved on review."""
    if referral.status != ReferralStatus.PENDING:
        return
    if program.condition == ReferralCondition.ADDED_STAFF:
        qualify(session, referral=referral, order_id=None, clock=clock)
    elif program.condition == ReferralCondition.JOINED_GROUP:
        if _in_group_since(session, program=program, referral=referral):
            qualify(session, referral=referral, order_id=None, clock=clock)
    elif program.condition in ORDER_CONDITIONS:
        first = _first_order(session, referral.referee_customer_id)
        if first is not None:
            _decide_on_first_order(session, program=program, referral=referral, first=first, clock=clock)


def _in_group_since(session: Session, *, program: ReferralProgram, referral: Referral) -> bool:
    """Is the referee in a group (the program's, if set) that they joined at or after attribution?"""
    query = select(GroupMember.id).where(
        GroupMember.customer_id == referral.referee_customer_id,
        GroupMember.left_at.is_(None),
        GroupMember.joined_at >= referral.attributed_at,
    )
    if program.group_id is not None:
        query = query.where(GroupMember.group_id == program.group_id)
    return session.scalar(query.limit(1)) is not None


def _referral_of(session: Session, workspace_id: int, referee_id: int) -> Referral | None:
    return session.scalar(
        select(Referral).where(Referral.workspace_id == workspace_id, Referral.referee_customer_id == referee_id)
    )


def _complete_invite_task(session: Session, referral: Referral, clock: Clock) -> None:
    """Over the task's limit the referral still counts; the task pays no more."""
    from siyu.loyalty.member_tasks.service import complete_task_of_kind

    complete_task_of_kind(
        session,
        workspace_id=referral.workspace_id,
        customer_id=referral.referrer_customer_id,
        kind=TaskKind.INVITE,
        ref=f"referral:{referral.id}",
        clock=clock,
    )


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
    _reverse_invite_task(session, referral, clock)
    return referral


def _reverse_invite_task(session: Session, referral: Referral, clock: Clock) -> None:
    """Take back the invite-task points the qualification paid (completion ref `referral:{id}`) through
    the points ledger, key `referral:{id}:task:reverse` (spent points become debt, as for refunds)."""
    from siyu.loyalty.points import ledger

    completions = session.scalars(
        select(TaskCompletion)
        .join(LoyaltyTask, LoyaltyTask.id == TaskCompletion.task_id)
        .join(Member, Member.id == TaskCompletion.member_id)
        .where(
            TaskCompletion.workspace_id == referral.workspace_id,
            TaskCompletion.ref == f"referral:{referral.id}",
            TaskCompletion.points_entry_id.is_not(None),
            LoyaltyTask.kind == TaskKind.INVITE,
            Member.customer_id == referral.referrer_customer_id,
        )
        .order_by(TaskCompletion.id)
    )
    for number, completion in enumerate(completions):
        entry = session.get(PointsEntry, completion.points_entry_id)
        member = session.get(Member, completion.member_id)
        if entry is None or member is None:
            continue
        left = entry.amount - ledger.reversed_total(session, entry.id)
        if left <= 0:
            continue
        suffix = "" if number == 0 else f":{number + 1}"
        ledger.reverse_earn(
            session,
            member=member,
            entry_id=entry.id,
            points=left,
            description="邀请任务积分撤销",
            idempotency_key=f"referral:{referral.id}:task:reverse{suffix}",
            clock=clock,
            reason=PointsReason.REFUND,
            source_ref=f"referral:{referral.id}",
        )


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
        _decide_on_first_order(session, program=program, referral=referral, first=first, clock=clock)


def _decide_on_first_order(
    session: Session, *, program: ReferralProgram, referral: Referral, first: Order, clock: Clock
) -> None:
    """A pending referral of an order program and the referee's first paid order: qualify, or reject
    `first_order_below_minimum`."""
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
