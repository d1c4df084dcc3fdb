"""Two broadcasts and an SOP step reaching the same customers at once never exceed a cap.

Real commits from separate threads (each with its own connection) on the shared test database,
SQLite and PostgreSQL: the planners of two broadcasts walk the audience upwards in batches while
an SOP-style sender plans single-customer deliveries downwards. With at most 1 message a day and 2
a week, over three days of the same ISO week every customer is admitted exactly once a day for two
days and never on the third, and the touch-state counters equal the admitted deliveries.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from siyu.campaigns.broadcasts.planner import run_planning
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.messaging.content import content_hash
from siyu.messaging.planning import PlanSpec, Variant, plan_batch
from siyu.models import Broadcast, BroadcastStatus, ChannelAccount, ContentItem, Delivery, TouchState
from tests.concurrency import committed_database, run_together  # noqa: F401 - fixture `database`: real commits
from tests.factories import actor_for, make_customer, make_workspace
from tests.messaging.factories import make_account, make_broadcast, make_content, make_policy
from tests.segments.factories import make_segment

CUSTOMERS = 24
MONDAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
"""10:00 on Monday in Shanghai; the three rounds run Monday, Tuesday and Wednesday of ISO week 48."""


def test_two_broadcasts_and_an_sop_never_exceed_the_day_or_week_cap(database: Database) -> None:
    # given 24 customers, caps of 1 a day and 2 a week, no quiet hours, no deduplication
    clock = FrozenClock(MONDAY)
    with database.transaction() as session:
        workspace = make_workspace(session, clock=clock)
        actor = actor_for(workspace)
        ids = [make_customer(session, actor=actor, clock=clock, name=f"顾客{i}").customer.id for i in range(CUSTOMERS)]
        make_policy(session, workspace=workspace, clock=clock, caps={"all": {"day": 1, "week": 2}})
        segment = make_segment(session, workspace=workspace, clock=clock, members=ids)
        account = make_account(session, workspace=workspace, clock=clock)
        contents = [make_content(session, workspace=workspace, clock=clock, body=f"第{i}条") for i in range(7)]
        broadcasts = [
            make_broadcast(
                session, workspace=workspace, clock=clock, segment_id=segment.id, accounts=[account], contents=[item]
            )
            for item in contents[:6]
        ]
        for broadcast in broadcasts:
            broadcast.status = BroadcastStatus.SCHEDULED
        workspace_id, account_id, sop_content_id = workspace.id, account.id, contents[6].id
        broadcast_ids = [b.id for b in broadcasts]

    def planner(broadcast_id: int, batch_size: int) -> Callable[[], None]:
        return lambda: _plan_all(database, workspace_id, broadcast_id, clock, batch_size)

    def sop(day: int) -> Callable[[], None]:
        def run() -> None:
            for customer_id in reversed(ids):  # the other way round from the planners
                with database.transaction() as session:
                    account = session.get(ChannelAccount, account_id)
                    item = session.get(ContentItem, sop_content_id)
                    assert account is not None and item is not None
                    spec = PlanSpec(
                        source="journey",
                        source_id=1,
                        step=f"welcome:{day}:{customer_id}",
                        accounts=[account],
                        variants=[Variant("A", item.id, content_hash(item))],
                        send_at=clock.now(),
                        salt="journey:1",
                    )
                    plan_batch(session, workspace_id, spec, [customer_id], clock)

        return run

    # when, on each of three days, two broadcasts and the SOP plan for everyone at the same time,
    # then after each day the counters hold exactly what was admitted (earlier days pruned)
    expected_states = [
        {"d2026-11-23": {"all": 1}, "w2026-48": {"all": 1}},
        {"d2026-11-24": {"all": 1}, "w2026-48": {"all": 2}},
        {"w2026-48": {"all": 2}},  # all capped by the week; the write prunes Tuesday
    ]
    for day in range(3):
        clock.set(MONDAY + timedelta(days=day))
        first, second = broadcast_ids[2 * day], broadcast_ids[2 * day + 1]
        assert run_together([planner(first, 5), planner(second, 7), sop(day)]) == []
        with database.session() as session:
            states = {
                s.customer_id: s.counts
                for s in session.scalars(select(TouchState).where(TouchState.workspace_id == workspace_id))
            }
        assert states == {cid: expected_states[day] for cid in ids}, day

    # then each customer was admitted once on Monday, once on Tuesday and never on Wednesday
    with database.session() as session:
        rows = session.scalars(select(Delivery).where(Delivery.workspace_id == workspace_id)).all()
        statuses = Counter((r.status, r.reason) for r in rows)
        planned = [session.get(Broadcast, b) for b in broadcast_ids]
    assert len(rows) == 3 * 3 * CUSTOMERS
    assert statuses == {("queued", None): 2 * CUSTOMERS, ("suppressed", "capped"): 7 * CUSTOMERS}
    admitted: dict[int, list[str]] = defaultdict(list)
    for row in rows:
        if row.status == "queued":
            admitted[row.customer_id].append(row.not_before.date().isoformat())
    assert {cid: sorted(days) for cid, days in admitted.items()} == {cid: ["2026-11-23", "2026-11-24"] for cid in ids}
    assert all(b is not None and b.planned_through == max(ids) for b in planned)


def _plan_all(database: Database, workspace_id: int, broadcast_id: int, clock: FrozenClock, batch_size: int) -> None:
    run_planning(database, workspace_id, broadcast_id, clock, batch_size=batch_size)
