"""Two referees' orders of one KOC earning at the same instant never exceed the KOC's monthly cap.

Real commits from separate threads on the shared test database (SQLite: writers serialise on
`BEGIN IMMEDIATE`; PostgreSQL: the KOC profile's row lock taken before the cap is read).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import CommissionEntry, Customer
from siyu.referrals.commission import ledger
from tests.concurrency import committed_database, run_together  # noqa: F401 - fixture `database`: real commits
from tests.conftest import NOW
from tests.factories import make_order
from tests.referrals.commission.factories import make_distribution, refer


def test_two_orders_at_once_respect_the_monthly_cap(database: Database) -> None:
    # given a KOC on 10% with a 30-yuan monthly cap, and two referees
    clock = FrozenClock(NOW)
    with database.transaction() as session:
        setup = make_distribution(session, clock=clock, cap_per_month_fen=3_000)
        referees = [refer(session, setup, clock=clock).id for _ in range(2)]
        workspace_id, koc_id = setup.workspace.id, setup.koc.id

    def buy(customer_id: int) -> Callable[[], None]:
        def run() -> None:
            with database.transaction() as session:
                customer = session.get(Customer, customer_id)
                assert customer is not None
                order = make_order(session, customer=customer, paid_at=NOW + timedelta(hours=1), total_fen=20_000)
                ledger.earn_for_orders(session, [order], clock)

        return run

    # when both referees' 200-yuan orders earn at the same instant
    errors = run_together([buy(cid) for cid in referees])
    # then one earned 20 yuan and the other only the 10 yuan of room left
    assert errors == []
    with database.session() as session:
        amounts = sorted(
            session.scalars(select(CommissionEntry.amount_fen).where(CommissionEntry.workspace_id == workspace_id))
        )
        assert amounts == [1_000, 2_000]
        assert ledger.balance(session, workspace_id=workspace_id, koc_customer_id=koc_id) == 3_000
