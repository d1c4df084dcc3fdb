"""Purchases in batches: `apply_orders` gives the same ledger, tier changes and member flags as
applying each order right after it was written, and a retried batch changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.commerce.orders.ingest import ingest_order, ingest_orders
from siyu.commerce.orders.schemas import OrderIn
from siyu.kit.clock import FrozenClock
from siyu.loyalty.members import get_member
from siyu.loyalty.points import ledger
from siyu.loyalty.purchases import apply_order, apply_orders
from siyu.models import Customer, Member, Order, OrderSource, PointsEntry, PointsLot, Tier, TierChange, Workspace
from tests.commerce.orders.factories import order_in
from tests.factories import actor_for, make_workspace
from tests.loyalty.tiers.factories import make_ladder, make_program, new_customer, place_order

AMOUNTS = [
    ("a", 60_000, 0),  # a: ¥600, then ¥500 in the same batch → 高级 with the second order
    ("b", 30_000, 1),
    ("a", 50_000, 2),
    ("c", 600_000, 3),  # c: straight to 尊享 with one order
    ("b", 10_000, 4),
    ("a", 12_345, 5),  # a again, now earning at 高级 (1.2×)
]
"""(customer, total fen, minutes after the first order) of the batch, in the order written."""


def _brand(db: Session, clock: FrozenClock, basis: str) -> tuple[Workspace, dict[str, Customer], list[Order]]:
    ws = make_workspace(db, clock=clock)
    make_program(db, workspace=ws, clock=clock, points_per_yuan=2, tier_basis=basis)
    make_ladder(db, workspace=ws, clock=clock)
    customers = {name: new_customer(db, workspace=ws, clock=clock) for name in "abc"}
    return ws, customers, []


def _place(db: Session, clock: FrozenClock, customers: dict[str, Customer], orders: list[Order], at: int) -> Order:
    name, total, minutes = AMOUNTS[at]
    order = place_order(
        db,
        customer=customers[name],
        clock=clock,
        total_fen=total,
        paid_at=clock.now() - timedelta(minutes=60 - minutes),
    )
    orders.append(order)
    return order


def _outcome(db: Session, ws: Workspace, customers: dict[str, Customer], orders: list[Order]) -> dict[str, Any]:
    """Everything the orders did, with ids replaced by names (customer, order index, tier name)."""
    index = {o.id: i for i, o in enumerate(orders)}
    tiers = {t.id: t.name for t in db.scalars(select(Tier).where(Tier.workspace_id == ws.id))}

    def ref(value: str | None) -> str | None:
        if value is None:
            return None
        parts = value.split(":")
        return ":".join(["order", str(index[int(parts[1])]), *parts[2:]]) if parts[0] == "order" else value

    out: dict[str, Any] = {}
    for name, customer in customers.items():
        member = get_member(db, ws.id, customer.id)
        assert member is not None
        entries = db.scalars(select(PointsEntry).where(PointsEntry.member_id == member.id).order_by(PointsEntry.id))
        lots = db.scalars(select(PointsLot).where(PointsLot.member_id == member.id).order_by(PointsLot.id))
        changes = db.scalars(select(TierChange).where(TierChange.member_id == member.id).order_by(TierChange.id))
        out[name] = {
            "member": (
                tiers.get(member.tier_id or 0),
                tiers.get(member.earned_tier_id or 0),
                member.points_balance,
                member.points_earned_total,
                ledger.balance_from_ledger(db, member.id),
            ),
            "entries": [
                (e.amount, str(e.kind), ref(e.source_ref), ref(e.idempotency_key), e.balance_after) for e in entries
            ],
            "lots": [(lot.amount, lot.remaining, lot.expires_at) for lot in lots],
            "changes": [
                (
                    str(c.reason),
                    tiers.get(c.from_tier_id or 0),
                    tiers.get(c.to_tier_id or 0),
                    c.detail,
                    ref(c.source_ref),
                )
                for c in changes
            ],
        }
    return out


@pytest.mark.parametrize("basis", ["spend", "points"])
def test_a_batch_gives_what_one_by_one_gives(db: Session, clock: FrozenClock, basis: str) -> None:
    # given two identical brands: in one each order is applied right after it is written
    ws1, customers1, orders1 = _brand(db, clock, basis)
    for at in range(len(AMOUNTS)):
        apply_order(db, order=_place(db, clock, customers1, orders1, at), clock=clock)
    # when in the other all six orders are written first and applied as one batch
    ws2, customers2, orders2 = _brand(db, clock, basis)
    for at in range(len(AMOUNTS)):
        _place(db, clock, customers2, orders2, at)
    apply_orders(db, orders=orders2, clock=clock)
    # then the ledgers, lots, tiers and tier changes are the same
    one_by_one = _outcome(db, ws1, customers1, orders1)
    assert _outcome(db, ws2, customers2, orders2) == one_by_one
    # and a's second order crossed 高级 (earning at the base rate), the third earned at 1.2×
    if basis == "spend":
        assert one_by_one["a"]["changes"][1] == (
            "qualified",
            "普通",
            "高级",
            "近365天消费 ¥1,100.00 ≥ ¥1,000.00",
            "order:2",
        )
        assert [e[:3] for e in one_by_one["a"]["entries"]] == [
            (1200, "earn", "order:0:x200"),
            (1000, "earn", "order:2:x200"),
            (296, "earn", "order:5:x240"),
        ]
        assert one_by_one["c"]["member"][:2] == ("尊享", "尊享")
        assert one_by_one["b"]["changes"] == [("joined", None, "普通", None, None)]


def test_a_retried_batch_changes_nothing(db: Session, clock: FrozenClock) -> None:
    # given a batch applied once
    ws, customers, orders = _brand(db, clock, "spend")
    for at in range(len(AMOUNTS)):
        _place(db, clock, customers, orders, at)
    apply_orders(db, orders=orders, clock=clock)
    before = _outcome(db, ws, customers, orders)
    # when it is applied again (a retry), and each order once more on its own
    apply_orders(db, orders=orders, clock=clock)
    for order in orders:
        apply_order(db, order=order, clock=clock)
    # then nothing changed
    assert _outcome(db, ws, customers, orders) == before


def test_a_member_with_points_debt_settles_it_from_the_batch(db: Session, clock: FrozenClock) -> None:
    # given a member owing 100 points (a refund took back more than was left)
    ws, customers, orders = _brand(db, clock, "spend")
    member = get_member(db, ws.id, customers["b"].id)
    assert member is None
    apply_order(db, order=_place(db, clock, customers, orders, 1), clock=clock)
    member = get_member(db, ws.id, customers["b"].id)
    assert member is not None
    member.points_debt = 100
    db.flush()
    # when their next order is applied through a batch
    apply_orders(db, orders=[_place(db, clock, customers, orders, 4)], clock=clock)
    # then the first new lot settled the debt, and the ledger still adds up
    db.refresh(member)
    assert (member.points_debt, member.points_balance) == (0, 600 + 200 - 100)
    assert member.points_balance == ledger.balance_from_ledger(db, member.id)


def _ingest_each(db: Session, ws: Workspace, orders: list[OrderIn], clock: FrozenClock) -> None:
    for order in orders:
        assert (
            ingest_order(db, actor=actor_for(ws), order=order, source=OrderSource.API, clock=clock).status == "created"
        )


def _ingest_batch(db: Session, ws: Workspace, orders: list[OrderIn], clock: FrozenClock) -> None:
    outcomes = ingest_orders(db, actor=actor_for(ws), orders=orders, source=OrderSource.API, clock=clock)
    assert [o.status for o in outcomes] == ["created"] * len(orders)


@pytest.mark.parametrize("ingest", [_ingest_each, _ingest_batch], ids=["one by one", "batch"])
def test_ingesting_a_batch_gives_the_members_one_by_one_gives(
    db: Session, clock: FrozenClock, ingest: Callable[[Session, Workspace, list[OrderIn], FrozenClock], None]
) -> None:
    # given a brand with the ladder, and orders of two known buyers and a new one (by phone)
    ws = make_workspace(db, clock=clock)
    make_ladder(db, workspace=ws, clock=clock)
    known = [new_customer(db, workspace=ws, clock=clock) for _ in range(2)]
    paid = clock.now() + timedelta(minutes=1)  # after they joined: in the pool
    clock.advance(timedelta(days=1))
    orders = [
        order_in(customer_id=known[0].id, items=[{"sku": "S", "amount_fen": 60_000}], paid_at=paid),
        order_in(phone="13900139000", items=[{"sku": "S", "amount_fen": 20_000}], paid_at=paid),
        order_in(customer_id=known[1].id, items=[{"sku": "S", "amount_fen": 5_000}], paid_at=paid),
        order_in(
            customer_id=known[0].id, items=[{"sku": "S", "amount_fen": 45_000}], paid_at=paid + timedelta(hours=1)
        ),
        order_in(phone="13900139000", items=[{"sku": "S", "amount_fen": 90_000}], paid_at=paid + timedelta(hours=2)),
    ]
    # when they are ingested (one by one, or as one batch)
    ingest(db, ws, orders, clock)
    # then the members are exactly these, whichever way
    rows = db.execute(
        select(Member, Customer.phone)
        .join(Customer, Customer.id == Member.customer_id)
        .where(Member.workspace_id == ws.id)
        .order_by(Member.customer_id)
    ).all()
    tiers = {t.id: t.name for t in db.scalars(select(Tier).where(Tier.workspace_id == ws.id))}
    assert [
        (
            tiers.get(m.tier_id or 0),
            m.points_balance,
            m.spend_fen,
            m.orders_count,
            m.is_repurchaser,
            db.scalar(select(Order.external_id).where(Order.id == m.first_order_id)),
        )
        for m, _ in rows
    ] == [
        # the second order crossed ¥1,000 and earned at the base rate (the tier it was placed in)
        ("高级", 600 + 450, 105_000, 2, True, orders[0].external_id),
        ("普通", 50, 5_000, 1, False, orders[2].external_id),
        # the new buyer joined when their first order came in, after paying: not in the pool
        ("高级", 200 + 900, 0, 0, False, None),
    ]
    changes = db.scalars(
        select(TierChange.source_ref)
        .join(Member, Member.id == TierChange.member_id)
        .where(Member.workspace_id == ws.id, TierChange.reason == "qualified")
        .order_by(Member.customer_id)
    ).all()
    by_external = {o.id: o.external_id for o in db.scalars(select(Order).where(Order.workspace_id == ws.id))}
    assert [by_external[int(ref.split(":")[1])] for ref in changes if ref] == [
        orders[3].external_id,
        orders[4].external_id,
    ]
