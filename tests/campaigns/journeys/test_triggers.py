"""Enrolment from every trigger type: who enters, under which entry key, and only once."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from siyu.campaigns.journeys.engine import run_journeys
from siyu.customers.service.tags import assign_tag
from siyu.customers.service.timeline import add_relationship
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Customer, CustomerEvent, SegmentMembershipEvent, Workspace
from tests.campaigns.journeys.factories import enrolments_of, make_journey
from tests.factories import actor_for, make_customer, make_staff, make_tag, make_workspace
from tests.segments.factories import make_event, make_sale, make_segment

WAIT = [{"id": "w", "type": "wait", "days": 1}]


def _customer(db: Session, workspace: Workspace, clock: FrozenClock, name: str, **values: object) -> Customer:
    return make_customer(db, actor=actor_for(workspace), clock=clock, name=name, **values).customer


def _entries(db: Session, journey: object) -> list[tuple[int, str, str]]:
    return [(e.customer_id, e.entry_key, e.status) for e in enrolments_of(db, journey)]  # type: ignore[arg-type]


def test_relationship_added_enrols_adds_of_the_chosen_staff_only(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given a journey for adds of staff 甲, and an add that happened before it was activated
    workspace = make_workspace(db, clock=clock)
    actor = actor_for(workspace)
    chosen, other = make_staff(db, workspace=workspace, clock=clock), make_staff(db, workspace=workspace, clock=clock)
    early, first, second = (_customer(db, workspace, clock, n) for n in ("早", "王芳", "李雷"))
    add_relationship(db, actor=actor, customer_id=early.id, staff_id=chosen.id, added_at=clock.now(), clock=clock)
    journey = make_journey(
        db,
        workspace=workspace,
        clock=clock,
        trigger={"type": "relationship_added", "staff_ids": [chosen.id]},
        steps=WAIT,
    )
    # when two customers add staff: one the chosen one, one another
    add_relationship(db, actor=actor, customer_id=first.id, staff_id=chosen.id, added_at=clock.now(), clock=clock)
    add_relationship(db, actor=actor, customer_id=second.id, staff_id=other.id, added_at=clock.now(), clock=clock)
    db.commit()
    result = run_journeys(database, clock)
    # then only the add after activation, of the chosen staff member, enrolled
    entries = _entries(db, journey)
    assert [(c, s) for c, _k, s in entries] == [(first.id, "active")]
    assert entries[0][1].startswith("event:")
    assert result["enrolled"] == 1 and result["steps"] == 1 and result["waiting"] == 1


def test_group_joined_and_tag_added_enrol_on_their_rows(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a group-joined journey and a tag-added journey
    workspace = make_workspace(db, clock=clock)
    customer = _customer(db, workspace, clock, "王芳")
    tag, other_tag = make_tag(db, workspace=workspace), make_tag(db, workspace=workspace)
    joined = make_journey(db, workspace=workspace, clock=clock, trigger={"type": "group_joined"}, steps=WAIT)
    tagged = make_journey(
        db, workspace=workspace, clock=clock, trigger={"type": "tag_added", "tag_id": tag.id}, steps=WAIT
    )
    # when the customer joins a group and gets both tags
    event = make_event(db, customer=customer, type="group.joined", occurred_at=clock.now(), properties={"group_id": 7})
    actor = actor_for(workspace)
    assign_tag(db, actor=actor, customer_id=customer.id, tag_id=other_tag.id, clock=clock)
    assign_tag(db, actor=actor, customer_id=customer.id, tag_id=tag.id, clock=clock)
    db.commit()
    run_journeys(database, clock)
    # then each journey enrolled them once, keyed by the row that triggered it
    assert _entries(db, joined) == [(customer.id, f"event:{event.id}", "active")]
    [(who, key, _status)] = _entries(db, tagged)
    assert who == customer.id and key.startswith("tag:")


def test_segment_entered_enrols_entries_not_exits(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a tracked segment and a journey on entering it
    workspace = make_workspace(db, clock=clock)
    inside, leaving = _customer(db, workspace, clock, "王芳"), _customer(db, workspace, clock, "李雷")
    segment = make_segment(db, workspace=workspace, clock=clock, members=[inside.id])
    segment.is_tracked = True
    db.flush()
    journey = make_journey(
        db, workspace=workspace, clock=clock, trigger={"type": "segment_entered", "segment_id": segment.id}, steps=WAIT
    )
    # when one customer enters and another leaves
    for customer, change in ((inside, "entered"), (leaving, "left")):
        db.add(
            SegmentMembershipEvent(
                workspace_id=workspace.id,
                segment_id=segment.id,
                customer_id=customer.id,
                change=change,
                occurred_at=clock.now(),
                trigger="refresh",
            )
        )
    db.commit()
    run_journeys(database, clock)
    # then only the entry enrolled
    assert [(c, s) for c, _k, s in _entries(db, journey)] == [(inside.id, "active")]


def test_first_order_enrols_only_first_orders_and_product_ordered_remembers_the_cycle(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given a returning customer (ordered last month) and a new one; a first-order and a product journey
    workspace = make_workspace(db, clock=clock)
    returning, new = _customer(db, workspace, clock, "老客"), _customer(db, workspace, clock, "新客")
    make_sale(db, customer=returning, paid_at=clock.now() - timedelta(days=30))
    first = make_journey(db, workspace=workspace, clock=clock, trigger={"type": "first_order"}, steps=WAIT)
    product = make_journey(
        db,
        workspace=workspace,
        clock=clock,
        trigger={"type": "product_ordered", "sku": "SERUM-30", "cycle_days": 30},
        steps=[{"id": "cycle", "type": "wait", "cycle": True}],
    )
    # when both order now, the new customer buying the serum
    make_sale(db, customer=returning, paid_at=clock.now(), items=[("LIPSTICK", None)])
    order = make_sale(db, customer=new, paid_at=clock.now(), items=[("SERUM-30", None), ("SERUM-30", None)])
    db.commit()
    run_journeys(database, clock)
    # then only the new customer's order is a first order; the serum order enrolled once, waiting one cycle
    assert _entries(db, first) == [(new.id, f"order:{order.id}", "active")]
    [entry] = enrolments_of(db, product)
    assert (entry.customer_id, entry.entry_key) == (new.id, f"order:{order.id}")
    assert entry.context == {"order_id": order.id, "sku": "SERUM-30", "cycle_days": 30}
    assert entry.next_run_at == clock.now() + timedelta(days=30)


def test_birthday_enrols_once_a_year_on_the_brand_local_day(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given it is 23 November 10:00 in Shanghai; one customer born on 23 November, one on the 24th
    workspace = make_workspace(db, clock=clock)
    today = _customer(db, workspace, clock, "寿星", birthday=date(1990, 11, 23))
    _customer(db, workspace, clock, "明天", birthday=date(1991, 11, 24))
    journey = make_journey(db, workspace=workspace, clock=clock, trigger={"type": "birthday"}, steps=WAIT)
    # when the engine runs, again an hour later, and again the next day
    run_journeys(database, clock)
    clock.advance(timedelta(hours=1))
    run_journeys(database, clock)
    # then the customer born today entered once, keyed by the year
    assert _entries(db, journey) == [(today.id, "birthday:2026", "active")]
    # and at 16:30 UTC it is already the 24th in Shanghai: the other customer's birthday
    clock.set(datetime.fromisoformat("2026-11-23T16:30:00+00:00"))
    run_journeys(database, clock)
    assert len(enrolments_of(db, journey)) == 2


def test_inactive_enrols_customers_silent_for_d_days_keyed_by_their_last_event(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given one customer last seen 34 days ago and one 10 days ago; a 30-day inactivity journey
    workspace = make_workspace(db, clock=clock)
    silent, recent = _customer(db, workspace, clock, "沉睡"), _customer(db, workspace, clock, "活跃")
    make_event(db, customer=silent, type="page.view", occurred_at=clock.now() - timedelta(days=34))
    make_event(db, customer=recent, type="page.view", occurred_at=clock.now() - timedelta(days=10))
    journey = make_journey(db, workspace=workspace, clock=clock, trigger={"type": "inactive", "days": 30}, steps=WAIT)
    # when the engine runs twice on the same day
    run_journeys(database, clock)
    run_journeys(database, clock)
    # then the silent customer entered once, keyed by the day of their last event
    assert _entries(db, journey) == [(silent.id, "inactive:2026-10-20", "active")]


def test_reentry_rules(db: Session, database: Database, clock: FrozenClock) -> None:
    # given two group-joined journeys, one allowing re-entry, and a customer who joins twice
    workspace = make_workspace(db, clock=clock)
    customer = _customer(db, workspace, clock, "王芳")
    once = make_journey(db, workspace=workspace, clock=clock, trigger={"type": "group_joined"}, steps=WAIT)
    again = make_journey(
        db, workspace=workspace, clock=clock, trigger={"type": "group_joined"}, steps=WAIT, reentry=True
    )
    make_event(db, customer=customer, type="group.joined", occurred_at=clock.now())
    db.commit()
    run_journeys(database, clock)
    # when they join again while the first entry is still waiting
    make_event(db, customer=customer, type="group.joined", occurred_at=clock.now())
    db.commit()
    run_journeys(database, clock)
    # then neither journey enrolled them again
    assert len(enrolments_of(db, once)) == len(enrolments_of(db, again)) == 1
    # when the wait ends (the entries complete) and they join a third time
    clock.advance(timedelta(days=1, minutes=1))
    run_journeys(database, clock)
    make_event(db, customer=customer, type="group.joined", occurred_at=clock.now())
    db.commit()
    run_journeys(database, clock)
    # then only the re-entry journey enrolled them again
    assert [s for _c, _k, s in _entries(db, once)] == ["completed"]
    assert [s for _c, _k, s in _entries(db, again)] == ["completed", "active"]


def _event_with_id(db: Session, customer: Customer, event_id: int, recorded_at: datetime) -> None:
    """A group-joined event with a chosen id: how a transaction that took its id early and
    committed late looks to the next tick."""
    db.add(
        CustomerEvent(
            id=event_id,
            workspace_id=customer.workspace_id,
            customer_id=customer.id,
            type="group.joined",
            occurred_at=recorded_at,
            properties={},
            source="test",
            idempotency_key=f"late-{event_id}",
            recorded_at=recorded_at,
        )
    )
    db.commit()


def test_a_lower_id_committed_after_a_higher_one_was_read_still_enrols_once(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given an active group-joined journey and three customers
    workspace = make_workspace(db, clock=clock)
    journey = make_journey(db, workspace=workspace, clock=clock, trigger={"type": "group_joined"}, steps=WAIT)
    early, late, later = (_customer(db, workspace, clock, n) for n in ("王芳", "李雷", "韩梅"))
    base = journey.watermark + 1_000_000  # far above the sequence, so no ordinary insert collides
    started = clock.now()
    # when a tick reads id base+20 while a transaction holding id base+10 (begun earlier) is still open
    clock.advance(timedelta(minutes=30))
    _event_with_id(db, early, base + 20, clock.now())
    clock.advance(timedelta(minutes=30))
    assert run_journeys(database, clock)["enrolled"] == 1
    # and that transaction commits afterwards, with a time recorded before the tick
    _event_with_id(db, late, base + 10, started + timedelta(minutes=10))
    clock.advance(timedelta(minutes=30))
    result = run_journeys(database, clock)
    # then the next tick enrols it
    assert result["enrolled"] == 1
    assert sorted(_entries(db, journey)) == sorted(
        [(early.id, f"event:{base + 20}", "active"), (late.id, f"event:{base + 10}", "active")]
    )
    # and re-running, now and after the rows settle, never enrols anyone twice
    assert run_journeys(database, clock)["enrolled"] == 0
    clock.advance(timedelta(hours=49))
    _event_with_id(db, later, base + 30, clock.now())
    assert run_journeys(database, clock)["enrolled"] == 1
    assert run_journeys(database, clock)["enrolled"] == 0
    assert len(_entries(db, journey)) == 3
    # and the watermark moved past the settled rows only, never past the fresh one
    db.expire_all()
    assert journey.watermark == base + 20


def test_the_watermark_waits_for_rows_recorded_within_the_lag(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given an active journey and an event recorded just now
    workspace = make_workspace(db, clock=clock)
    journey = make_journey(db, workspace=workspace, clock=clock, trigger={"type": "group_joined"}, steps=WAIT)
    start = journey.watermark
    customer = _customer(db, workspace, clock, "王芳")
    _event_with_id(db, customer, start + 2_000_000, clock.now())
    # when ticks run now and 47 hours later
    run_journeys(database, clock)
    clock.advance(timedelta(hours=47))
    run_journeys(database, clock)
    # then the watermark has not moved (a lower id could still commit)
    db.expire_all()
    assert journey.watermark == start
    # when the row is older than the lag (48 h)
    clock.advance(timedelta(hours=2))
    run_journeys(database, clock)
    # then the watermark passes it, and the customer was enrolled exactly once
    db.expire_all()
    assert journey.watermark == start + 2_000_000
    assert [(c, k) for c, k, _s in _entries(db, journey)] == [(customer.id, f"event:{start + 2_000_000}")]
