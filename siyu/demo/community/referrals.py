"""The demo brand's referral programs and their tree, through the referral services.

老带新 (first order; points for both sides; unlocks at 3 and 10 friends) runs the whole 60 days:
members (roots, a few of them busy inviters) bring customers who really became the brand's friends
in that time and had not bought yet; some of those invite in turn (three levels at most). Each
referral is a scan of the inviter's code minutes before the friend's add, then `attribute` at the
add; about 60% of referees place a first order, ingested through the order service, which
qualifies the referral (rewards, unlocks); two of those orders are refunded, which reverses them.
The fraud rules see: a member scanning their own code, friends scanning on the inviter's own phone
(shared device), one inviter over the daily cap, and two bursts held for review.

群裂变 (invite 3 friends into the fission group) starts 40 days ago: a few members invite friends
who join the group through the invitation, which qualifies them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import count

from sqlalchemy import func, select

from siyu.commerce.orders.ingest import ingest_orders
from siyu.commerce.orders.refunds import refund_order
from siyu.commerce.orders.schemas import OrderIn, OrderItemIn
from siyu.community.groups.membership import join_group
from siyu.customers.service.profile import ProfileInput, ingest_customer
from siyu.demo.community.context import Ctx
from siyu.demo.community.koc import APPROVED_DAYS_AGO, DECIDED_HOUR
from siyu.demo.community.timeline import Step
from siyu.demo.names import person_name
from siyu.demo.products import PRODUCTS
from siyu.kit.clock import FrozenClock
from siyu.models import (
    Customer,
    Gender,
    IdentityType,
    LiveCode,
    Order,
    OrderSource,
    Platform,
    ProgramKind,
    ProgramStatus,
    Referral,
    ReferralCode,
    ReferralCondition,
    ReferralVisit,
    Relationship,
    VisitKind,
)
from siyu.referrals.attribution import attribute, record_visit
from siyu.referrals.codes import code_for
from siyu.referrals.programs import create_program, set_status
from siyu.referrals.schemas import ProgramIn, RewardSpecIn, UnlockIn

DAYS = 60
MAX_REFERRALS = 150
"""Referrals of existing friends in the 老带新 program (the fraud cases come on top)."""
MAX_FISSION = 24
ROOTS = 30
MAX_DEPTH = 3
ORDER_RATE = 0.55
REFUNDS = 2
REFERRER_POINTS, REFEREE_POINTS = 100, 50
DAILY_CAP, BURST, BURST_MINUTES = 5, 4, 60
FISSION_STARTED_DAYS_AGO = 40
FISSION_INVITERS = 4
FISSION_TARGET = 3


@dataclass
class Planned:
    """One referral of the plan: who brought whom, when the friend added staff, how deep."""

    referee: int
    referrer: int
    depth: int
    at: datetime
    program_id: int
    device: str | None = None
    """The device of the scan; the referrer's own for the shared-device cases."""


@dataclass
class Plan:
    programs: dict[str, int]
    referrals: list[Planned]
    orders: dict[int, datetime]
    """Referee → when their first order is paid."""
    batches: dict[tuple[date, bool], list[OrderIn]] = field(default_factory=dict)
    """Orders ingested together: per brand-local day, before or after the KOCs' approval."""


def _program(ctx: Ctx, *, fission_group_id: int) -> dict[str, int]:
    session, actor = ctx.session, ctx.actor
    live_code = session.scalar(
        select(LiveCode.id).where(LiveCode.workspace_id == ctx.workspace_id).order_by(LiveCode.id).limit(1)
    )
    started = FrozenClock(ctx.local(DAYS + 1, 9))
    referral = create_program(
        session,
        actor=actor,
        data=ProgramIn(
            name="老带新 · 邀好友首单有礼",
            kind=ProgramKind.REFERRAL,
            condition=ReferralCondition.FIRST_ORDER,
            live_code_id=live_code,
            referrer_reward=RewardSpecIn(points=REFERRER_POINTS),
            referee_reward=RewardSpecIn(points=REFEREE_POINTS),
            attribution_days=7,
            daily_cap_per_referrer=DAILY_CAP,
            burst_threshold=BURST,
            burst_window_minutes=BURST_MINUTES,
            point_cost_fen=1,
            poster_title="栖梧 · 好友专属礼",
            poster_text="扫码添加栖梧顾问，首单立享 50 积分",
            unlocks=[
                UnlockIn(threshold=3, name="邀请 3 位好友礼：300 积分", reward=RewardSpecIn(points=300)),
                UnlockIn(threshold=10, name="邀请 10 位好友大礼：1000 积分", reward=RewardSpecIn(points=1_000)),
            ],
        ),
        clock=started,
    )
    set_status(session, actor=actor, program_id=referral.id, status=ProgramStatus.ACTIVE, clock=started)
    fission_started = FrozenClock(ctx.local(FISSION_STARTED_DAYS_AGO, 9))
    fission = create_program(
        session,
        actor=actor,
        data=ProgramIn(
            name="群裂变 · 邀 3 位好友进群领礼",
            kind=ProgramKind.GROUP_FISSION,
            condition=ReferralCondition.JOINED_GROUP,
            group_id=fission_group_id,
            target_count=FISSION_TARGET,
            referrer_reward=RewardSpecIn(points=200),
            referee_reward=RewardSpecIn(points=20),
            poster_title="一起进群领福利",
            poster_text="邀 3 位好友进群，得 200 积分",
        ),
        clock=fission_started,
    )
    set_status(session, actor=actor, program_id=fission.id, status=ProgramStatus.ACTIVE, clock=fission_started)
    return {"referral": referral.id, "fission": fission.id}


def _candidates(ctx: Ctx) -> list[tuple[int, datetime]]:
    """Friends who first added staff in the last 60 days and have not bought: (customer, first add)."""
    session = ctx.session
    firsts = (
        select(Relationship.customer_id, func.min(Relationship.added_at).label("first_add"))
        .where(Relationship.workspace_id == ctx.workspace_id)
        .group_by(Relationship.customer_id)
        .subquery()
    )
    bought = select(Order.customer_id).where(Order.workspace_id == ctx.workspace_id)
    rows = session.execute(
        select(firsts.c.customer_id, firsts.c.first_add)
        .join(Customer, Customer.id == firsts.c.customer_id)
        .where(
            firsts.c.first_add > ctx.now - timedelta(days=DAYS - 1),
            firsts.c.first_add < ctx.now - timedelta(hours=3),
            firsts.c.customer_id.not_in(bought),
            Customer.erased_at.is_(None),
            Customer.merged_into_id.is_(None),
        )
        .order_by(firsts.c.first_add, firsts.c.customer_id)
    ).all()
    return [(cid, at) for cid, at in rows]


def _roots(ctx: Ctx) -> list[int]:
    """Members who were the brand's friends before the program started, busiest inviters first."""
    session = ctx.session
    early = select(Relationship.customer_id).where(
        Relationship.workspace_id == ctx.workspace_id, Relationship.added_at < ctx.now - timedelta(days=DAYS + 5)
    )
    pool = sorted(set(session.scalars(early)) & set(ctx.members))
    return ctx.rng.sample(pool, min(ROOTS, len(pool)))


def plan(ctx: Ctx, *, fission_group_id: int) -> Plan:
    """Create the programs and plan every referral, visit, order and refund on the timeline."""
    programs = _program(ctx, fission_group_id=fission_group_id)
    rng = ctx.rng
    roots = _roots(ctx)
    if len(roots) < 12:
        return Plan(programs, [], {})
    ctx.kocs = roots[:2]
    cap_referrer, burst_referrers, self_referrer = roots[2], roots[3:5], roots[5]
    fission_inviters = roots[6 : 6 + FISSION_INVITERS]
    normal_roots = [r for r in roots if r not in {cap_referrer, self_referrer, *burst_referrers, *fission_inviters}]
    weights = {r: (12.0 if r in ctx.kocs else 3.0 / (1 + n % 7)) for n, r in enumerate(normal_roots)}
    depth: dict[int, int] = dict.fromkeys(roots, 0)
    last: dict[int, datetime] = {}
    per_day: dict[tuple[int, date], int] = defaultdict(int)
    referrals: list[Planned] = []
    fission_start = ctx.local(FISSION_STARTED_DAYS_AGO - 1, 9)
    fission_count = 0
    inviters: list[int] = []
    candidates = _candidates(ctx)
    wanted = (MAX_REFERRALS + MAX_FISSION) * 6 // 5
    if len(candidates) > wanted:
        candidates = sorted(rng.sample(candidates, wanted), key=lambda c: (c[1], c[0]))
    ready: dict[int, datetime] = {}
    for customer_id, added in candidates:
        if len(referrals) >= MAX_REFERRALS + MAX_FISSION:
            break
        day = added.astimezone(ctx.zone).date()
        if added > fission_start and fission_count < MAX_FISSION and rng.random() < 0.2:
            referrer = fission_inviters[fission_count % len(fission_inviters)]
            referrals.append(Planned(customer_id, referrer, 1, added, programs["fission"]))
            fission_count += 1
            ctx.busy.add(customer_id)
            continue
        inviters = [c for c, at in ready.items() if depth[c] < MAX_DEPTH and at <= added]
        pool = normal_roots + inviters
        pool_weights = [weights.get(c, 0.8) for c in pool]
        for _ in range(5):
            referrer = rng.choices(pool, weights=pool_weights)[0]
            recent = last.get(referrer)
            if (recent is None or added - recent >= timedelta(hours=2)) and per_day[(referrer, day)] < 3:
                break
        else:
            continue
        last[referrer] = added
        per_day[(referrer, day)] += 1
        depth[customer_id] = depth[referrer] + 1
        ready[customer_id] = added + timedelta(days=1)
        referrals.append(Planned(customer_id, referrer, depth[customer_id], added, programs["referral"]))
    plan = Plan(programs, referrals, {})
    starts = {
        programs["referral"]: ctx.local(DAYS + 1, 9) + timedelta(minutes=5),
        programs["fission"]: ctx.local(FISSION_STARTED_DAYS_AGO, 9) + timedelta(minutes=5),
    }
    for planned in referrals:
        start = starts[planned.program_id]
        _visits(ctx, planned, earliest=max(start, ready.get(planned.referrer, start)))
        if planned.program_id == programs["referral"] and rng.random() < ORDER_RATE:
            latest = min(planned.at + timedelta(days=12), ctx.now - timedelta(hours=1))
            if latest > planned.at + timedelta(hours=2):
                paid = ctx.between(planned.at + timedelta(hours=2), latest)
                plan.orders[planned.referee] = paid
                _order(ctx, plan, planned.referee, paid, f"RF{planned.referee:08d}")
        elif planned.program_id == programs["fission"] and rng.random() < 0.85:
            joined = planned.at + timedelta(minutes=rng.randrange(2, 90))
            ctx.timeline.at(joined, _joins(ctx, planned))
    _refunds(ctx, plan)
    _koc_repeat_orders(ctx, plan)
    _schedule_orders(ctx, plan)
    _fraud_cases(ctx, programs["referral"], cap_referrer, burst_referrers, self_referrer)
    for inviter in fission_inviters:
        ctx.timeline.at(fission_start - timedelta(hours=rng.randrange(1, 20)), _joins_as_inviter(ctx, inviter))
    return plan


def _visits(ctx: Ctx, planned: Planned, *, earliest: datetime) -> None:
    """The inviter shares, the friend scans minutes before adding, and is attributed at the add;
    a share is often also scanned by someone who never adds."""
    rng = ctx.rng
    scan_at = planned.at - timedelta(minutes=rng.randrange(3, 90))
    share_at = max(scan_at - timedelta(minutes=rng.randrange(20, 60 * 30)), earliest)
    stranger_at = scan_at + timedelta(minutes=rng.randrange(5, 600)) if rng.random() < 0.5 else None
    _steps(ctx, planned, share_at=share_at, scan_at=scan_at, stranger_at=stranger_at)


def _steps(ctx: Ctx, planned: Planned, *, share_at: datetime, scan_at: datetime, stranger_at: datetime | None) -> None:
    """Plan a referral's share, scan, attribution (and a stranger's scan that never converts).

    The referee id is read when the steps run: a fraud case's friend is only created then."""
    holder: dict[str, ReferralVisit] = {}

    def visit(clock: FrozenClock, kind: VisitKind, visitor: str | None, device: str | None) -> ReferralVisit:
        code = _code(ctx, planned, clock)
        return record_visit(ctx.session, code=code, kind=kind, visitor_id=visitor, device_id=device, clock=clock)

    def share(clock: FrozenClock) -> None:
        visit(clock, VisitKind.SHARE, None, f"dev-{planned.referrer}")

    def scan(clock: FrozenClock) -> None:
        device = planned.device or f"dev-{planned.referee}"
        holder["visit"] = visit(clock, VisitKind.SCAN, f"demo-visitor-{planned.referee}", device)

    def stranger(clock: FrozenClock) -> None:
        visit(clock, VisitKind.SCAN, f"demo-visitor-x{planned.referee}", None)

    def attributed(clock: FrozenClock) -> None:
        attribute(
            ctx.session,
            workspace_id=ctx.workspace_id,
            referee_customer_id=planned.referee,
            code=_code(ctx, planned, clock),
            visit=holder["visit"],
            is_new_customer=planned.referee != planned.referrer,
            device_id=None,
            clock=clock,
        )

    ctx.timeline.at(share_at, share)
    ctx.timeline.at(scan_at, scan)
    ctx.timeline.at(planned.at, attributed)
    if stranger_at is not None:
        ctx.timeline.at(stranger_at, stranger)


def _code(ctx: Ctx, planned: Planned, clock: FrozenClock) -> ReferralCode:
    """The referrer's code, created at their first share (kept for the later steps)."""
    key = (planned.program_id, planned.referrer)
    code = ctx.codes.get(key)
    if code is None:
        code = code_for(
            ctx.session,
            workspace_id=ctx.workspace_id,
            program_id=planned.program_id,
            customer_id=planned.referrer,
            clock=clock,
        )
        ctx.codes[key] = code
    return code


def _joins(ctx: Ctx, planned: Planned) -> Step:
    def step(clock: FrozenClock) -> None:
        assert ctx.fission_group_id is not None
        join_group(
            ctx.session,
            workspace_id=ctx.workspace_id,
            group_id=ctx.fission_group_id,
            customer_id=planned.referee,
            at=clock.now(),
            clock=clock,
            scene="invite",
            invited_by_customer_id=planned.referrer,
        )

    return step


def _joins_as_inviter(ctx: Ctx, inviter: int) -> Step:
    def step(clock: FrozenClock) -> None:
        assert ctx.fission_group_id is not None
        join_group(
            ctx.session,
            workspace_id=ctx.workspace_id,
            group_id=ctx.fission_group_id,
            customer_id=inviter,
            at=clock.now(),
            clock=clock,
            scene="live_code",
        )

    return step


def _order(ctx: Ctx, plan: Plan, customer_id: int, paid_at: datetime, external_id: str) -> None:
    """An order of one or two garments on the mini programme, put in its day's batch."""
    rng = ctx.rng
    products = rng.sample(PRODUCTS, rng.choice((1, 1, 2)))
    items = [OrderItemIn(sku=p.sku, name=p.name, category=p.category, amount_fen=p.price_fen) for p in products]
    order = OrderIn(
        platform=Platform.MINIPROGRAM,
        external_id=external_id,
        customer_id=customer_id,
        total_fen=sum(i.amount_fen for i in items),
        paid_at=paid_at,
        items=items,
        campaign="referral",
    )
    key = (paid_at.astimezone(ctx.zone).date(), paid_at >= ctx.local(APPROVED_DAYS_AGO, DECIDED_HOUR))
    plan.batches.setdefault(key, []).append(order)


def _schedule_orders(ctx: Ctx, plan: Plan) -> None:
    """Each batch is ingested through the order service at its last order's payment (as a shop's
    sync would), which fires the listeners: points, referral qualification, commission."""
    for orders in plan.batches.values():
        orders.sort(key=lambda o: (o.paid_at, o.external_id))

        def step(clock: FrozenClock, orders: list[OrderIn] = orders) -> None:
            ingest_orders(ctx.session, actor=ctx.actor, orders=orders, source=OrderSource.DEMO, clock=clock)

        ctx.timeline.at(orders[-1].paid_at + timedelta(minutes=1), step)


def _refunds(ctx: Ctx, plan: Plan) -> None:
    """Two first orders sent back in full a few days later (a KOC's referee's among them when there is one)."""
    chosen: list[int] = []
    approved = ctx.local(APPROVED_DAYS_AGO, DECIDED_HOUR)
    koc_referees = [
        p.referee
        for p in plan.referrals
        if p.referrer in ctx.kocs
        and p.referee in plan.orders
        and approved < plan.orders[p.referee] < ctx.now - timedelta(days=8)
    ]
    if koc_referees:
        chosen.append(koc_referees[len(koc_referees) // 2])
    others = sorted(c for c in plan.orders if c not in chosen and plan.orders[c] < ctx.now - timedelta(days=8))
    chosen += ctx.rng.sample(others, min(REFUNDS - len(chosen), len(others)))
    for customer_id in chosen:
        refunded_at = min(plan.orders[customer_id] + timedelta(days=ctx.rng.randrange(2, 6)), ctx.now)
        ctx.timeline.at(refunded_at, _refund(ctx, f"RF{customer_id:08d}"))


def _refund(ctx: Ctx, external_id: str) -> Step:
    def step(clock: FrozenClock) -> None:
        order_id = ctx.session.scalar(
            select(Order.id).where(Order.workspace_id == ctx.workspace_id, Order.external_id == external_id)
        )
        assert order_id is not None
        refund_order(
            ctx.session,
            actor=ctx.actor,
            order_id=order_id,
            external_id=f"{external_id}-R",
            amount_fen=None,
            items=None,
            reason="七天无理由退货",
            refunded_at=clock.now(),
            clock=clock,
        )

    return step


def _koc_repeat_orders(ctx: Ctx, plan: Plan) -> None:
    """KOCs' friends come back for a second order within a few weeks (their commission)."""
    for planned in plan.referrals:
        first = plan.orders.get(planned.referee)
        if planned.referrer not in ctx.kocs or first is None or ctx.rng.random() < 0.4:
            continue
        again = first + timedelta(days=ctx.rng.randrange(3, 20), hours=ctx.rng.randrange(0, 10))
        if again < ctx.now - timedelta(hours=1):
            _order(ctx, plan, planned.referee, again, f"RF{planned.referee:08d}-2")


# --- fraud cases ----------------------------------------------------------------------------------


def _fresh(ctx: Ctx, n: int, program_id: int, referrer: int, at: datetime, *, device: str | None = None) -> Planned:
    """A brand-new friend (created at the add, as a live code add would) referred by `referrer`."""
    name = person_name(ctx.rng, Gender.FEMALE)
    holder: dict[str, int] = {}
    planned = Planned(0, referrer, 1, at, program_id, device=device)

    def create(clock: FrozenClock) -> None:
        result = ingest_customer(
            ctx.session,
            actor=ctx.actor,
            identities=[(IdentityType.WECOM_EXTERNAL_USERID, f"wmQiwuRef{n:05d}")],
            profile=ProfileInput(values={"name": name}),
            source="demo",
            clock=clock,
        )
        holder["id"] = result.customer.id
        planned.referee = result.customer.id

    ctx.timeline.at(at - timedelta(hours=2), create)
    return planned


def _fraud_cases(ctx: Ctx, program_id: int, cap_referrer: int, bursts: list[int], self_referrer: int) -> None:
    rng = ctx.rng
    serial = count(1)
    # one eager inviter: seven friends in a day, two over the daily cap
    for k in range(DAILY_CAP + 2):
        _fraud_visit(ctx, _fresh(ctx, next(serial), program_id, cap_referrer, ctx.local(20, 10 + k, 40)))
    # two bursts: five, then four friends within the hour; the later ones held for review
    for referrer, size, days_ago in ((bursts[0], 5, 9), (bursts[1], 4, 3)):
        for k in range(size):
            _fraud_visit(ctx, _fresh(ctx, next(serial), program_id, referrer, ctx.local(days_ago, 20, 5 + 8 * k)))
    # "friends" scanning on the inviter's own phone
    for referrer, days_ago in ((bursts[0], 30), (cap_referrer, 14)):
        _fraud_visit(
            ctx,
            _fresh(
                ctx,
                next(serial),
                program_id,
                referrer,
                ctx.local(days_ago, 15, rng.randrange(60)),
                device=f"dev-{referrer}",
            ),
        )
    # a member scanning their own poster
    _fraud_visit(ctx, Planned(self_referrer, self_referrer, 1, ctx.local(25, 21), program_id, device="dev-own"))


def _fraud_visit(ctx: Ctx, planned: Planned) -> None:
    """A fraud case's share half an hour before the scan, the scan minutes before the add."""
    scan_at = planned.at - timedelta(minutes=4)
    _steps(ctx, planned, share_at=scan_at - timedelta(minutes=30), scan_at=scan_at, stranger_at=None)


def referral_ids(ctx: Ctx, program_id: int) -> list[int]:
    """The program's referrals, in id order (for the report and the tests)."""
    return list(ctx.session.scalars(select(Referral.id).where(Referral.program_id == program_id).order_by(Referral.id)))
