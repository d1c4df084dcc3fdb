"""Parked orders: kept while their buyer is unknown, ingested by the sweep once a customer with one
of their identities appears, or when the same order arrives again after that."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.commerce.orders import parked
from siyu.commerce.orders.ingest import ingest_order
from siyu.commerce.orders.tasks import sweep_parked
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import CommerceSettings, Order, OrderSource, ParkedOrder, UnknownCustomerPolicy, Workspace
from tests.commerce.orders.factories import order_in
from tests.factories import actor_for, make_customer, make_workspace


def _send(db: Session, ws: Workspace, clock: FrozenClock, phone: str, number: str, source: OrderSource) -> None:
    order = order_in(phone=phone, external_id=number)
    ingest_order(db, actor=actor_for(ws), order=order, source=source, clock=clock)


def _parking_workspace(db: Session, clock: FrozenClock) -> Workspace:
    ws = make_workspace(db, clock=clock)
    db.add(CommerceSettings(workspace_id=ws.id, unknown_customer=UnknownCustomerPolicy.PARK, updated_at=clock.now()))
    db.flush()
    return ws


def test_sweep_ingests_parked_orders_once_the_buyer_appears(db: Session, clock: FrozenClock) -> None:
    # given two parked orders of unknown buyers (one arrived by webhook)
    ws = _parking_workspace(db, clock)
    actor = actor_for(ws)
    ingest_order(
        db, actor=actor, order=order_in(phone="13500135000", external_id="W1"), source=OrderSource.WEBHOOK, clock=clock
    )
    ingest_order(
        db, actor=actor, order=order_in(phone="13500135001", external_id="W2"), source=OrderSource.API, clock=clock
    )
    # when nothing changed, the sweep ingests nothing
    assert parked.sweep(db, workspace_id=ws.id, clock=clock) == (0, None)
    # when the first buyer becomes a customer and the sweep runs
    customer = make_customer(db, actor=actor, clock=clock, phone="13500135000").customer
    ingested, _ = parked.sweep(db, workspace_id=ws.id, clock=clock)
    # then their order is ingested for them, keeping its source, and the parked row is resolved
    assert ingested == 1
    order = db.scalars(select(Order).where(Order.workspace_id == ws.id)).one()
    assert (order.customer_id, order.external_id, order.source) == (customer.id, "W1", "webhook")
    rows = {p.external_id: p for p in db.scalars(select(ParkedOrder).where(ParkedOrder.workspace_id == ws.id))}
    assert (rows["W1"].resolved_at, rows["W1"].order_id) == (clock.now(), order.id)
    assert rows["W2"].resolved_at is None
    listed = parked.list_parked(db, actor=actor)
    assert [p.external_id for p in listed.items] == ["W2"]


def test_a_parked_order_sent_again_after_the_buyer_appears_is_ingested(db: Session, clock: FrozenClock) -> None:
    ws = _parking_workspace(db, clock)
    actor = actor_for(ws)
    order = order_in(phone="13500135002", external_id="W3")
    ingest_order(db, actor=actor, order=order, source=OrderSource.API, clock=clock)
    make_customer(db, actor=actor, clock=clock, phone="13500135002")
    outcome = ingest_order(db, actor=actor, order=order, source=OrderSource.API, clock=clock)
    assert outcome.status == "created"
    row = db.scalars(select(ParkedOrder).where(ParkedOrder.workspace_id == ws.id)).one()
    assert outcome.order is not None and row.order_id == outcome.order.id


def test_the_periodic_sweep_commits_per_workspace(db: Session, clock: FrozenClock, database: Database) -> None:
    ws = _parking_workspace(db, clock)
    actor = actor_for(ws)
    ingest_order(
        db, actor=actor, order=order_in(phone="13500135003", external_id="W4"), source=OrderSource.API, clock=clock
    )
    make_customer(db, actor=actor, clock=clock, phone="13500135003")
    db.commit()
    totals = sweep_parked(database, clock)
    assert (totals["ingested"], totals["failed"]) == (1, 0)
    assert db.scalar(select(Order.external_id).where(Order.workspace_id == ws.id)) == "W4"
