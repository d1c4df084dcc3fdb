"""Batches write their orders together: the orders of a batch get their ids in row order, and an
order another writer stored meanwhile is answered as a resend while the others go in."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.commerce.orders import ingest as ingest_module
from siyu.commerce.orders.ingest import ingest_orders
from siyu.commerce.orders.resolution import content_hash
from siyu.kit.clock import FrozenClock
from siyu.models import Order, OrderItem, OrderSource, OrderStatus, PointsEntry
from tests.commerce.orders.factories import PAID, order_in
from tests.factories import actor_for, make_customer, make_workspace


def test_a_batch_writes_its_orders_in_row_order(db: Session, clock: FrozenClock) -> None:
    # given a known buyer, a new one, and the known one again
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    known = make_customer(db, actor=actor, clock=clock, phone="13800138000").customer
    orders = [order_in(customer_id=known.id), order_in(phone="13900139000"), order_in(customer_id=known.id)]
    # when they are ingested as one batch
    outcomes = ingest_orders(db, actor=actor, orders=orders, source=OrderSource.API, clock=clock)
    # then all are created, with ids in row order, each with its line and its points
    assert [o.status for o in outcomes] == ["created"] * 3
    ids = [o.order.id for o in outcomes if o.order is not None]
    assert ids == sorted(ids) and len(ids) == 3
    assert [o.external_id for o in db.scalars(select(Order).where(Order.id.in_(ids)).order_by(Order.id))] == [
        o.external_id for o in orders
    ]
    assert len(db.scalars(select(OrderItem.id).where(OrderItem.order_id.in_(ids))).all()) == 3
    keys = db.scalars(select(PointsEntry.idempotency_key).where(PointsEntry.workspace_id == ws.id)).all()
    assert sorted(keys) == sorted(f"order:{i}:earn" for i in ids)


def test_a_resend_inside_the_batch_is_compared_with_the_order_written_before_it(
    db: Session, clock: FrozenClock
) -> None:
    # given a batch sending the same order twice, the second time with another amount
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    known = make_customer(db, actor=actor, clock=clock, phone="13800138000").customer
    first = order_in(customer_id=known.id, external_id="T-SAME")
    same = order_in(customer_id=known.id, external_id="T-SAME")
    other = order_in(customer_id=known.id, external_id="T-SAME", items=[{"sku": "SKU-1", "amount_fen": 100}])
    # when it is ingested
    outcomes = ingest_orders(db, actor=actor, orders=[first, same, other], source=OrderSource.API, clock=clock)
    # then the first is created, the resend unchanged, the other amount a conflict naming what differs
    assert [o.status for o in outcomes] == ["created", "unchanged", "rejected"]
    assert outcomes[2].error is not None and outcomes[2].error.details["fields"] == ["total_fen", "items"]


@pytest.mark.parametrize("content", ["same", "other"])
def test_an_order_stored_meanwhile_by_another_writer_is_answered_as_a_resend(
    db: Session, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    # given three orders of a known buyer, the second of which another writer stores right after
    # the batch looked its keys up
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    known = make_customer(db, actor=actor, clock=clock, phone="13800138000").customer
    orders = [order_in(customer_id=known.id) for _ in range(3)]
    raced = orders[1]
    looked_up = ingest_module.load

    def load_then_race(*args: Any, **kwargs: Any) -> Any:
        lookups = looked_up(*args, **kwargs)
        db.add(
            Order(
                workspace_id=ws.id,
                customer_id=known.id,
                platform=str(raced.platform),
                external_id=raced.external_id,
                status=OrderStatus.PAID,
                total_fen=raced.total_fen if content == "same" else raced.total_fen + 1,
                refunded_fen=0,
                paid_at=PAID,
                created_at=clock.now(),
                content_hash=content_hash(raced) if content == "same" else "x",
            )
        )
        db.flush()
        return lookups

    monkeypatch.setattr(ingest_module, "load", load_then_race)
    # when the batch is ingested
    outcomes = ingest_orders(db, actor=actor, orders=orders, source=OrderSource.API, clock=clock)
    # then the others are created, and the raced one is unchanged (same content) or a conflict
    expected = "unchanged" if content == "same" else "rejected"
    assert [o.status for o in outcomes] == ["created", expected, "created"]
    stored = db.scalars(select(Order.external_id).where(Order.workspace_id == ws.id).order_by(Order.id)).all()
    assert stored == [orders[1].external_id, orders[0].external_id, orders[2].external_id]
    earned = db.scalars(select(PointsEntry.source_ref).where(PointsEntry.workspace_id == ws.id)).all()
    assert len(earned) == 2  # the raced order was not applied by this batch
