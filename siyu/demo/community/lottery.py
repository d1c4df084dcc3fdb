"""The demo brand's lottery, through the lottery services: a finished draw (fixed winners; entries
with points and from tasks; drawn at its close, the seed revealed, verifiable) and an open
probability draw taking entries."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from siyu.community.lottery.drawing import run_draw
from siyu.community.lottery.entries import enter, enter_with_points
from siyu.community.lottery.schemas import DrawIn, PrizeIn
from siyu.community.lottery.service import create_draw, open_draw
from siyu.demo.community.context import Ctx
from siyu.demo.community.timeline import Step
from siyu.kit.clock import FrozenClock
from siyu.models import CouponTemplate, DrawMethod, EntrySource, Member

ENTRY_POINTS = 50
FINISHED_ENTRIES = 200
OPEN_ENTRIES = 40


def plan(ctx: Ctx) -> None:
    """Create both draws and plan their entries (and the first one's draw)."""
    rng = ctx.rng
    coupon = ctx.session.scalar(
        select(CouponTemplate.id)
        .where(CouponTemplate.workspace_id == ctx.workspace_id, CouponTemplate.name == "积分兑换 30 元券")
        .limit(1)
    )
    opens, closes = ctx.local(12, 10), ctx.local(5, 20)
    setup = FrozenClock(opens - timedelta(hours=2))
    finished = create_draw(
        ctx.session,
        actor=ctx.actor,
        data=DrawIn(
            name="双 11 会员感恩抽奖",
            description="每次参与消耗 50 积分，或完成指定任务获得抽奖机会；开奖后可公开验证。",
            method=DrawMethod.FIXED,
            entry_points=ENTRY_POINTS,
            max_entries_per_member=3,
            opens_at=opens,
            closes_at=closes,
            prizes=[
                PrizeIn(name="一等奖 · 栖梧羊绒围巾", stock=1, winners=1),
                PrizeIn(name="二等奖 · 30 元无门槛券", stock=5, winners=5, coupon_template_id=coupon)
                if coupon is not None
                else PrizeIn(name="二等奖 · 500 积分", stock=5, winners=5, points=500),
                PrizeIn(name="三等奖 · 200 积分", stock=20, winners=20, points=200),
            ],
        ),
        clock=setup,
    )
    open_draw(ctx.session, actor=ctx.actor, draw_id=finished.id, clock=FrozenClock(opens))
    rows = ctx.session.execute(
        select(Member.customer_id, Member.points_balance).where(Member.workspace_id == ctx.workspace_id)
    )
    balances: dict[int, int] = {customer_id: balance for customer_id, balance in rows}
    people = [c for c in ctx.members if c not in ctx.busy]
    entrants = rng.sample(people, min(len(people), FINISHED_ENTRIES * 2 // 3))
    planned = 0
    for customer_id in entrants:
        tickets = rng.choice((1, 1, 1, 2, 3))
        for n in range(1, tickets + 1):
            if planned >= FINISHED_ENTRIES:
                break
            at = ctx.between(opens + timedelta(minutes=5), closes - timedelta(minutes=5))
            by_points = balances.get(customer_id, 0) >= ENTRY_POINTS * 3 + 500
            ctx.timeline.at(at, _entry(ctx, finished.id, customer_id, n, by_points))
            planned += 1
    ctx.timeline.at(closes, _draw(ctx, finished.id))

    opens_now = ctx.local(2, 10)
    current = create_draw(
        ctx.session,
        actor=ctx.actor,
        data=DrawIn(
            name="12 月会员日幸运抽奖",
            description="每次参与消耗 50 积分，人人有机会。",
            method=DrawMethod.PROBABILITY,
            entry_points=ENTRY_POINTS,
            max_entries_per_member=2,
            opens_at=opens_now,
            closes_at=ctx.local(-5, 20),
            prizes=[
                PrizeIn(name="一等奖 · 1000 积分", stock=3, probability_ppm=10_000, points=1_000),
                PrizeIn(name="二等奖 · 100 积分", stock=50, probability_ppm=150_000, points=100),
            ],
        ),
        clock=FrozenClock(opens_now - timedelta(hours=3)),
    )
    open_draw(ctx.session, actor=ctx.actor, draw_id=current.id, clock=FrozenClock(opens_now))
    for customer_id in rng.sample(people, min(len(people), OPEN_ENTRIES)):
        at = ctx.between(opens_now + timedelta(minutes=5), ctx.now - timedelta(minutes=5))
        ctx.timeline.at(at, _entry(ctx, current.id, customer_id, 1, balances.get(customer_id, 0) >= 600))


def _entry(ctx: Ctx, draw_id: int, customer_id: int, n: int, by_points: bool) -> Step:
    def step(clock: FrozenClock) -> None:
        if by_points:
            enter_with_points(
                ctx.session, workspace_id=ctx.workspace_id, draw_id=draw_id, customer_id=customer_id, n=n, clock=clock
            )
        else:
            enter(
                ctx.session,
                workspace_id=ctx.workspace_id,
                draw_id=draw_id,
                customer_id=customer_id,
                source=EntrySource.TASK,
                source_ref="task:share",
                idempotency_key=f"demo:lottery:{draw_id}:{customer_id}:{n}",
                clock=clock,
            )

    return step


def _draw(ctx: Ctx, draw_id: int) -> Step:
    def step(clock: FrozenClock) -> None:
        run_draw(ctx.session, actor=ctx.actor, draw_id=draw_id, clock=clock)

    return step
