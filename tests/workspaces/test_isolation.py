"""Workspace isolation: nothing of workspace B is visible, countable or changeable from A."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from siyu.customers import repository
from siyu.customers.errors import CustomerNotFound
from siyu.customers.repository import CustomerFilter
from siyu.customers.service import tags as tag_service
from siyu.customers.service.merge import merge_customers
from siyu.customers.service.profile import ProfileInput, ingest_customer, update_customer
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import NotFound, PermissionDenied
from siyu.models import Customer, Identity, Workspace
from siyu.workspaces.scope import bind_workspace
from tests.factories import actor_for, make_customer, make_tag, make_workspace


def _two_brands(db: Session, clock: FrozenClock) -> tuple[Customer, Customer]:
    a_ws, b_ws = make_workspace(db, clock=clock), make_workspace(db, clock=clock)
    a = make_customer(db, actor=actor_for(a_ws), clock=clock, phone="13800138000", name="A").customer
    b = make_customer(db, actor=actor_for(b_ws), clock=clock, phone="13800138000", name="B").customer
    return a, b


def test_same_phone_in_two_brands_is_two_people(db: Session, clock: FrozenClock) -> None:
    a, b = _two_brands(db, clock)
    assert a.id != b.id
    assert repository.find_by_identity(db, a.workspace_id, "phone", "+8613800138000") is a


def test_services_never_reach_across(db: Session, clock: FrozenClock) -> None:
    a, b = _two_brands(db, clock)
    actor_a = actor_for(db.get(Workspace, a.workspace_id))  # type: ignore[arg-type]
    with pytest.raises(CustomerNotFound):
        repository.get_visible(db, actor_a, b.id)
    with pytest.raises(CustomerNotFound):
        update_customer(db, actor=actor_a, customer_id=b.id, profile=ProfileInput(values={"name": "X"}), clock=clock)
    with pytest.raises(CustomerNotFound):
        merge_customers(db, actor=actor_a, survivor_id=a.id, merged_id=b.id, reason="t", clock=clock)
    page = repository.list_customers(db, actor_a, CustomerFilter())
    assert [c.id for c in page.items] == [a.id]
    assert repository.count_customers(db, actor_a, CustomerFilter(q="13800138000")) == 1
    b_tag = make_tag(db, workspace=db.get(Workspace, b.workspace_id))  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        tag_service.assign_tag(db, actor=actor_a, customer_id=a.id, tag_id=b_tag.id, clock=clock)
    # an ingest in A with B's identities creates A's own customer, never touching B
    result = ingest_customer(db, actor=actor_a, identities=[("phone", "13800138000")], source="t", clock=clock)
    assert result.customer.id == a.id
    assert b.name == "B"


def test_bound_session_filters_every_orm_query_and_refuses_foreign_writes(db: Session, clock: FrozenClock) -> None:
    a, b = _two_brands(db, clock)
    a_id, b_id, a_ws, b_ws = a.id, b.id, a.workspace_id, b.workspace_id
    db.flush()
    db.expunge_all()
    bind_workspace(db, a_ws)
    # reads: get, plain select, count and joins only see A
    assert db.get(Customer, b_id) is None
    assert db.scalars(select(Customer.id).where(Customer.id.in_([a_id, b_id]))).all() == [a_id]
    assert db.scalar(select(func.count()).select_from(Identity).join(Customer)) == 1
    # bulk update touches only A's rows
    db.execute(update(Customer).values(city="成都"))
    db.expunge_all()
    assert db.scalar(select(Customer.city).where(Customer.id == a_id)) == "成都"
    assert db.scalar(select(Customer.city).where(Customer.id == b_id).execution_options(siyu_unscoped=True)) is None
    # writes: a row stamped for B is refused
    db.add(Identity(workspace_id=b_ws, customer_id=b_id, type="jd", value="x", created_at=clock.now()))
    with pytest.raises(PermissionDenied):
        db.flush()
    db.rollback()
    with pytest.raises(PermissionDenied):
        bind_workspace(db, b_ws)
