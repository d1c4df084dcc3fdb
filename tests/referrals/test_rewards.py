"""Qualification on first orders, rewards, unlocks, fission targets, and their reversal on refunds."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.loyalty.member_tasks.definitions import create_task
from siyu.loyalty.member_tasks.schemas import TaskIn
from siyu.models import (
    Coupon,
    CouponState,
    Customer,
    Referral,
    ReferralReward,
    ReferralStatus,
    RewardRole,
    TaskCompletion,
    TaskKind,
)
from siyu.referrals.attribution import on_group_join
from siyu.referrals.progress import UnlockProgress, member_progress
from tests.commerce.coupons.factories import make_template
from tests.factories import make_group
from tests.referrals.factories import World, count


def _referral(db: Session, referee: Customer) -> Referral:
    found = db.scalar(select(Referral).where(Referral.referee_customer_id == referee.id))
    assert found is not None
    return found


def _rewards(db: Session, customer: Customer) -> list[tuple[str, str, int, bool]]:
    rows = db.scalars(
        select(ReferralReward).where(ReferralReward.customer_id == customer.id).order_by(ReferralReward.id)
    )
    return [(r.idempotency_key, str(r.role), r.points, r.reversed_at is not None) for r in rows]


def test_the_first_paid_order_qualifies_and_rewards_both_sides(db: Session, clock: FrozenClock) -> None:
    # given B was referred by A in a first-order program (A 100 points, B 30)
    world = World(db, clock, condition="first_order", referrer_reward={"points": 100}, referee_reward={"points": 30})
    alice = world.member()
    bob = world.invite(world.code(alice)).customer
    balance_before = world.balance(bob)
    # when B's first order is ingested
    order = world.order(bob, total_fen=8_800)
    # then the referral qualifies on that order and both are rewarded once
    referral = _referral(db, bob)
    assert (referral.status, referral.qualifying_order_id) == (ReferralStatus.QUALIFIED, order.id)
    assert world.balance(alice) == 100
    assert world.balance(bob) - balance_before == 30 + 88  # the referee reward plus the order's own points
    assert _rewards(db, alice) == [(f"referral:{referral.id}:referrer", "referrer", 100, False)]
    # and a second order changes nothing
    world.order(bob, total_fen=5_000)
    assert world.balance(alice) == 100


def test_a_full_refund_reverses_the_rewards_and_points_return(db: Session, clock: FrozenClock) -> None:
    # given A earned 100 points for B's first order
    world = World(db, clock, condition="first_order", referrer_reward={"points": 100})
    alice = world.member()
    bob = world.invite(world.code(alice)).customer
    order = world.order(bob, total_fen=8_800)
    assert world.balance(alice) == 100
    # when the order is refunded in full
    refund = world.refund(order, 8_800)
    # then the referral is reversed, the reward marked reversed, and A's points are back to 0
    referral = _referral(db, bob)
    assert (referral.status, referral.reason) == (ReferralStatus.REVERSED, f"refund:{refund.id}")
    assert _rewards(db, alice) == [(f"referral:{referral.id}:referrer", "referrer", 100, True)]
    assert world.balance(alice) == 0


def test_a_partial_refund_reverses_only_below_the_minimum(db: Session, clock: FrozenClock) -> None:
    # given a first-order-over-¥50 program and B's ¥88 first order
    world = World(db, clock, condition="first_order_over", min_order_fen=5_000, referrer_reward={"points": 100})
    alice = world.member()
    bob = world.invite(world.code(alice)).customer
    order = world.order(bob, total_fen=8_800)
    # when ¥30 is refunded (¥58 kept), then ¥10 more (¥48 kept)
    world.refund(order, 3_000)
    kept = _referral(db, bob).status
    world.refund(order, 1_000)
    # then the first refund keeps the referral, the second reverses it
    assert kept == ReferralStatus.QUALIFIED
    assert _referral(db, bob).status == ReferralStatus.REVERSED
    assert world.balance(alice) == 0


def test_a_first_order_under_the_minimum_never_qualifies(db: Session, clock: FrozenClock) -> None:
    # given a first-order-over-¥50 program
    world = World(db, clock, condition="first_order_over", min_order_fen=5_000, referrer_reward={"points": 100})
    alice = world.member()
    bob = world.invite(world.code(alice)).customer
    # when B's first order is ¥20 and the second ¥90
    world.order(bob, total_fen=2_000)
    world.order(bob, total_fen=9_000)
    # then the referral is rejected (the first order decides) and A gets nothing
    assert (_referral(db, bob).status, _referral(db, bob).reason) == (
        ReferralStatus.REJECTED,
        "first_order_below_minimum",
    )
    assert world.balance(alice) == 0


def test_unlocks_are_paid_once_per_threshold_and_reversed_below_it(db: Session, clock: FrozenClock) -> None:
    # given unlocks at 2 (50 points) and 3 (200 points), no per-referral reward
    world = World(
        db,
        clock,
        condition="first_order",
        unlocks=[
            {"threshold": 3, "name": "金牌", "reward": {"points": 200}},
            {"threshold": 2, "name": "银牌", "reward": {"points": 50}},
        ],
    )
    alice = world.member()
    code = world.code(alice)
    friends = [world.invite(code).customer for _ in range(3)]
    orders = [world.order(f) for f in friends]
    # then both unlocks are reached and paid
    progress = member_progress(db, workspace_id=world.ws.id, customer_id=alice.id, program_id=world.program.id)
    assert (progress.qualified, progress.pending) == (3, 0)
    assert progress.unlocks == [UnlockProgress(2, "银牌", True), UnlockProgress(3, "金牌", True)]
    assert world.balance(alice) == 250
    # when one friend's order is refunded: the 3-unlock is reversed, the 2-unlock stays
    world.refund(orders[0], orders[0].total_fen)
    assert world.balance(alice) == 50
    # and when a fourth friend qualifies, the 3-unlock is paid again under a new key
    fourth = world.invite(code).customer
    world.order(fourth)
    assert world.balance(alice) == 250
    unlock3 = [u for u in world.db.scalars(select(ReferralReward).where(ReferralReward.role == RewardRole.UNLOCK))]
    prefix = f"unlock:{world.program.id}:3:"
    keys = sorted(
        (r.idempotency_key.removeprefix(prefix), r.reversed_at is not None) for r in unlock3 if r.points == 200
    )
    assert keys == [(f"{alice.id}", True), (f"{alice.id}:2", False)]


def test_a_task_fission_pays_the_referrer_only_at_the_target(db: Session, clock: FrozenClock) -> None:
    # given a 任务宝 with a target of 3 friends adding staff, 300 points to the referrer, 10 to each friend
    world = World(
        db, clock, kind="task_fission", target_count=3, referrer_reward={"points": 300}, referee_reward={"points": 10}
    )
    alice = world.member()
    code = world.code(alice)
    # when two friends come, then a third
    world.invite(code)
    world.invite(code)
    before = world.balance(alice)
    world.invite(code)
    # then A is paid only at the third
    assert (before, world.balance(alice)) == (0, 300)
    assert [k for k, *_ in _rewards(db, alice)] == [f"target:{world.program.id}:{alice.id}"]


def test_a_group_fission_counts_joins_of_the_programs_group(db: Session, clock: FrozenClock) -> None:
    # given a 群裂变 of group G with target 1
    probe = World(db, clock)
    group, other = make_group(db, workspace=probe.ws, clock=clock), make_group(db, workspace=probe.ws, clock=clock)
    world = probe
    from tests.referrals.factories import make_program

    program = make_program(
        db,
        actor=world.actor,
        clock=clock,
        kind="group_fission",
        condition="joined_group",
        group_id=group.id,
        target_count=1,
        live_code_id=world.live_code.id,
        referrer_reward={"points": 80},
    )
    alice = world.member()
    bob = world.invite(world.code(alice, program)).customer
    # when B joins another group, then G
    on_group_join(db, workspace_id=world.ws.id, customer_id=bob.id, group_id=other.id, clock=clock)
    pending = _referral(db, bob).status
    on_group_join(db, workspace_id=world.ws.id, customer_id=bob.id, group_id=group.id, clock=clock)
    # then only G's join qualifies
    assert (pending, _referral(db, bob).status, world.balance(alice)) == (
        ReferralStatus.PENDING,
        ReferralStatus.QUALIFIED,
        80,
    )


def test_a_coupon_reward_is_voided_when_reversed(db: Session, clock: FrozenClock) -> None:
    # given a program giving the referee a ¥20 coupon
    probe = World(db, clock)
    template = make_template(db, workspace=probe.ws, clock=clock, value=2_000)
    from tests.referrals.factories import make_program

    program = make_program(
        db,
        actor=probe.actor,
        clock=clock,
        condition="first_order",
        live_code_id=probe.live_code.id,
        referee_reward={"coupon_template_id": template.id},
    )
    alice = probe.member()
    bob = probe.invite(probe.code(alice, program)).customer
    order = probe.order(bob)
    reward = db.scalar(select(ReferralReward).where(ReferralReward.customer_id == bob.id))
    assert reward is not None and reward.cost_fen == 2_000
    coupon = db.get(Coupon, reward.coupon_id)
    assert coupon is not None and coupon.state == CouponState.ISSUED
    # when the order is refunded
    probe.refund(order, order.total_fen)
    # then the unused coupon is void
    assert coupon.state == CouponState.VOID
    assert reward.reversed_at == clock.now()


def test_a_qualified_referral_completes_the_invite_task(db: Session, clock: FrozenClock) -> None:
    # given an invite task worth 5 points
    world = World(db, clock)
    create_task(
        db,
        actor=world.actor,
        data=TaskIn(key="invite", kind=TaskKind.INVITE, name="邀请好友", points=5, limit_count=10),
        clock=clock,
    )
    alice = world.member()
    # when a friend qualifies
    world.invite(world.code(alice))
    # then A completed the task once
    assert count(db, TaskCompletion) == 1
    assert world.balance(alice) == 5
