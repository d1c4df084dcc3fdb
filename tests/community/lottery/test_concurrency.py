"""Members entering one draw at once get distinct ticket numbers (real commits from threads)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.community.lottery import entries
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.loyalty.points.service import award_points
from siyu.models import LotteryEntry, PointsReason
from tests.community.lottery.factories import make_draw
from tests.concurrency import committed_database, run_together  # noqa: F401 - fixture `database`: real commits
from tests.conftest import NOW
from tests.factories import actor_for, make_customer, make_workspace

THREADS = 6


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
    errors = run_together([enter(c) for c in people])
    # then every entry got its own ticket, 1..6
    assert errors == []
    with database.session() as session:
        tickets = list(session.scalars(select(LotteryEntry.ticket_no).where(LotteryEntry.draw_id == draw_id)))
        _check(session, draw_id)
    assert sorted(tickets) == list(range(1, THREADS + 1))


def _check(session: Session, draw_id: int) -> None:
    customers = list(session.scalars(select(LotteryEntry.customer_id).where(LotteryEntry.draw_id == draw_id)))
    assert len(set(customers)) == THREADS
