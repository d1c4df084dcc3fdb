"""Timeline events, relationships and consent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.customers.errors import CustomerNotFound
from siyu.customers.service import timeline
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import Conflict, InvalidInput
from siyu.models import CustomerEvent, RemovedBy
from tests.factories import actor_for, make_customer, make_staff, make_workspace


def _event(key: str, **kw: object) -> timeline.EventInput:
    return timeline.EventInput(type="page.view", occurred_at=kw.pop("at"), idempotency_key=key, **kw)  # type: ignore[arg-type]


def test_same_idempotency_key_records_once(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = make_customer(db, actor=actor, clock=clock, phone="13800138000").customer
    first, created = timeline.record_event(
        db, actor=actor, item=_event("k1", at=clock.now(), customer_id=customer.id), clock=clock
    )
    again, created_again = timeline.record_event(
        db,
        actor=actor,
        item=_event("k1", at=clock.now(), identity_type="phone", identity_value="13800138000"),
        clock=clock,
    )
    assert (created, created_again, again.id) == (True, False, first.id)
    count = db.scalar(select(func.count()).select_from(CustomerEvent).where(CustomerEvent.customer_id == customer.id))
    assert count == 1


def test_batch_rejects_bad_items_and_keeps_good_ones(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = make_customer(db, actor=actor, clock=clock).customer
    items = [
        _event("a", at=clock.now(), customer_id=customer.id),
        timeline.EventInput(type="Bad Type!", occurred_at=clock.now(), idempotency_key="b", customer_id=customer.id),
        _event("c", at=clock.now(), identity_type="phone", identity_value="13700000000"),
        _event("a", at=clock.now(), customer_id=customer.id),
    ]
    outcomes = timeline.record_events(db, actor=actor, items=items, clock=clock)
    assert [o.status for o in outcomes] == ["created", "rejected", "rejected", "duplicate"]
    assert outcomes[1].error == {
        "code": "invalid_input",
        "message": "type must be dotted lower-case words, e.g. page.view",
        "details": {"field": "type"},
    }
    assert outcomes[2].error["code"] == "customer_not_found"  # type: ignore[index]


def test_events_follow_a_merged_identity_to_the_survivor(db: Session, clock: FrozenClock) -> None:
    from siyu.customers.service.merge import merge_customers

    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    a = make_customer(db, actor=actor, clock=clock).customer
    b = make_customer(db, actor=actor, clock=clock, identities=[("jd", "jd9")]).customer
    merge_customers(db, actor=actor, survivor_id=a.id, merged_id=b.id, reason="t", clock=clock)
    event, _ = timeline.record_event(
        db, actor=actor, item=_event("x", at=clock.now(), identity_type="jd", identity_value="jd9"), clock=clock
    )
    assert event.customer_id == a.id


def test_timeline_pages_newest_first(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = make_customer(db, actor=actor, clock=clock).customer
    for n in range(5):
        timeline.record_event(
            db,
            actor=actor,
            clock=clock,
            item=_event(f"e{n}", at=clock.now() + timedelta(minutes=n), customer_id=customer.id),
        )
    first = timeline.timeline(db, actor=actor, customer_id=customer.id, limit=3)
    second = timeline.timeline(db, actor=actor, customer_id=customer.id, limit=3, cursor=first.next_cursor)
    keys = [e.idempotency_key for e in first.items + second.items]
    assert keys == ["e4", "e3", "e2", "e1", "e0"]
    assert second.next_cursor is None


def test_relationship_lifecycle_and_one_open_edge_per_pair(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    staff = make_staff(db, workspace=ws, clock=clock)
    customer = make_customer(db, actor=actor, clock=clock).customer
    edge = timeline.add_relationship(
        db,
        actor=actor,
        customer_id=customer.id,
        staff_id=staff.id,
        added_at=clock.now(),
        channel="包裹卡",
        live_code_state="lc12.ch3",
        clock=clock,
    )
    assert customer.owner_staff_id == staff.id
    with pytest.raises(Conflict):
        timeline.add_relationship(
            db, actor=actor, customer_id=customer.id, staff_id=staff.id, added_at=clock.now(), clock=clock
        )
    with pytest.raises(InvalidInput):
        timeline.add_relationship(
            db,
            actor=actor,
            customer_id=customer.id,
            staff_id=staff.id,
            added_at=clock.now(),
            live_code_state="x" * 31,
            clock=clock,
        )
    later = clock.now() + timedelta(days=9)
    timeline.end_relationship(
        db, actor=actor, relationship_id=edge.id, removed_by=RemovedBy.CUSTOMER, removed_at=later, clock=clock
    )
    assert (edge.removed_at, edge.removed_by) == (later, RemovedBy.CUSTOMER)
    types = db.scalars(
        select(CustomerEvent.type).where(CustomerEvent.customer_id == customer.id).order_by(CustomerEvent.occurred_at)
    ).all()
    assert types == ["relationship.added", "relationship.removed"]


def test_consent_rejects_unknown_channel(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = make_customer(db, actor=actor, clock=clock).customer
    with pytest.raises(InvalidInput) as err:
        timeline.set_consent(
            db, actor=actor, customer_id=customer.id, channel="fax", status="granted", source="x", clock=clock
        )
    assert err.value.details == {"field": "channel"}
    with pytest.raises(CustomerNotFound):
        timeline.set_consent(
            db, actor=actor, customer_id=customer.id + 999, channel="sms", status="granted", source="x", clock=clock
        )
