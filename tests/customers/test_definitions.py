"""Operator-defined custom attributes and identity types."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from siyu.customers import repository
from siyu.customers.errors import InvalidIdentity
from siyu.customers.service.definitions import define_attribute, define_identity_type
from siyu.customers.service.profile import ProfileInput, ingest_customer, update_customer
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import Conflict, InvalidInput
from tests.factories import actor_for, make_customer, make_workspace


def test_typed_attributes_are_coerced_and_checked(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    define_attribute(db, actor=actor, key="shoe_size", label="鞋码", type_="integer", clock=clock)
    define_attribute(db, actor=actor, key="vip", label="VIP", type_="boolean", clock=clock)
    define_attribute(db, actor=actor, key="wedding", label="结婚纪念日", type_="date", clock=clock)
    customer = make_customer(db, actor=actor, clock=clock).customer
    update_customer(
        db,
        actor=actor,
        customer_id=customer.id,
        clock=clock,
        profile=ProfileInput(attributes={"shoe_size": "37", "vip": "是", "wedding": "2020-05-20"}),
    )
    assert customer.attributes == {"shoe_size": 37, "vip": True, "wedding": "2020-05-20"}
    with pytest.raises(InvalidInput) as err:
        update_customer(
            db,
            actor=actor,
            customer_id=customer.id,
            clock=clock,
            profile=ProfileInput(attributes={"shoe_size": "37.5"}),
        )
    assert err.value.details == {"field": "attributes.shoe_size"}
    with pytest.raises(InvalidInput) as unknown:
        update_customer(
            db, actor=actor, customer_id=customer.id, clock=clock, profile=ProfileInput(attributes={"height": 170})
        )
    assert unknown.value.details == {"field": "attributes.height"}
    assert customer.attributes["shoe_size"] == 37
    with pytest.raises(Conflict):
        define_attribute(db, actor=actor, key="vip", label="x", type_="string", clock=clock)
    with pytest.raises(InvalidInput):
        define_attribute(db, actor=actor, key="Bad Key", label="x", type_="string", clock=clock)
    with pytest.raises(InvalidInput):
        define_attribute(db, actor=actor, key="colour", label="x", type_="rgb", clock=clock)


def test_operator_defined_identity_type_resolves_customers(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    with pytest.raises(InvalidIdentity):
        ingest_customer(db, actor=actor, identities=[("app_uid", "u-1")], source="t", clock=clock)
    define_identity_type(db, actor=actor, key="app_uid", label="品牌App用户ID", clock=clock)
    first = ingest_customer(db, actor=actor, identities=[("app_uid", "u-1")], source="t", clock=clock).customer
    again = ingest_customer(db, actor=actor, identities=[("app_uid", " u-1 ")], source="t", clock=clock).customer
    assert first.id == again.id
    assert repository.find_by_identity(db, ws.id, "app_uid", "u-1") is first
    with pytest.raises(Conflict):
        define_identity_type(db, actor=actor, key="phone", label="x", clock=clock)
