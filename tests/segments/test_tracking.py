"""Tracked segments: full refreshes and one-customer refreshes record each entry and exit once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers.activity import customer_activity
from siyu.db import Database, set_database
from siyu.kit.clock import FrozenClock
from siyu.models import (
    Job,
    OrderStatus,
    Segment,
    SegmentMember,
    SegmentMembershipEvent,
    SegmentSizePoint,
)
from siyu.segments import tasks
from siyu.segments.service.crud import SegmentChanges, SegmentInput, archive_segment, create_segment, update_segment
from siyu.segments.service.tracking import refresh_customer, refresh_segment, size_trend
from tests.concurrency import committing, run_together
from tests.factories import make_customer, make_order, make_workspace

SPENDERS = {
    "all": [
        {"kind": "field", "field": "city", "op": "eq", "value": "上海"},
        {"kind": "order", "measure": "total_fen", "op": "gte", "value": 10_000},
    ]
}


def _members(db: Session, segment_id: int) -> set[int]:
    return set(db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment_id)))


def _events(db: Session, segment_id: int) -> list[tuple[int, str, str]]:
    rows = db.scalars(
        select(SegmentMembershipEvent)
        .where(SegmentMembershipEvent.segment_id == segment_id)
        .order_by(SegmentMembershipEvent.id)
    )
    return [(e.customer_id, str(e.change), e.trigger) for e in rows]


@pytest.fixture
def pool(db: Session, clock: FrozenClock) -> dict[str, Any]:
    workspace = make_workspace(db, clock=clock)
    actor = Actor.system(workspace.id)
    shanghai = [make_customer(db, actor=actor, clock=clock, city="上海").customer for _ in range(3)]
    hangzhou = make_customer(db, actor=actor, clock=clock, city="杭州").customer
    make_order(db, customer=shanghai[0], paid_at=clock.now() - timedelta(days=3), total_fen=12_000)
    make_order(db, customer=shanghai[1], paid_at=clock.now() - timedelta(days=3), total_fen=5_000)
    make_order(db, customer=hangzhou, paid_at=clock.now() - timedelta(days=3), total_fen=50_000)
    segment = create_segment(
        db, actor=actor, data=SegmentInput(name="上海高消费", definition=SPENDERS, is_tracked=True), clock=clock
    )
    return {"workspace": workspace, "actor": actor, "shanghai": shanghai, "hangzhou": hangzhou, "segment": segment}


def test_first_refresh_records_everyone_in_then_only_changes(
    db: Session, clock: FrozenClock, pool: dict[str, Any]
) -> None:
    segment, (first, second, third) = pool["segment"], pool["shanghai"]
    # when the tracked segment is refreshed the first time
    result = refresh_segment(db, segment_id=segment.id, clock=clock)
    # then its one member entered, and today's size is recorded
    assert result is not None and (result.size, result.entered, result.left) == (1, 1, 0)
    assert _members(db, segment.id) == {first.id}
    assert _events(db, segment.id) == [(first.id, "entered", "refresh")]
    assert segment.refreshed_at == clock.now() and segment.member_count == 1
    assert [(p.day, p.size) for p in size_trend(db, segment.id)] == [(date(2026, 11, 23), 1)]

    # given the second customer buys more and the first is refunded in full, a day later
    make_order(db, customer=second, paid_at=clock.now(), total_fen=6_000)
    order = first_order(db, first.id)
    order.status, order.refunded_fen = OrderStatus.REFUNDED, order.total_fen
    clock.advance(timedelta(days=1))
    # when refreshed again
    result = refresh_segment(db, segment_id=segment.id, clock=clock)
    # then the second entered and the first left; nothing else is recorded
    assert result is not None and (result.size, result.entered, result.left) == (1, 1, 1)
    assert _members(db, segment.id) == {second.id}
    assert _events(db, segment.id)[1:] == [(second.id, "entered", "refresh"), (first.id, "left", "refresh")]
    assert [(p.day, p.size) for p in size_trend(db, segment.id)] == [(date(2026, 11, 23), 1), (date(2026, 11, 24), 1)]
    # and a third refresh with nothing new records nothing
    refresh_segment(db, segment_id=segment.id, clock=clock)
    assert len(_events(db, segment.id)) == 3
    assert third.id not in _members(db, segment.id)


def first_order(db: Session, customer_id: int) -> Any:
    from siyu.models import Order

    return db.scalars(select(Order).where(Order.customer_id == customer_id).order_by(Order.id)).first()


def test_a_customer_refresh_records_that_customer_only(db: Session, clock: FrozenClock, pool: dict[str, Any]) -> None:
    segment, (first, _second, third) = pool["segment"], pool["shanghai"]
    # before the first full refresh, a customer refresh records nothing (the sweep records everyone at once)
    assert refresh_customer(db, workspace_id=pool["workspace"].id, customer_id=first.id, clock=clock) == []
    refresh_segment(db, segment_id=segment.id, clock=clock)
    # given the third customer places a qualifying order
    make_order(db, customer=third, paid_at=clock.now(), total_fen=10_000)
    # when that customer alone is re-evaluated
    changes = refresh_customer(db, workspace_id=pool["workspace"].id, customer_id=third.id, clock=clock)
    # then they entered; the second (still below the threshold) is untouched
    assert changes == [(segment.id, "entered")]
    assert _members(db, segment.id) == {first.id, third.id}
    assert _events(db, segment.id)[-1] == (third.id, "entered", "customer")
    # and evaluating them again changes nothing
    assert refresh_customer(db, workspace_id=pool["workspace"].id, customer_id=third.id, clock=clock) == []
    # the Hangzhou customer never qualifies
    assert refresh_customer(db, workspace_id=pool["workspace"].id, customer_id=pool["hangzhou"].id, clock=clock) == []


def test_stop_tracking_forgets_members_and_keeps_history(db: Session, clock: FrozenClock, pool: dict[str, Any]) -> None:
    segment, actor = pool["segment"], pool["actor"]
    refresh_segment(db, segment_id=segment.id, clock=clock)
    update_segment(db, actor=actor, segment_id=segment.id, changes=SegmentChanges(is_tracked=False), clock=clock)
    assert _members(db, segment.id) == set()
    assert len(_events(db, segment.id)) == 1
    assert segment.refreshed_at is None
    # an untracked segment's refresh only counts
    result = refresh_segment(db, segment_id=segment.id, clock=clock)
    assert result is not None and (result.size, result.entered, result.left) == (1, 0, 0)
    assert _members(db, segment.id) == set()
    # archived segments are not refreshed
    archive_segment(db, actor=actor, segment_id=segment.id, clock=clock)
    assert refresh_segment(db, segment_id=segment.id, clock=clock) is None


def test_activity_queues_one_reevaluation_per_customer_after_commit(
    db: Session, clock: FrozenClock, pool: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(tasks.customer_changed_actor, "send", lambda ws, cid: sent.append((ws, cid)))
    workspace, first = pool["workspace"], pool["shanghai"][0]
    db.info.pop("after_commit", None)
    # when two events for one customer and one for another arrive in one transaction
    customer_activity(db, workspace.id, first.id)
    customer_activity(db, workspace.id, first.id)
    customer_activity(db, workspace.id, pool["hangzhou"].id)
    callbacks = db.info.pop("after_commit")
    assert sent == []  # nothing before the commit
    for callback in callbacks:
        callback()
    # then one message per customer went out
    assert sent == [(workspace.id, first.id), (workspace.id, pool["hangzhou"].id)]


def test_activity_in_a_workspace_without_tracked_segments_queues_nothing(db: Session, clock: FrozenClock) -> None:
    workspace = make_workspace(db, clock=clock)
    customer = make_customer(db, actor=Actor.system(workspace.id), clock=clock).customer
    db.info.pop("after_commit", None)
    customer_activity(db, workspace.id, customer.id)
    assert db.info.get("after_commit", []) == []


# --- real commits, several threads -------------------------------------------------------------


def _delete_jobs(session: Session, before: set[int]) -> None:
    session.execute(delete(Job).where(Job.workspace_id.not_in(before) | Job.workspace_id.is_(None)))


@pytest.fixture
def committed(engine: Engine) -> Iterator[Database]:
    """Real commits on the shared test database; the workspaces (and jobs) made here are deleted after."""
    with committing(engine, cleanup=_delete_jobs) as database:
        set_database(database)
        yield database
        set_database(None)


def test_sweeps_and_customer_refreshes_at_once_record_each_entry_once(committed: Database, clock: FrozenClock) -> None:
    # given a tracked segment refreshed once, and 4 customers who then qualify
    with committed.transaction() as session:
        workspace = make_workspace(session, clock=clock)
        actor = Actor.system(workspace.id)
        customers = [make_customer(session, actor=actor, clock=clock, city="上海").customer for _ in range(4)]
        segment = create_segment(
            session, actor=actor, data=SegmentInput(name="s", definition=SPENDERS, is_tracked=True), clock=clock
        )
        session.flush()
        refresh_segment(session, segment_id=segment.id, clock=clock)
        ids = [c.id for c in customers]
        segment_id, workspace_id = segment.id, workspace.id
        for customer in customers:
            make_order(session, customer=customer, paid_at=clock.now(), total_fen=20_000)

    def sweep() -> None:
        with committed.transaction() as session:
            refresh_segment(session, segment_id=segment_id, clock=clock)

    def one(customer_id: int) -> None:
        with committed.transaction() as session:
            refresh_customer(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock)

    # when two sweeps and a refresh of each customer run at once
    errors = run_together([sweep, sweep] + [partial(one, c) for c in ids])
    # then every customer entered exactly once, whoever noticed first
    assert errors == []
    with committed.session() as session:
        assert _members(session, segment_id) == set(ids)
        entered = [c for c, change, _ in _events(session, segment_id) if change == "entered"]
        assert sorted(entered) == sorted(ids)


def test_the_refresh_job_goes_on_past_a_broken_segment(committed: Database, clock: FrozenClock) -> None:
    from siyu.jobs.service import JobContext

    with committed.transaction() as session:
        workspace = make_workspace(session, clock=clock)
        actor = Actor.system(workspace.id)
        make_customer(session, actor=actor, clock=clock, city="上海")
        good = create_segment(
            session,
            actor=actor,
            data=SegmentInput(name="good", definition={"kind": "field", "field": "city", "op": "eq", "value": "上海"}),
            clock=clock,
        )
        broken = create_segment(
            session, actor=actor, data=SegmentInput(name="broken", definition=SPENDERS), clock=clock
        )
        broken.definition = {"kind": "nonsense"}  # stored before a change of the language, say
        good_id, broken_id = good.id, broken.id
    context = JobContext(job_id=0, workspace_id=None, args={}, progress=lambda done, total=None: None)
    totals = tasks.refresh_segments_job(context)
    assert totals["failed"] >= 1
    with committed.session() as session:
        sizes = {
            p.segment_id: p.size
            for p in session.scalars(
                select(SegmentSizePoint).where(SegmentSizePoint.segment_id.in_([good_id, broken_id]))
            )
        }
        assert sizes == {good_id: 1}
        assert session.get(Segment, good_id).member_count == 1  # type: ignore[union-attr]


def test_a_store_manager_sees_the_history_of_their_store_only(db: Session, clock: FrozenClock) -> None:
    from siyu.models import Role
    from siyu.segments.service.tracking import membership_events
    from tests.factories import actor_for, make_staff, make_store

    workspace = make_workspace(db, clock=clock)
    system = Actor.system(workspace.id)
    store = make_store(db, workspace=workspace)
    ours = make_staff(db, workspace=workspace, clock=clock, store=store)
    theirs = make_staff(db, workspace=workspace, clock=clock)
    mine = make_customer(db, actor=system, clock=clock, city="上海", owner_staff_id=ours.id).customer
    other = make_customer(db, actor=system, clock=clock, city="上海", owner_staff_id=theirs.id).customer
    segment = create_segment(
        db,
        actor=system,
        data=SegmentInput(name="上海", definition={"kind": "field", "field": "city", "op": "eq", "value": "上海"}),
        clock=clock,
    )
    update_segment(db, actor=system, segment_id=segment.id, changes=SegmentChanges(is_tracked=True), clock=clock)
    refresh_segment(db, segment_id=segment.id, clock=clock)
    manager = actor_for(workspace, role=Role.STORE_MANAGER, store_id=store.id)
    assert [e.customer_id for e in membership_events(db, manager, segment.id).items] == [mine.id]
    assert sorted(e.customer_id for e in membership_events(db, system, segment.id).items) == sorted([mine.id, other.id])
