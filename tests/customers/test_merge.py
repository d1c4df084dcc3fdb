"""Merging two profiles of one person and undoing the merge."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.customers.errors import MergeNotUndoable
from siyu.customers.service import merge as merge_service
from siyu.customers.service.tags import assign_tag, tags_of
from siyu.customers.service.timeline import (
    EventInput,
    add_relationship,
    consents_of,
    record_event,
    set_consent,
)
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import Customer, CustomerEvent, Identity, Relationship, Role
from tests.factories import actor_for, make_customer, make_staff, make_tag, make_workspace


def _state(db: Session, customer_id: int) -> dict[str, object]:
    """Everything a merge touches, comparable before and after."""
    customer = db.get(Customer, customer_id)
    assert customer is not None
    db.refresh(customer)
    return {
        "profile": (customer.name, customer.city, customer.phone, customer.gender, customer.merged_into_id),
        "attributes": dict(customer.attributes),
        "identities": sorted(
            (t, v)
            for t, v in db.execute(select(Identity.type, Identity.value).where(Identity.customer_id == customer_id))
        ),
        "events": sorted(db.scalars(select(CustomerEvent.id).where(CustomerEvent.customer_id == customer_id))),
        "relationships": sorted(db.scalars(select(Relationship.id).where(Relationship.customer_id == customer_id))),
        "tags": sorted((t.name, ct.source) for ct, t in tags_of(db, customer_id)),
        "consents": sorted((c.channel, c.status, c.source) for c in consents_of(db, customer_id)),
    }


def test_merge_moves_everything_and_undo_restores_it_exactly(db: Session, clock: FrozenClock) -> None:
    # given two profiles of one person, each with identities, events, a relationship, tags and consent
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    staff = make_staff(db, workspace=ws, clock=clock)
    shared_tag, own_tag = make_tag(db, workspace=ws, name="通勤"), make_tag(db, workspace=ws, name="甜美")
    a = make_customer(db, actor=actor, clock=clock, phone="13800138000", name="林", city="上海").customer
    clock.advance(timedelta(minutes=5))
    b = make_customer(db, actor=actor, clock=clock, identities=[("taobao", "tb_lin")], city="杭州").customer
    for customer, key in ((a, "a"), (b, "b")):
        record_event(
            db,
            actor=actor,
            clock=clock,
            item=EventInput(type="page.view", occurred_at=clock.now(), idempotency_key=key, customer_id=customer.id),
        )
        assign_tag(db, actor=actor, customer_id=customer.id, tag_id=shared_tag.id, clock=clock)
    assign_tag(db, actor=actor, customer_id=b.id, tag_id=own_tag.id, clock=clock)
    add_relationship(db, actor=actor, customer_id=b.id, staff_id=staff.id, added_at=clock.now(), clock=clock)
    set_consent(db, actor=actor, customer_id=a.id, channel="sms", status="granted", source="form", clock=clock)
    clock.advance(timedelta(minutes=1))
    set_consent(db, actor=actor, customer_id=b.id, channel="sms", status="unsubscribed", source="TD", clock=clock)
    before_a, before_b = _state(db, a.id), _state(db, b.id)

    # when B is merged into A
    merge = merge_service.merge_by_request(db, actor=actor, survivor_id=a.id, merged_id=b.id, clock=clock)

    # then A holds the union, the newer city and the newer consent; B is marked merged
    merged_a = _state(db, a.id)
    assert merged_a["identities"] == [("phone", "+8613800138000"), ("taobao", "tb_lin")]
    assert merged_a["profile"] == ("林", "杭州", "+8613800138000", None, None)
    assert merged_a["tags"] == [("甜美", "manual"), ("通勤", "manual")]
    assert merged_a["consents"] == [("sms", "unsubscribed", "TD")]
    assert len(merged_a["events"]) == len(before_a["events"]) + len(before_b["events"])  # type: ignore[arg-type]
    assert merged_a["relationships"] == before_b["relationships"]
    assert db.get(Customer, b.id).merged_into_id == a.id  # type: ignore[union-attr]

    # when the merge is undone
    merge_service.undo_merge(db, actor=actor, merge_id=merge.id, clock=clock)

    # then both profiles are exactly as before
    assert _state(db, a.id) == before_a
    assert _state(db, b.id) == before_b
    with pytest.raises(MergeNotUndoable):
        merge_service.undo_merge(db, actor=actor, merge_id=merge.id, clock=clock)


def test_undo_keeps_a_field_edited_after_the_merge(db: Session, clock: FrozenClock) -> None:
    from siyu.customers.service.profile import ProfileInput, update_customer

    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    a = make_customer(db, actor=actor, clock=clock, phone="13800138000", city="上海").customer
    clock.advance(timedelta(minutes=1))
    b = make_customer(db, actor=actor, clock=clock, phone="13900139000", name="小林").customer
    merge = merge_service.merge_customers(db, actor=actor, survivor_id=a.id, merged_id=b.id, reason="t", clock=clock)
    assert a.name == "小林"
    clock.advance(timedelta(minutes=1))
    update_customer(db, actor=actor, customer_id=a.id, profile=ProfileInput(values={"name": "林女士"}), clock=clock)
    merge_service.undo_merge(db, actor=actor, merge_id=merge.id, clock=clock)
    assert (a.name, a.city) == ("林女士", "上海")


def test_later_merge_must_be_undone_first(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    a, b, c = (make_customer(db, actor=actor, clock=clock).customer for _ in range(3))
    first = merge_service.merge_customers(db, actor=actor, survivor_id=a.id, merged_id=b.id, reason="t", clock=clock)
    second = merge_service.merge_customers(db, actor=actor, survivor_id=a.id, merged_id=c.id, reason="t", clock=clock)
    with pytest.raises(MergeNotUndoable) as err:
        merge_service.undo_merge(db, actor=actor, merge_id=first.id, clock=clock)
    assert err.value.details == {"merge_id": second.id}
    merge_service.undo_merge(db, actor=actor, merge_id=second.id, clock=clock)
    merge_service.undo_merge(db, actor=actor, merge_id=first.id, clock=clock)
    assert [x.merged_into_id for x in (a, b, c)] == [None, None, None]


def test_merge_refuses_self_and_already_merged(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    a, b = (make_customer(db, actor=actor, clock=clock).customer for _ in range(2))
    with pytest.raises(InvalidInput):
        merge_service.merge_customers(db, actor=actor, survivor_id=a.id, merged_id=a.id, reason="t", clock=clock)
    merge_service.merge_customers(db, actor=actor, survivor_id=a.id, merged_id=b.id, reason="t", clock=clock)
    with pytest.raises(InvalidInput):
        merge_service.merge_customers(db, actor=actor, survivor_id=b.id, merged_id=a.id, reason="t", clock=clock)


def test_analyst_may_not_merge_and_nothing_changes(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    a, b = (make_customer(db, actor=actor_for(ws), clock=clock).customer for _ in range(2))
    with pytest.raises(PermissionDenied):
        merge_service.merge_by_request(
            db, actor=actor_for(ws, role=Role.ANALYST), survivor_id=a.id, merged_id=b.id, clock=clock
        )
    assert (a.merged_into_id, b.merged_into_id) == (None, None)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tag_sets=st.tuples(st.sets(st.integers(0, 3)), st.sets(st.integers(0, 3))),
    events=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    consents=st.tuples(
        st.sampled_from([None, "granted", "unsubscribed"]), st.sampled_from([None, "granted", "unsubscribed"])
    ),
    cities=st.tuples(st.sampled_from([None, "上海", "杭州"]), st.sampled_from([None, "北京", "深圳"])),
)
def test_property_merge_then_undo_is_identity(
    db: Session,
    clock: FrozenClock,
    tag_sets: tuple[set[int], set[int]],
    events: tuple[int, int],
    consents: tuple[str | None, str | None],
    cities: tuple[str | None, str | None],
) -> None:
    """For any two profiles, merge followed by undo leaves both exactly as they were."""
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    tags = [make_tag(db, workspace=ws, name=f"t{i}") for i in range(4)]
    people = []
    for side in range(2):
        clock.advance(timedelta(seconds=1))
        values = {"city": cities[side]} if cities[side] else {}
        customer = make_customer(db, actor=actor, clock=clock, **values).customer
        for tag_index in sorted(tag_sets[side]):
            assign_tag(db, actor=actor, customer_id=customer.id, tag_id=tags[tag_index].id, clock=clock)
        for n in range(events[side]):
            item = EventInput(
                type="page.view", occurred_at=clock.now(), idempotency_key=f"{customer.id}:{n}", customer_id=customer.id
            )
            record_event(db, actor=actor, item=item, clock=clock)
        if consents[side]:
            set_consent(
                db,
                actor=actor,
                customer_id=customer.id,
                channel="sms",
                status=consents[side],
                source=f"s{side}",
                clock=clock,
            )
        people.append(customer)
    a, b = people
    before = (_state(db, a.id), _state(db, b.id))
    merge = merge_service.merge_customers(db, actor=actor, survivor_id=a.id, merged_id=b.id, reason="p", clock=clock)
    merged = _state(db, a.id)
    assert {name for name, _ in merged["tags"]} == {  # type: ignore[attr-defined]
        f"t{i}" for i in tag_sets[0] | tag_sets[1]
    }
    assert merged["events"] == sorted(before[0]["events"] + before[1]["events"])  # type: ignore[operator]
    merge_service.undo_merge(db, actor=actor, merge_id=merge.id, clock=clock)
    assert (_state(db, a.id), _state(db, b.id)) == before
    assert db.scalar(select(func.count()).select_from(Customer).where(Customer.workspace_id == ws.id)) == 2


def test_undo_after_a_dropped_tag_was_deleted(db: Session, clock: FrozenClock) -> None:
    from siyu.customers.service.tags import delete_tag

    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    tag = make_tag(db, workspace=ws)
    a, b = (make_customer(db, actor=actor, clock=clock).customer for _ in range(2))
    for customer in (a, b):
        assign_tag(db, actor=actor, customer_id=customer.id, tag_id=tag.id, clock=clock)
    merge = merge_service.merge_customers(db, actor=actor, survivor_id=a.id, merged_id=b.id, reason="t", clock=clock)
    delete_tag(db, actor=actor, tag_id=tag.id, clock=clock)
    merge_service.undo_merge(db, actor=actor, merge_id=merge.id, clock=clock)
    assert (tags_of(db, a.id), tags_of(db, b.id), b.merged_into_id) == ([], [], None)
