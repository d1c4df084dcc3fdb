"""Property: any sequence of adds, orders and refunds leaves exactly the justified rewards standing."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import Order, PointsEntry, Referral, ReferralReward, ReferralStatus, RewardRole
from siyu.referrals.programs import unlocks_of
from tests.conftest import NOW
from tests.referrals.factories import World

MIN_FEN = 5_000

steps = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 1)),
    st.tuples(st.just("order"), st.integers(0, 20), st.sampled_from([2_000, 6_000, 12_000])),
    st.tuples(st.just("refund"), st.integers(0, 20), st.sampled_from([1_000, 4_000, 12_000])),
    st.tuples(st.just("later"), st.integers(1, 180)),
)


def _run(world: World, sequence: list[tuple[Any, ...]]) -> None:
    db = world.db
    referrers = [world.member(), world.member()]
    codes = [world.code(r) for r in referrers]
    referees = []
    for step in sequence:
        if step[0] == "add":
            referees.append(world.invite(codes[step[1]]).customer)
        elif step[0] == "order" and referees:
            world.order(referees[step[1] % len(referees)], total_fen=step[2])
        elif step[0] == "refund" and referees:
            orders = list(
                db.scalars(select(Order).where(Order.customer_id.in_([c.id for c in referees])).order_by(Order.id))
            )
            if orders:
                order = orders[step[1] % len(orders)]
                left = order.total_fen - order.refunded_fen
                if left > 0:
                    world.refund(order, min(step[2], left))
        elif step[0] == "later":
            world.clock.advance(timedelta(minutes=step[1]))  # type: ignore[attr-defined]

    # then every standing reward is justified by the current state, and every justified one stands
    rewards = list(db.scalars(select(ReferralReward).where(ReferralReward.workspace_id == world.ws.id)))
    live = Counter(
        (r.customer_id, r.role, r.referral_id if r.role != RewardRole.UNLOCK else r.unlock_id)
        for r in rewards
        if r.reversed_at is None
    )
    referrals = list(db.scalars(select(Referral).where(Referral.workspace_id == world.ws.id)))
    expected: Counter[tuple[int, str, int | None]] = Counter()
    unlocks = {u.threshold: u.id for u in unlocks_of(db, world.program.id)}
    for referral in referrals:
        if referral.status == ReferralStatus.QUALIFIED:
            expected[(referral.referrer_customer_id, RewardRole.REFERRER, referral.id)] += 1
            expected[(referral.referee_customer_id, RewardRole.REFEREE, referral.id)] += 1
    for referrer in referrers:
        qualified = sum(
            1 for r in referrals if r.referrer_customer_id == referrer.id and r.status == ReferralStatus.QUALIFIED
        )
        for threshold, unlock_id in unlocks.items():
            if qualified >= threshold:
                expected[(referrer.id, RewardRole.UNLOCK, unlock_id)] += 1
    assert live == expected
    # no key twice: rewards and points entries are unique per key, and referrers' balances are the sum
    keys = [r.idempotency_key for r in rewards]
    assert len(keys) == len(set(keys))
    ledger_keys = db.scalar(
        select(func.count(PointsEntry.idempotency_key) - func.count(func.distinct(PointsEntry.idempotency_key))).where(
            PointsEntry.workspace_id == world.ws.id
        )
    )
    assert ledger_keys == 0
    for referrer in referrers:
        standing = sum(r.points for r in rewards if r.customer_id == referrer.id and r.reversed_at is None)
        assert world.balance(referrer) == standing


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(sequence=st.lists(steps, min_size=1, max_size=10))
def test_standing_rewards_equal_the_justified_rewards(db: Session, sequence: list[tuple[Any, ...]]) -> None:
    savepoint = db.begin_nested()
    try:
        # given a first-order-over-¥50 program: 100 points to the referrer, 10 to the referee,
        # unlocks at 2 (20 points) and 3 (30 points)
        clock = FrozenClock(NOW)
        world = World(
            db,
            clock,
            condition="first_order_over",
            min_order_fen=MIN_FEN,
            referrer_reward={"points": 100},
            referee_reward={"points": 10},
            unlocks=[
                {"threshold": 2, "name": "二", "reward": {"points": 20}},
                {"threshold": 3, "name": "三", "reward": {"points": 30}},
            ],
        )
        # when the steps run
        _run(world, sequence)
    finally:
        savepoint.rollback()
        db.expunge_all()
