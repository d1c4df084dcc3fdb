"""Ingesting records about people: create, update, merge (OneID), survivorship."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.customers import repository
from siyu.customers.errors import InvalidIdentity
from siyu.customers.service.profile import IngestOutcome, ProfileInput, ingest_customer, update_customer
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.models import Customer, Identity
from tests.factories import actor_for, make_customer, make_workspace


def test_new_identities_create_a_customer_with_e164_phone(db: Session, clock: FrozenClock) -> None:
    # given an empty workspace
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    # when a record with a full-width, spaced phone and a Taobao id arrives
    result = ingest_customer(
        db,
        actor=actor,
        identities=[("taobao", "tb_lily")],
        profile=ProfileInput(values={"name": "林小姐", "phone": "＋８６ １３８-００１３-８０００"}),
        source="test",
        clock=clock,
    )
    # then one customer holds both identities, the phone in E.164
    assert result.outcome is IngestOutcome.CREATED
    assert result.customer.phone == "+8613800138000"
    pairs = {(i.type, i.value) for i in repository.identities_of(db, result.customer.id)}
    assert pairs == {("taobao", "tb_lily"), ("phone", "+8613800138000")}


@pytest.mark.parametrize(
    "spelling", ["13800138000", "+86 138-0013-8000", "8613800138000", "008613800138000", "１３８００１３８０００"]
)
def test_phone_spellings_resolve_to_the_same_customer(db: Session, clock: FrozenClock, spelling: str) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    first = make_customer(db, actor=actor, clock=clock, phone="13800138000").customer
    again = ingest_customer(db, actor=actor, identities=[("phone", spelling)], source="test", clock=clock)
    assert again.customer.id == first.id
    assert again.outcome is IngestOutcome.UPDATED


def test_record_linking_two_customers_merges_them_into_the_oldest(db: Session, clock: FrozenClock) -> None:
    # given two customers known by different platforms
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    a = make_customer(db, actor=actor, clock=clock, identities=[("taobao", "tb1")], name="A").customer
    b = make_customer(db, actor=actor, clock=clock, identities=[("jd", "jd1")], city="杭州").customer
    # when a record carries both identities
    result = ingest_customer(db, actor=actor, identities=[("taobao", "tb1"), ("jd", "jd1")], source="t", clock=clock)
    # then B merged into A, A holds both identities and B's city
    assert result.outcome is IngestOutcome.MERGED
    assert result.customer.id == a.id
    assert result.merged_ids == [b.id]
    assert db.get(Customer, b.id).merged_into_id == a.id  # type: ignore[union-attr]
    assert a.city == "杭州"
    assert db.scalar(select(func.count()).select_from(Identity).where(Identity.customer_id == a.id)) == 2


def test_most_recent_non_empty_value_wins(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = make_customer(db, actor=actor, clock=clock, phone="13800138001", city="上海").customer
    older = clock.now() - timedelta(days=3)
    ingest_customer(
        db,
        actor=actor,
        identities=[("phone", "13800138001")],
        profile=ProfileInput(values={"city": "北京", "name": ""}),
        observed_at=older,
        source="t",
        clock=clock,
    )
    assert customer.city == "上海"  # the older observation loses
    clock.advance(timedelta(hours=1))
    ingest_customer(
        db,
        actor=actor,
        identities=[("phone", "13800138001")],
        profile=ProfileInput(values={"city": "深圳"}),
        source="t",
        clock=clock,
    )
    assert customer.city == "深圳"


def test_invalid_phone_is_rejected_naming_the_field(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    with pytest.raises(InvalidIdentity) as err:
        ingest_customer(db, actor=actor_for(ws), identities=[("phone", "12345")], source="t", clock=clock)
    assert err.value.details == {"field": "phone"}
    assert db.scalar(select(func.count()).select_from(Customer).where(Customer.workspace_id == ws.id)) == 0


def test_unknown_field_and_identity_type_are_rejected(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    with pytest.raises(InvalidInput) as err:
        ingest_customer(
            db,
            actor=actor_for(ws),
            identities=[("phone", "13800138000")],
            profile=ProfileInput(values={"shoe_size": 38}),
            source="t",
            clock=clock,
        )
    assert err.value.details == {"field": "shoe_size"}
    with pytest.raises(InvalidIdentity):
        ingest_customer(db, actor=actor_for(ws), identities=[("myspace", "x")], source="t", clock=clock)


def test_manual_edit_sets_fields_and_claims_phone(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = make_customer(db, actor=actor, clock=clock, identities=[("douyin", "dy1")]).customer
    update_customer(
        db,
        actor=actor,
        customer_id=customer.id,
        profile=ProfileInput(values={"phone": "13900139000", "gender": "female"}),
        clock=clock,
    )
    assert customer.phone == "+8613900139000"
    assert repository.find_by_identity(db, ws.id, "phone", "+8613900139000") is customer
