"""Real commits from separate threads: concurrent orders of one new customer and retried paid-tier
purchases leave one member, a balance equal to its ledger, and each change recorded once."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.loyalty.members import get_member
from siyu.loyalty.points import ledger
from siyu.loyalty.purchases import apply_order
from siyu.loyalty.tiers.service import buy_paid_tier
from siyu.models import Member, Order, TierChange, TierChangeReason
from siyu.workspaces.scope import bind_workspace
from tests.concurrency import committed_database, run_together  # noqa: F401 - fixture `database`: real commits
from tests.conftest import NOW
from tests.factories import make_workspace
from tests.loyalty.tiers.factories import make_ladder, new_customer, place_order

THREADS = 6


def test_concurrent_orders_and_purchases_of_one_customer(database: Database) -> None:
    # given a new customer with six ¥200 orders written, none applied yet
    clock = FrozenClock(NOW)
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        ladder = make_ladder(session, workspace=ws, clock=clock)
        customer = new_customer(session, workspace=ws, clock=clock)
        orders = [place_order(session, customer=customer, clock=clock, total_fen=20_000).id for _ in range(THREADS)]
        ws_id, customer_id, black_id = ws.id, customer.id, ladder.black.id

    def apply(order_id: int) -> Callable[[], None]:
        def job() -> None:
            with database.transaction() as session:
                bind_workspace(session, ws_id)
                order = session.get(Order, order_id)
                assert order is not None
                apply_order(session, order=order, clock=clock)

        return job

    def buy() -> None:
        with database.transaction() as session:
            bind_workspace(session, ws_id)
            buy_paid_tier(
                session,
                workspace_id=ws_id,
                customer_id=customer_id,
                tier_id=black_id,
                idempotency_key="pay",
                clock=clock,
            )

    # when the orders are applied at once, then the card is bought by six retries at once
    assert run_together([apply(order_id) for order_id in orders]) == []
    assert run_together([buy for _ in range(THREADS)]) == []
    # then one member; the first order applied found ¥1,200 written and upgraded to 高级, so it earned
    # 200 and the five after it 240 each (1.2×): 1,400, equal to the ledger; one upgrade; one purchase
    with database.session() as session:
        members = session.scalars(select(Member).where(Member.workspace_id == ws_id)).all()
        assert len(members) == 1
        member = get_member(session, ws_id, customer_id)
        assert member is not None
        assert member.points_balance == 1400 == ledger.balance_from_ledger(session, member.id)
        reasons = session.execute(
            select(TierChange.reason, func.count()).where(TierChange.member_id == member.id).group_by(TierChange.reason)
        ).all()
        assert dict(reasons) == {TierChangeReason.JOINED: 1, TierChangeReason.QUALIFIED: 1, TierChangeReason.PAID: 1}
        assert (member.tier_id, member.earned_tier_id) == (black_id, ladder.silver.id)
