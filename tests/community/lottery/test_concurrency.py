"""Members entering one draw at once get distinct ticket numbers (real commits from threads)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from siyu.community.lottery import entries
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.loyalty.points.service import award_points
from siyu.models import LotteryEntry, PointsReason, Workspace
from tests.community.lottery.factories import make_draw
from tests.conftest import NOW
from tests.factories import actor_for, make_customer, make_workspace

THREADS = 6


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
        thread.join()
    return errors


def test_concurrent_entries_get_distinct_tickets(database: Database) -> None:
    # given an open draw costing 10 points and six members with 100 points each
    clock = FrozenClock(NOW)
    with database.transaction() as session:
        workspace = make_workspace(session, clock=clock)
        actor = actor_for(workspace)
        draw = make_draw(session, actor=actor, clock=clock, entry_points=10, max_entries_per_member=2)
        people = [make_customer(session, actor=actor, clock=clock).customer.id for _ in range(THREADS)]
        for customer_id in people:
            award_points(
                session,
                workspace_id=workspace.id,
                customer_id=customer_id,
                points=100,
                reason=PointsReason.MANUAL,
                description="测试",
                idempotency_key=f"seed:{customer_id}",
                clock=clock,
            )
        workspace_id, draw_id = workspace.id, draw.id

    def enter(customer_id: int) -> Callable[[], None]:
        def job() -> None:
            with database.transaction() as session:
                entries.enter_with_points(
                    session, workspace_id=workspace_id, draw_id=draw_id, customer_id=customer_id, n=1, clock=clock
                )

        return job

    # when they all enter at the same instant
    errors = _run_together([enter(c) for c in people])
    # then every entry got its own ticket, 1..6
    assert errors == []
    with database.session() as session:
        tickets = list(session.scalars(select(LotteryEntry.ticket_no).where(LotteryEntry.draw_id == draw_id)))
        _check(session, draw_id)
    assert sorted(tickets) == list(range(1, THREADS + 1))


def _check(session: Session, draw_id: int) -> None:
    customers = list(session.scalars(select(LotteryEntry.customer_id).where(LotteryEntry.draw_id == draw_id)))
    assert len(set(customers)) == THREADS
