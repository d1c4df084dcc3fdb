"""The same orders sent by several clients at once (real commits, own connections, SQLite and
PostgreSQL): each order is written once, its new buyer created once, its points earned once; the
other clients get "unchanged"."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, delete, func, select

from siyu.auth.permissions import Actor
from siyu.commerce.orders.ingest import OrderOutcome, ingest_orders
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Customer, Member, Order, OrderSource, PointsEntry, Workspace
from siyu.workspaces.scope import bind_workspace
from tests.commerce.orders.factories import PAID, order_in
from tests.factories import make_workspace

CLIENTS = 6


@pytest.fixture
def database(engine: Engine) -> Iterator[Database]:
    """Real commits on the shared test database; the workspaces made here are deleted after."""
    database = Database(Settings(database_url="sqlite://"), engine=engine)
    with database.session() as session:
        before = set(session.scalars(select(Workspace.id)))
    yield database
    with database.transaction() as session:
        session.execute(delete(Workspace).where(Workspace.id.not_in(before)))


def _run_together(jobs: list[Callable[[], None]]) -> list[str]:
    errors: list[str] = []
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], None]) -> None:
        barrier.wait()
        try:
            job()
        except Exception as exc:  # collected and asserted on below
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


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
    errors = _run_together([client] * CLIENTS)
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
