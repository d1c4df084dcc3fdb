"""An operator's idempotency key lives in its own `adjust:` namespace: it can never take a key the
system writes (an order's earn, a lot's expiry), and the same key still finds the same entry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.loyalty.errors import InvalidPoints
from siyu.loyalty.members import get_member
from siyu.loyalty.points import ledger
from siyu.loyalty.points.service import adjust_points
from siyu.loyalty.purchases import apply_order
from siyu.models import ExpiryPolicy, Member, PointsEntry, PointsLot, Role
from tests.factories import actor_for, make_workspace
from tests.loyalty.tiers.factories import make_program, new_customer, place_order


def _member(db: Session, workspace_id: int, customer_id: int) -> Member:
    member = get_member(db, workspace_id, customer_id)
    assert member is not None
    return member


def test_an_operator_key_shaped_like_an_order_earn_key_does_not_take_the_orders_points(
    db: Session, clock: FrozenClock
) -> None:
    # given a ¥500 order not yet applied, and an operator adjusting +1 with the key "order:{id}:earn" (sent twice)
    ws = make_workspace(db, clock=clock)
    make_program(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    order = place_order(db, customer=customer, clock=clock, total_fen=50_000)
    operator = actor_for(ws, role=Role.OPERATOR)
    key = f"order:{order.id}:earn"
    first = adjust_points(
        db, actor=operator, customer_id=customer.id, points=1, reason="补偿", idempotency_key=key, clock=clock
    )
    retry = adjust_points(
        db, actor=operator, customer_id=customer.id, points=1, reason="补偿", idempotency_key=key, clock=clock
    )
    # when the order is applied
    apply_order(db, order=order, clock=clock)
    # then the order earns its 500 points beside the 1 adjusted once, each under its own key
    member = _member(db, ws.id, customer.id)
    assert first.id == retry.id
    assert member.points_balance == 501 == ledger.balance_from_ledger(db, member.id)
    keys = db.execute(
        select(PointsEntry.idempotency_key, PointsEntry.amount)
        .where(PointsEntry.member_id == member.id)
        .order_by(PointsEntry.id)
    ).all()
    assert [tuple(k) for k in keys] == [(f"adjust:order:{order.id}:earn", 1), (f"order:{order.id}:earn", 500)]


def test_an_operator_key_shaped_like_an_expiry_key_does_not_break_the_expiry(db: Session, clock: FrozenClock) -> None:
    # given points expiring 10 days after they are earned: 100 from an order, and +1 adjusted by an
    # operator with the key the expiry of the order's lot would use
    ws = make_workspace(db, clock=clock)
    make_program(db, workspace=ws, clock=clock, expiry_policy=ExpiryPolicy.DAYS, expiry_n=10)
    customer = new_customer(db, workspace=ws, clock=clock)
    apply_order(db, order=place_order(db, customer=customer, clock=clock, total_fen=10_000), clock=clock)
    member = _member(db, ws.id, customer.id)
    lot = db.scalars(select(PointsLot).where(PointsLot.member_id == member.id)).one()
    adjust_points(
        db,
        actor=actor_for(ws, role=Role.OPERATOR),
        customer_id=customer.id,
        points=1,
        reason="补偿",
        idempotency_key=f"expire:lot:{lot.id}:0",
        clock=clock,
    )
    # when the 11th day's expiry runs
    clock.set(clock.now() + timedelta(days=11))
    expired = ledger.expire_due(db, member=member, clock=clock)
    # then both lots expire (-100, -1) and nothing is left
    assert sorted(e.amount for e in expired) == [-100, -1]
    assert member.points_balance == 0 == ledger.balance_from_ledger(db, member.id)


def test_an_operator_key_is_at_most_186_characters(db: Session, clock: FrozenClock) -> None:
    # given a customer and an operator
    ws = make_workspace(db, clock=clock)
    make_program(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    operator = actor_for(ws, role=Role.OPERATOR)
    # when keys of 187 and 186 characters are used
    with pytest.raises(InvalidPoints) as too_long:
        adjust_points(
            db, actor=operator, customer_id=customer.id, points=5, reason="补偿", idempotency_key="k" * 187, clock=clock
        )
    entry = adjust_points(
        db, actor=operator, customer_id=customer.id, points=5, reason="补偿", idempotency_key="k" * 186, clock=clock
    )
    # then the long one names the field and writes nothing; the other is stored as "adjust:" + key
    assert too_long.value.details == {"field": "idempotency_key"}
    assert (entry.amount, entry.idempotency_key) == (5, "adjust:" + "k" * 186)
    assert _member(db, ws.id, customer.id).points_balance == 5
