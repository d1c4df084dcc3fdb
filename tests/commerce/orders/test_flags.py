"""Pool flags: orders paid after the customer joined are numbered (首单 = 1, 复购 = 2+), orders
arriving out of order renumber, a fully refunded order stops counting, a merge renumbers both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

import siyu.commerce.orders.tasks  # wires orders into customer merges
import siyu.loyalty.merge  # noqa: F401 - folds members in merges
from siyu.auth.permissions import Actor
from siyu.commerce.orders.ingest import ingest_order, ingest_orders
from siyu.commerce.orders.refunds import refund_order
from siyu.customers.service.merge import merge_customers
from siyu.kit.clock import FrozenClock
from siyu.models import Customer, Member, Order, OrderItem, OrderSource
from tests.commerce.orders.factories import order_in
from tests.factories import actor_for, make_customer, make_relationship, make_staff, make_workspace

JOINED = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)


def _customer(db: Session, actor: Actor, clock: FrozenClock, phone: str) -> Customer:
    """A customer created (joined the pool) on 1 October."""
    now = clock.now()
    clock.set(JOINED)
    customer = make_customer(db, actor=actor, clock=clock, phone=phone).customer
    clock.set(now)
    return customer


def _order(db: Session, actor: Actor, clock: FrozenClock, customer: Customer, day: int, **extra: object) -> Order:
    paid_at = datetime(2026, 9, 1, 4, 0, tzinfo=UTC) + timedelta(days=day)
    outcome = ingest_order(
        db,
        actor=actor,
        order=order_in(customer_id=customer.id, paid_at=paid_at, **extra),
        source=OrderSource.API,
        clock=clock,
    )
    assert outcome.order is not None, outcome.error
    return outcome.order


def _member(db: Session, customer: Customer) -> Member:
    return db.scalars(select(Member).where(Member.customer_id == customer.id)).one()


def test_orders_before_joining_are_outside_the_pool(db: Session, clock: FrozenClock) -> None:
    # given a customer who joined on 1 October
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = _customer(db, actor, clock, "13800138001")
    # when they have an order from September and two after joining
    before = _order(db, actor, clock, customer, day=5)
    first = _order(db, actor, clock, customer, day=40)
    second = _order(db, actor, clock, customer, day=50)
    # then only the two later ones are numbered, and the member flags follow
    assert (before.pool_sequence, first.pool_sequence, second.pool_sequence) == (None, 1, 2)
    member = _member(db, customer)
    assert (member.first_order_id, member.first_order_at) == (first.id, first.paid_at)
    assert (member.orders_count, member.is_repurchaser, member.last_order_at) == (2, True, second.paid_at)
    assert member.spend_fen == 39_800


def test_the_earliest_relationship_is_the_join_time(db: Session, clock: FrozenClock) -> None:
    # given a customer created in October who added a staff member back in August
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = _customer(db, actor, clock, "13800138002")
    staff = make_staff(db, workspace=ws, clock=clock)
    make_relationship(db, customer=customer, staff=staff, added_at=datetime(2026, 8, 1, tzinfo=UTC))
    # when a September order arrives
    order = _order(db, actor, clock, customer, day=5)
    # then it is their first order in the pool
    assert order.pool_sequence == 1
    assert _member(db, customer).orders_count == 1


def test_an_earlier_order_arriving_late_renumbers(db: Session, clock: FrozenClock) -> None:
    # given a customer whose 20 October order is known
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = _customer(db, actor, clock, "13800138003")
    later = _order(db, actor, clock, customer, day=50)
    assert later.pool_sequence == 1
    # when their 10 October order arrives afterwards
    earlier = _order(db, actor, clock, customer, day=40)
    # then the earlier one is the first order and the later one the repurchase
    assert (earlier.pool_sequence, later.pool_sequence) == (1, 2)
    member = _member(db, customer)
    assert (member.first_order_id, member.last_order_at, member.is_repurchaser) == (earlier.id, later.paid_at, True)


def test_a_fully_refunded_order_stops_counting(db: Session, clock: FrozenClock) -> None:
    # given two pool orders
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = _customer(db, actor, clock, "13800138004")
    first = _order(db, actor, clock, customer, day=40)
    second = _order(db, actor, clock, customer, day=50)
    # when the first is refunded in full and the second in part
    refund_order(
        db,
        actor=actor,
        order_id=first.id,
        external_id="R1",
        amount_fen=None,
        items=None,
        reason=None,
        refunded_at=None,
        clock=clock,
    )
    refund_order(
        db,
        actor=actor,
        order_id=second.id,
        external_id="R2",
        amount_fen=4_900,
        items=None,
        reason=None,
        refunded_at=None,
        clock=clock,
    )
    # then the second is now the first order, and the customer is no repurchaser
    assert (first.pool_sequence, second.pool_sequence) == (None, 1)
    member = _member(db, customer)
    assert (member.first_order_id, member.orders_count, member.is_repurchaser) == (second.id, 1, False)
    assert member.spend_fen == 15_000


def test_a_merge_numbers_both_customers_orders_for_the_survivor(db: Session, clock: FrozenClock) -> None:
    # given two profiles of one person, each with one pool order
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    survivor = _customer(db, actor, clock, "13800138005")
    merged = _customer(db, actor, clock, "13800138006")
    late = _order(db, actor, clock, survivor, day=50)
    early = _order(db, actor, clock, merged, day=40)
    # when they are merged
    merge_customers(db, actor=actor, survivor_id=survivor.id, merged_id=merged.id, reason="same person", clock=clock)
    db.flush()
    # then the survivor holds both orders (and their lines), numbered by payment time
    assert (early.customer_id, early.pool_sequence, late.pool_sequence) == (survivor.id, 1, 2)
    lines = db.scalars(select(OrderItem.customer_id).where(OrderItem.order_id == early.id)).all()
    assert lines == [survivor.id]
    member = _member(db, survivor)
    assert (member.orders_count, member.first_order_id, member.is_repurchaser) == (2, early.id, True)


def test_a_merge_into_a_customer_without_orders_keeps_the_flags(db: Session, clock: FrozenClock) -> None:
    # given a survivor without orders (no member) and a profile with two pool orders
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    survivor = _customer(db, actor, clock, "13800138007")
    merged = _customer(db, actor, clock, "13800138008")
    first = _order(db, actor, clock, merged, day=40)
    _order(db, actor, clock, merged, day=50)
    # when they are merged
    merge_customers(db, actor=actor, survivor_id=survivor.id, merged_id=merged.id, reason="same person", clock=clock)
    db.flush()
    # then the survivor's (only) member carries the orders' flags and points
    members = db.scalars(select(Member).where(Member.workspace_id == ws.id)).all()
    assert [(m.customer_id, m.orders_count, m.first_order_id, m.points_balance) for m in members] == [
        (survivor.id, 2, first.id, 398)
    ]


def test_a_batch_that_joins_two_profiles_numbers_them_together(db: Session, clock: FrozenClock) -> None:
    # given an older customer known by a Taobao id, who joined on 1 October
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    now = clock.now()
    clock.set(JOINED)
    older = make_customer(db, actor=actor, clock=clock, identities=[("taobao", "lin_xx")]).customer
    clock.set(now)
    paid = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)
    # when a batch brings an order of a new phone, then one naming that phone and the Taobao id
    outcomes = ingest_orders(
        db,
        actor=actor,
        orders=[
            order_in(phone="13800138009", external_id="J1", paid_at=paid),
            order_in(
                identities=[{"type": "phone", "value": "13800138009"}, {"type": "taobao", "value": "lin_xx"}],
                external_id="J2",
                paid_at=paid + timedelta(days=1),
            ),
        ],
        source=OrderSource.API,
        clock=clock,
    )
    # then the two profiles are one (the older), holding both orders and the only member
    assert [o.status for o in outcomes] == ["created", "created"]
    orders = db.scalars(select(Order).where(Order.workspace_id == ws.id).order_by(Order.paid_at)).all()
    assert [(o.customer_id, o.pool_sequence) for o in orders] == [(older.id, 1), (older.id, 2)]
    members = db.scalars(select(Member).where(Member.workspace_id == ws.id)).all()
    assert [(m.customer_id, m.orders_count, m.is_repurchaser, m.points_balance) for m in members] == [
        (older.id, 2, True, 398)
    ]
