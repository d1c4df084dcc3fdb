"""The demo brand's recent loyalty activity, through the services themselves: paid cards, check-ins
over the last two weeks, coupons issued, redeemed, expired and voided, and rewards redeemed in every
fulfilment state. Each step runs with a clock set to when it happened."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.commerce.coupons.expiry import expire_due as expire_coupons
from siyu.commerce.coupons.issuing import issue_coupon
from siyu.commerce.coupons.redeeming import redeem_for_order
from siyu.commerce.coupons.schemas import CouponTemplateIn
from siyu.commerce.coupons.service import create_template, void_coupon
from siyu.kit.clock import Clock, FrozenClock, as_utc
from siyu.loyalty.member_tasks.definitions import create_task
from siyu.loyalty.member_tasks.schemas import TaskIn
from siyu.loyalty.member_tasks.service import check_in
from siyu.loyalty.rewards.catalog import create_reward
from siyu.loyalty.rewards.schemas import RewardIn
from siyu.loyalty.rewards.service import cancel_redemption, deliver_redemption, redeem, ship_redemption
from siyu.loyalty.tiers.service import buy_paid_tier
from siyu.models import CouponKind, LimitPeriod, Member, Order, RewardKind, TaskKind, Tier

CHECK_IN_DAYS = 14
CHECK_IN_MEMBERS = 30
PAID_CARD_MEMBERS = 3
ADDRESS = {"name": "林晓", "phone": "13800138000", "address": "上海市静安区南京西路 1266 号"}


@dataclass
class Activity:
    check_ins: int = 0
    coupons_redeemed: int = 0
    coupons_issued: int = 0
    coupons_expired: int = 0
    coupons_voided: int = 0
    redemptions: int = 0


def _at(day: datetime, hour: int, zone: ZoneInfo) -> FrozenClock:
    local = datetime.combine(day.astimezone(zone).date(), time(hour, 30), tzinfo=zone)
    return FrozenClock(local)


def tasks(session: Session, actor: Actor, clock: Clock) -> None:
    """签到 with streak bonuses, 晒单, share and complete-the-profile."""
    for data in (
        TaskIn(key="check_in", kind=TaskKind.CHECK_IN, name="每日签到", points=5, streak_bonuses={"3": 10, "7": 30}),
        TaskIn(key="post", kind=TaskKind.POST, name="晒单分享", points=20, limit_period=LimitPeriod.WEEK),
        TaskIn(key="share", kind=TaskKind.SHARE, name="分享新品", points=5, limit_count=3),
        TaskIn(
            key="profile",
            kind=TaskKind.PROFILE,
            name="完善资料",
            points=50,
            limit_period=LimitPeriod.LIFETIME,
            settings={"required_fields": ["birthday", "city"]},
        ),
    ):
        create_task(session, actor=actor, data=data, clock=clock)


def paid_cards(session: Session, workspace_id: int, card: Tier, customers: list[int], clock: Clock) -> None:
    """A few members bought the 黑卡 in the last month."""
    for n, customer_id in enumerate(customers[:PAID_CARD_MEMBERS]):
        buy_paid_tier(
            session,
            workspace_id=workspace_id,
            customer_id=customer_id,
            tier_id=card.id,
            idempotency_key=f"demo:card:{customer_id}",
            clock=FrozenClock(clock.now() - timedelta(days=5 + 7 * n)),
        )


def check_ins(
    session: Session, workspace_id: int, customers: list[int], clock: Clock, zone: ZoneInfo, rng: random.Random
) -> int:
    """Members checking in on most of the last 14 days (streaks, missed days, bonuses)."""
    done = 0
    habits = {customer_id: rng.uniform(0.45, 0.95) for customer_id in customers[:CHECK_IN_MEMBERS]}
    for days_ago in range(CHECK_IN_DAYS, 0, -1):
        day = clock.now() - timedelta(days=days_ago)
        for customer_id, habit in habits.items():
            if rng.random() < habit:
                check_in(session, workspace_id=workspace_id, customer_id=customer_id, clock=_at(day, 9, zone))
                done += 1
    return done


def coupons(session: Session, actor: Actor, clock: Clock, rng: random.Random, activity: Activity) -> int:
    """Two templates: coupons used on recent orders, coupons still open, expired and voided ones;
    returns the template for the rewards mall's coupon reward."""
    workspace_id = actor.workspace_id
    now = clock.now()
    welcome = create_template(
        session,
        actor=actor,
        data=CouponTemplateIn(
            name="新客立减 20 元", kind=CouponKind.AMOUNT_OFF, value=2_000, threshold_fen=12_900, valid_days=30
        ),
        clock=clock,
    )
    member_day = create_template(
        session,
        actor=actor,
        data=CouponTemplateIn(
            name="会员日满 500 减 50", kind=CouponKind.AMOUNT_OFF, value=5_000, threshold_fen=50_000, valid_days=14
        ),
        clock=clock,
    )
    reward_template = create_template(
        session,
        actor=actor,
        data=CouponTemplateIn(name="积分兑换 30 元券", kind=CouponKind.AMOUNT_OFF, value=3_000, valid_days=30),
        clock=clock,
    )
    # used: recent orders that paid with a coupon issued a few days before
    recent = session.execute(
        select(Order.id, Order.customer_id, Order.paid_at)
        .where(
            Order.workspace_id == workspace_id,
            Order.paid_at >= now - timedelta(days=60),
            Order.total_fen >= 12_900,
            Order.refunded_fen == 0,
            Order.coupon_code.is_(None),
        )
        .order_by(Order.paid_at, Order.id)
    ).all()
    used_by: set[int] = set()
    for order_id, customer_id, paid_at in recent:
        if customer_id in used_by or len(used_by) == 12:
            continue
        used_by.add(customer_id)
        issued_at = FrozenClock(as_utc(paid_at) - timedelta(days=3))
        coupon = issue_coupon(
            session,
            workspace_id=workspace_id,
            template_id=welcome.id,
            customer_id=customer_id,
            source="demo",
            idempotency_key=f"demo:used:{order_id}",
            clock=issued_at,
        )
        order = session.get(Order, order_id)
        assert order is not None
        order.coupon_code = coupon.code
        redeem_for_order(session, order=order, clock=FrozenClock(as_utc(paid_at)))
        activity.coupons_redeemed += 1
    members = list(session.scalars(select(Member.customer_id).where(Member.workspace_id == workspace_id)))
    rng.shuffle(members)
    open_to, lapsed_to = members[:20], members[20:28]
    for customer_id in open_to:
        issue_coupon(
            session,
            workspace_id=workspace_id,
            template_id=member_day.id,
            customer_id=customer_id,
            source="demo",
            idempotency_key=f"demo:open:{customer_id}",
            clock=FrozenClock(now - timedelta(days=rng.randrange(1, 10))),
        )
        activity.coupons_issued += 1
    for customer_id in lapsed_to:
        issue_coupon(
            session,
            workspace_id=workspace_id,
            template_id=member_day.id,
            customer_id=customer_id,
            source="demo",
            idempotency_key=f"demo:lapsed:{customer_id}",
            clock=FrozenClock(now - timedelta(days=40)),
        )
    activity.coupons_expired = expire_coupons(session, workspace_id=workspace_id, clock=clock)
    voided = members[28:30]
    for customer_id in voided:
        coupon = issue_coupon(
            session,
            workspace_id=workspace_id,
            template_id=member_day.id,
            customer_id=customer_id,
            source="demo",
            idempotency_key=f"demo:void:{customer_id}",
            clock=FrozenClock(now - timedelta(days=2)),
        )
        void_coupon(session, actor=actor, coupon_id=coupon.id, reason="重复发放，作废", clock=clock)
        activity.coupons_voided += 1
    return reward_template.id


def rewards(
    session: Session, actor: Actor, coupon_template_id: int, richest: list[int], clock: Clock, activity: Activity
) -> None:
    """The mall: a coupon, a gift with stock, a privilege and a lottery entry; redemptions in every
    state (completed; gifts awaiting shipment, shipped, delivered and cancelled)."""
    workspace_id = actor.workspace_id
    now = clock.now()
    coupon = create_reward(
        session,
        actor=actor,
        data=RewardIn(
            name="30 元无门槛券", kind=RewardKind.COUPON, points_price=300, coupon_template_id=coupon_template_id
        ),
        clock=clock,
    )
    gift = create_reward(
        session,
        actor=actor,
        data=RewardIn(name="栖梧帆布托特包", kind=RewardKind.GIFT, points_price=800, stock=50, per_member_limit=1),
        clock=clock,
    )
    privilege = create_reward(
        session,
        actor=actor,
        data=RewardIn(name="专属搭配师一对一", kind=RewardKind.PRIVILEGE, points_price=500),
        clock=clock,
    )
    lottery = create_reward(
        session,
        actor=actor,
        data=RewardIn(name="年终抽奖券", kind=RewardKind.LOTTERY_ENTRY, points_price=100),
        clock=clock,
    )
    plan = [(coupon, 3), (privilege, 2), (lottery, 4), (gift, 6)]
    gifts = []
    n = 0
    for reward, times in plan:
        for _ in range(times):
            customer_id = richest[n % len(richest)]
            made = redeem(
                session,
                workspace_id=workspace_id,
                customer_id=customer_id,
                reward_id=reward.id,
                idempotency_key=f"demo:redeem:{n}",
                address=ADDRESS if reward.kind == RewardKind.GIFT else None,
                clock=FrozenClock(now - timedelta(days=6 - n % 5, hours=n)),
            )
            if reward.kind == RewardKind.GIFT:
                gifts.append(made.id)
            n += 1
            activity.redemptions += 1
    # gifts: two delivered, two shipped, one cancelled, one still awaiting shipment
    for k, redemption_id in enumerate(gifts[:4]):
        ship_redemption(
            session,
            actor=actor,
            redemption_id=redemption_id,
            tracking_no=f"SF14{k:08d}",
            clock=FrozenClock(now - timedelta(days=3)),
        )
    for redemption_id in gifts[:2]:
        deliver_redemption(
            session, actor=actor, redemption_id=redemption_id, clock=FrozenClock(now - timedelta(days=1))
        )
    cancel_redemption(session, actor=actor, redemption_id=gifts[4], reason="会员申请取消", clock=clock)
