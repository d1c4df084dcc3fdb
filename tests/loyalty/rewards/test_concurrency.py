"""Concurrent redemptions with real commits (own connection per thread, SQLite and PostgreSQL):
stock never oversells and no balance goes negative or drifts from the ledger."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from sqlalchemy import func, select

from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.loyalty.points.ledger import balance_from_ledger
from siyu.loyalty.rewards.service import redeem
from siyu.models import Member, PointsLot, Redemption, Reward, RewardKind
from tests.concurrency import committed_database, outcome_names  # noqa: F401 - fixture `database`: real commits
from tests.conftest import NOW
from tests.factories import make_workspace
from tests.loyalty.member_tasks.factories import make_member
from tests.loyalty.rewards.factories import ADDRESS, make_reward


def _world(database: Database, *, members: int, points: int, stock: int, price: int) -> tuple[int, list[int], int]:
    clock = FrozenClock(NOW)
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        customer_ids = [
            make_member(session, workspace=ws, clock=clock, points=points).customer_id for _ in range(members)
        ]
        gift = make_reward(session, workspace=ws, clock=clock, kind=RewardKind.GIFT, points_price=price, stock=stock)
        return ws.id, customer_ids, gift.id


def _redeemer(database: Database, ws_id: int, customer_id: int, reward_id: int, key: str) -> Callable[[], None]:
    def job() -> None:
        with database.transaction() as session:
            redeem(
                session,
                workspace_id=ws_id,
                customer_id=customer_id,
                reward_id=reward_id,
                idempotency_key=key,
                address=ADDRESS,
                clock=FrozenClock(NOW),
            )

    return job


def _check_ledgers(database: Database, ws_id: int) -> list[int]:
    """Every member's cached balance = sum of entries = sum of lots ≥ 0; returns the balances."""
    balances = []
    with database.session() as session:
        for member in session.scalars(select(Member).where(Member.workspace_id == ws_id).order_by(Member.id)):
            lots = session.scalar(
                select(func.coalesce(func.sum(PointsLot.remaining), 0)).where(PointsLot.member_id == member.id)
            )
            assert member.points_balance == balance_from_ledger(session, member.id) == int(lots or 0) >= 0
            balances.append(member.points_balance)
    return balances


def test_twenty_threads_redeeming_the_last_five_gifts_get_exactly_five(database: Database) -> None:
    # given 10 members with 250 points each and the last 5 of a 100-point gift
    ws_id, customers, gift_id = _world(database, members=10, points=250, stock=5, price=100)
    # when 20 threads (two per member) redeem it at once
    jobs = [_redeemer(database, ws_id, customers[i % 10], gift_id, f"t{i}") for i in range(20)]
    outcomes = outcome_names(jobs, success="redeemed")
    # then exactly 5 redemptions were made, the others refused as out of stock, stock is 0
    with database.session() as session:
        gift = session.get(Reward, gift_id)
        assert gift is not None
        made = session.scalar(select(func.count()).where(Redemption.reward_id == gift_id))
        assert (made, gift.stock, gift.redeemed_count) == (5, 0, 5)
    assert Counter(outcomes) == {"redeemed": 5, "OutOfStock": 15}
    # and 500 points were spent in all, with every ledger consistent and no balance below 0
    balances = _check_ledgers(database, ws_id)
    assert sum(balances) == 10 * 250 - 5 * 100


def test_one_member_racing_for_more_than_they_can_afford_never_overdraws(database: Database) -> None:
    # given one member with 250 points and plenty of a 100-point gift
    ws_id, customers, gift_id = _world(database, members=1, points=250, stock=100, price=100)
    # when 10 threads redeem it for that member at once
    outcomes = outcome_names(
        [_redeemer(database, ws_id, customers[0], gift_id, f"t{i}") for i in range(10)], success="redeemed"
    )
    # then exactly 2 went through, 8 were refused for points, and the balance is 50
    assert Counter(outcomes) == {"redeemed": 2, "InsufficientPoints": 8}
    with database.session() as session:
        gift = session.get(Reward, gift_id)
        assert gift is not None and gift.stock == 98
    assert _check_ledgers(database, ws_id) == [50]
