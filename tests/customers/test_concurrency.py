"""Concurrent writers: the same person arriving twice at once is still one customer, one event."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.config import Settings
from siyu.customers.service.profile import ingest_customer
from siyu.customers.service.timeline import EventInput, record_event
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Customer, CustomerEvent, Identity, Workspace
from siyu.workspaces.scope import bind_workspace
from tests.factories import actor_for, make_workspace

ROUNDS = 8


def _race(database: Database, actor: Actor, work: Callable[[Session, int], object], threads: int = 3) -> list[str]:
    """Run `work(session, round)` in several threads at once per round; returns the errors."""
    errors: list[str] = []
    for n in range(ROUNDS):
        barrier = threading.Barrier(threads)

        def run(round_no: int = n, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                with database.transaction() as session:
                    bind_workspace(session, actor.workspace_id)
                    work(session, round_no)
            except Exception as exc:  # collected and asserted on below
                errors.append(repr(exc))

        pool = [threading.Thread(target=run) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    return errors


@pytest.fixture
def database(engine: Engine) -> Iterator[Database]:
    """The shared test database with real commits; the workspaces made here are deleted after."""
    database = Database(Settings(database_url="sqlite://"), engine=engine)
    with database.session() as session:
        before = set(session.scalars(select(Workspace.id)))
    yield database
    with database.transaction() as session:
        session.execute(delete(Workspace).where(Workspace.id.not_in(before)))


def test_same_new_phone_at_once_makes_one_customer(database: Database, clock: FrozenClock) -> None:
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
    actor = actor_for(ws)

    def ingest(session: Session, n: int) -> object:
        return ingest_customer(
            session, actor=actor, identities=[("phone", f"1370013{n:04d}")], source="race", clock=clock
        )

    assert _race(database, actor, ingest) == []
    with database.session() as session:
        customers = session.scalar(select(func.count()).select_from(Customer).where(Customer.workspace_id == ws.id))
        identities = session.scalar(select(func.count()).select_from(Identity).where(Identity.workspace_id == ws.id))
    assert (customers, identities) == (ROUNDS, ROUNDS)


def test_same_event_key_at_once_records_one_event(database: Database, clock: FrozenClock) -> None:
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        actor = actor_for(ws)
        customer = ingest_customer(session, actor=actor, identities=[("jd", "racer")], source="t", clock=clock).customer
        customer_id = customer.id

    def record(session: Session, n: int) -> object:
        item = EventInput(
            type="checkin",
            occurred_at=datetime(2026, 11, 23, tzinfo=UTC),
            idempotency_key=f"ck-{n}",
            customer_id=customer_id,
        )
        return record_event(session, actor=actor, item=item, clock=clock)

    assert _race(database, actor, record) == []
    with database.session() as session:
        count = session.scalar(
            select(func.count())
            .select_from(CustomerEvent)
            .where(CustomerEvent.customer_id == customer_id, CustomerEvent.type == "checkin")
        )
    assert count == ROUNDS
