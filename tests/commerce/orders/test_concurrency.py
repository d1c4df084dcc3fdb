"""The same orders sent by several clients at once (real commits, own connections, SQLite and
PostgreSQL): each order is written once, its new buyer created once, its points earned once; the
other clients get "unchanged"."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from siyu.auth.permissions import Actor
from siyu.commerce.orders.ingest import OrderOutcome, ingest_orders
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Customer, Member, Order, OrderSource, PointsEntry
from siyu.workspaces.scope import bind_workspace
from tests.commerce.orders.factories import PAID, order_in
from tests.concurrency import committed_database, run_together  # noqa: F401 - fixture `database`: real commits
from tests.factories import make_workspace

CLIENTS = 6


def test_concurrent_resends_write_each_order_once(database: Database, clock: FrozenClock) -> None:
    # given a workspace and a batch of two orders of one new buyer
    with database.transaction() as session:
        workspace_id = make_workspace(session, clock=clock).id
    orders = [
        order_in(phone="13300133000", external_id="C1"),
        order_in(phone="13300133000", external_id="C2", paid_at=PAID + timedelta(days=1)),
    ]
    results: list[list[OrderOutcome]] = []
    lock = threading.Lock()

    def client() -> None:
        with database.transaction() as session:
            bind_workspace(session, workspace_id)
            outcomes = ingest_orders(
                session, actor=Actor.system(workspace_id), orders=orders, source=OrderSource.API, clock=clock
            )
        with lock:
            results.append(outcomes)

    # when six clients send it at the same moment
    errors = run_together([client] * CLIENTS, timeout=60)
    # then every client succeeded: one created each order, the others found it unchanged
    assert errors == []
    statuses = Counter(o.status for outcomes in results for o in outcomes)
    assert statuses == {"created": 2, "unchanged": 2 * CLIENTS - 2}
    with database.session() as session:

        def count(model: type) -> int:
            query = select(func.count()).select_from(model).where(model.workspace_id == workspace_id)
            return int(session.scalar(query) or 0)

        assert (count(Order), count(Customer), count(Member), count(PointsEntry)) == (2, 1, 1, 2)
        balance = session.scalar(select(Member.points_balance).where(Member.workspace_id == workspace_id))
        assert balance == 398
