"""Concurrent completions with real commits: the per-period cap holds for a brand-new member too."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from siyu.auth.permissions import Actor
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.loyalty.member_tasks.service import check_in, complete_task
from siyu.loyalty.points.ledger import balance_from_ledger
from siyu.models import LimitPeriod, Member, TaskCompletion, TaskKind
from tests.concurrency import committed_database, outcome_names  # noqa: F401 - fixture `database`: real commits
from tests.conftest import NOW
from tests.factories import make_customer, make_workspace
from tests.loyalty.member_tasks.factories import make_task


def test_ten_threads_completing_a_twice_a_day_task_pay_exactly_twice(database: Database) -> None:
    # given a customer without a member row, a post task twice a day and a check-in
    clock = FrozenClock(NOW)
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        customer_id = make_customer(session, actor=Actor.system(ws.id), clock=clock).customer.id
        task = make_task(session, workspace=ws, clock=clock, points=20, limit_period=LimitPeriod.DAY, limit_count=2)
        make_task(session, workspace=ws, clock=clock, kind=TaskKind.CHECK_IN, points=5)
        ws_id, task_key = ws.id, task.key

    def post(i: int) -> None:
        with database.transaction() as session:
            complete_task(
                session, workspace_id=ws_id, customer_id=customer_id, task_key=task_key, ref=f"p{i}", clock=clock
            )

    def sign() -> None:
        with database.transaction() as session:
            check_in(session, workspace_id=ws_id, customer_id=customer_id, clock=clock)

    # when 10 threads post and 5 check in at once
    outcomes = outcome_names([lambda i=i: post(i) for i in range(10)] + [sign for _ in range(5)], success="ok")
    errors = [o for o in outcomes if o != "ok"]
    # then two posts and one check-in were paid, the rest refused; one member row; ledger consistent
    assert Counter(errors) == {"TaskLimitReached": 8, "AlreadyCheckedIn": 4}
    with database.session() as session:
        members = session.scalars(select(Member).where(Member.workspace_id == ws_id)).all()
        assert len(members) == 1
        assert members[0].points_balance == balance_from_ledger(session, members[0].id) == 2 * 20 + 5
        assert session.scalar(select(func.count()).where(TaskCompletion.member_id == members[0].id)) == 3
