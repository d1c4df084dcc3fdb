"""Refunds: by amount, per line, in full; larger than what is left refused; idempotent on the
refund id; points taken back exactly; nothing written by a refused refund."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.commerce.errors import InvalidRefund, OrderNotFound, RefundConflict
from siyu.commerce.orders.ingest import ingest_order
from siyu.commerce.orders.refunds import RefundItemIn, refund_order
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import PermissionDenied
from siyu.models import AuditEntry, Member, Order, OrderItem, OrderSource, Refund, Role
from tests.commerce.orders.factories import order_in
from tests.factories import actor_for, make_workspace

LINES = [
    {"sku": "A", "name": "洗面奶", "quantity": 2, "amount_fen": 20_000},
    {"sku": "B", "name": "面霜", "amount_fen": 10_000},
]


def _order(db: Session, actor: Actor, clock: FrozenClock) -> Order:
    """A 310-yuan order (300 of lines, 10 of shipping) earning 310 points."""
    outcome = ingest_order(
        db, actor=actor, order=order_in(items=LINES, shipping_fen=1_000), source=OrderSource.API, clock=clock
    )
    assert outcome.order is not None
    return outcome.order


def _refund(db: Session, actor: Actor, clock: FrozenClock, order: Order, key: str, **kw: object) -> Refund:
    args: dict = {"amount_fen": None, "items": None, "reason": None, "refunded_at": None} | kw
    return refund_order(db, actor=actor, order_id=order.id, external_id=key, clock=clock, **args)


def _balance(db: Session, order: Order) -> int:
    return db.scalars(select(Member.points_balance).where(Member.customer_id == order.customer_id)).one()


def _lines(db: Session, order: Order) -> list[tuple[str, int]]:
    rows = db.scalars(select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.id))
    return [(i.sku, i.refunded_fen) for i in rows]


def test_partial_refund_by_amount_then_the_rest(db: Session, clock: FrozenClock) -> None:
    # given an order that earned 310 points
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    order = _order(db, actor, clock)
    assert _balance(db, order) == 310
    # when 100.50 yuan is refunded
    first = _refund(db, actor, clock, order, "R1", amount_fen=10_050, reason="少发一件")
    # then the order is partially refunded and the points of the refunded money are taken back
    assert (order.status, order.refunded_fen) == ("partially_refunded", 10_050)
    assert (first.amount_fen, first.reason, first.items) == (10_050, "少发一件", None)
    assert _balance(db, order) == 209  # floor(209.50)
    assert _lines(db, order) == [("A", 6_700), ("B", 3_350)]  # in proportion to the lines' 200 and 100 yuan
    # when the rest is refunded (no amount: everything left)
    rest = _refund(db, actor, clock, order, "R2")
    # then the order is refunded, every line too, and no points are left
    assert rest.amount_fen == 20_950
    assert (order.status, order.refunded_fen) == ("refunded", 31_000)
    assert _lines(db, order) == [("A", 20_000), ("B", 10_000)]
    assert _balance(db, order) == 0
    audits = db.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "order")).all()
    assert audits == ["refund", "refund"]


def test_refund_per_line(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    order = _order(db, actor, clock)
    # when one piece of line A is refunded
    refund = _refund(db, actor, clock, order, "R1", items=[RefundItemIn(sku="A", quantity=1, amount_fen=10_000)])
    # then the line and the order show it
    assert refund.items == [{"sku": "A", "quantity": 1, "amount_fen": 10_000}]
    assert _lines(db, order) == [("A", 10_000), ("B", 0)]
    assert (order.status, order.refunded_fen) == ("partially_refunded", 10_000)
    assert _balance(db, order) == 210


def test_refund_larger_than_what_is_left_is_refused(db: Session, clock: FrozenClock) -> None:
    # given an order with 100 yuan already refunded
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    order = _order(db, actor, clock)
    _refund(db, actor, clock, order, "R1", amount_fen=10_000)
    # (spread over the lines: A 200 → 66.67 refunded, B 100 → 33.33 refunded)
    # when more than the 210 yuan left is asked, or more than a line holds
    with pytest.raises(InvalidRefund) as too_much:
        _refund(db, actor, clock, order, "R2", amount_fen=21_001)
    with pytest.raises(InvalidRefund) as line:
        _refund(db, actor, clock, order, "R3", items=[RefundItemIn(sku="B", amount_fen=6_668)])
    with pytest.raises(InvalidRefund) as unknown:
        _refund(db, actor, clock, order, "R4", items=[RefundItemIn(sku="Z", amount_fen=1)])
    # then each names the field, and nothing more was written
    assert too_much.value.details == {"field": "amount_fen", "left_fen": 21_000}
    assert line.value.details == {"field": "items[0].amount_fen", "left_fen": 6_667}
    assert unknown.value.details == {"field": "items[0].sku"}
    assert order.refunded_fen == 10_000
    assert db.scalar(select(func.count()).select_from(Refund).where(Refund.order_id == order.id)) == 1
    assert _balance(db, order) == 210


def test_refund_retry_is_idempotent_and_a_changed_amount_conflicts(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    order = _order(db, actor, clock)
    first = _refund(db, actor, clock, order, "R1", amount_fen=5_000)
    # when the same refund is sent again, then with another amount
    clock.advance(timedelta(minutes=5))
    again = _refund(db, actor, clock, order, "R1", amount_fen=5_000)
    with pytest.raises(RefundConflict) as conflict:
        _refund(db, actor, clock, order, "R1", amount_fen=6_000)
    # then the retry is the same refund, the conflict names the recorded amount
    assert again.id == first.id
    assert conflict.value.details["amount_fen"] == 5_000
    assert order.refunded_fen == 5_000
    assert _balance(db, order) == 260


def test_fully_refunded_order_takes_no_more_refunds(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    order = _order(db, actor, clock)
    _refund(db, actor, clock, order, "R1")
    with pytest.raises(InvalidRefund) as refused:
        _refund(db, actor, clock, order, "R2", amount_fen=1)
    assert refused.value.details == {"field": "order_id"}


def test_refund_dates_are_checked(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    order = _order(db, actor, clock)
    with pytest.raises(InvalidRefund) as early:
        _refund(db, actor, clock, order, "R1", refunded_at=order.paid_at - timedelta(days=1))
    assert early.value.details == {"field": "refunded_at"}
    assert order.refunded_fen == 0


def test_refund_needs_write_scope_and_a_known_order(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    order = _order(db, actor, clock)
    with pytest.raises(PermissionDenied):
        _refund(db, actor_for(ws, role=Role.ANALYST), clock, order, "R1")
    other = make_workspace(db, clock=clock)
    with pytest.raises(OrderNotFound):
        _refund(db, actor_for(other), clock, order, "R1")
    assert (order.refunded_fen, _balance(db, order)) == (0, 310)


def _pieces(db: Session, order: Order) -> list[tuple[str, int, int, int]]:
    rows = db.scalars(select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.id))
    return [(i.sku, i.quantity, i.refunded_quantity, i.refunded_fen) for i in rows]


def _refund_count(db: Session, order: Order) -> int:
    return int(db.scalar(select(func.count()).select_from(Refund).where(Refund.order_id == order.id)) or 0)


def test_refunded_pieces_cannot_be_refunded_again(db: Session, clock: FrozenClock) -> None:
    # given an order of A ×2 (200 yuan) and B ×1 (100 yuan), and B's one piece refunded for 50 yuan
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    order = _order(db, actor, clock)
    _refund(db, actor, clock, order, "R1", items=[RefundItemIn(sku="B", quantity=1, amount_fen=5_000)])
    # when B's piece is refunded again, and three pieces of A are asked in one refund
    with pytest.raises(InvalidRefund) as again:
        _refund(db, actor, clock, order, "R2", items=[RefundItemIn(sku="B", quantity=1, amount_fen=1_000)])
    with pytest.raises(InvalidRefund) as three:
        _refund(
            db,
            actor,
            clock,
            order,
            "R3",
            items=[
                RefundItemIn(sku="A", quantity=2, amount_fen=100),
                RefundItemIn(sku="A", quantity=1, amount_fen=100),
            ],
        )
    # then both are refused naming the item and the pieces left, and nothing was written
    assert again.value.details == {"field": "items[0].quantity", "left_quantity": 0}
    assert three.value.details == {"field": "items[1].quantity", "left_quantity": 0}
    assert _pieces(db, order) == [("A", 2, 0, 0), ("B", 1, 1, 5_000)]
    assert (order.refunded_fen, _refund_count(db, order)) == (5_000, 1)
    # when A's two pieces are refunded one at a time
    for key in ("R4", "R5"):
        _refund(db, actor, clock, order, key, items=[RefundItemIn(sku="A", quantity=1, amount_fen=1_000)])
    # then A has no piece left to refund
    with pytest.raises(InvalidRefund) as none_left:
        _refund(db, actor, clock, order, "R6", items=[RefundItemIn(sku="A", quantity=1, amount_fen=1_000)])
    assert none_left.value.details == {"field": "items[0].quantity", "left_quantity": 0}
    assert _pieces(db, order) == [("A", 2, 2, 2_000), ("B", 1, 1, 5_000)]
    assert (order.refunded_fen, order.status) == (7_000, "partially_refunded")


def test_amount_refunds_are_spread_over_the_lines_and_the_last_completes_them(db: Session, clock: FrozenClock) -> None:
    # given an order of two 1-yuan lines, A and B, one piece each
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    lines = [{"sku": "A", "name": "小样", "amount_fen": 100}, {"sku": "B", "name": "试用装", "amount_fen": 100}]
    order = ingest_order(db, actor=actor, order=order_in(items=lines), source=OrderSource.API, clock=clock).order
    assert order is not None
    # when 1.50 yuan is refunded by amount
    _refund(db, actor, clock, order, "R1", amount_fen=150)
    # then each line carries 0.75, summing to the order's refunded amount
    assert _pieces(db, order) == [("A", 1, 0, 75), ("B", 1, 0, 75)]
    assert (order.refunded_fen, order.status) == (150, "partially_refunded")
    # when 0.50 of line A is refunded by items: more than the 0.25 left of A, refused, nothing written
    with pytest.raises(InvalidRefund) as too_much:
        _refund(db, actor, clock, order, "R2", items=[RefundItemIn(sku="A", quantity=1, amount_fen=50)])
    assert too_much.value.details == {"field": "items[0].amount_fen", "left_fen": 25}
    assert (order.refunded_fen, _refund_count(db, order)) == (150, 1)
    # when the 0.25 left of A is refunded by items with its piece
    _refund(db, actor, clock, order, "R3", items=[RefundItemIn(sku="A", quantity=1, amount_fen=25)])
    assert _pieces(db, order) == [("A", 1, 1, 100), ("B", 1, 0, 75)]
    assert (order.refunded_fen, order.status) == (175, "partially_refunded")
    # when the last 0.25 is refunded by amount
    _refund(db, actor, clock, order, "R4", amount_fen=25)
    # then the order is refunded and every line fully, pieces included
    assert _pieces(db, order) == [("A", 1, 1, 100), ("B", 1, 1, 100)]
    assert (order.refunded_fen, order.status) == (200, "refunded")


def test_amount_spread_is_exact_to_the_fen_by_largest_remainder(db: Session, clock: FrozenClock) -> None:
    # given three 1-yuan lines and 0.50 of shipping
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    lines = [{"sku": s, "name": s, "amount_fen": 100} for s in ("A", "B", "C")]
    order = ingest_order(
        db, actor=actor, order=order_in(items=lines, shipping_fen=50), source=OrderSource.API, clock=clock
    ).order
    assert order is not None
    # when 1 yuan is refunded by amount: 33.33 each, the odd fen to the earliest line
    _refund(db, actor, clock, order, "R1", amount_fen=100)
    assert _lines(db, order) == [("A", 34), ("B", 33), ("C", 33)]
    # when 1 yuan more: 0.66/0.67/0.67 left, shares 33/33.5/33.5, the odd fen to B (larger remainder, earlier)
    _refund(db, actor, clock, order, "R2", amount_fen=100)
    assert _lines(db, order) == [("A", 67), ("B", 67), ("C", 66)]
    # when 1.20 more: the lines' last 1 yuan first, the other 0.20 is shipping
    _refund(db, actor, clock, order, "R3", amount_fen=120)
    # then every line is refunded and the lines sum to 3 yuan of the 3.20 refunded
    assert _lines(db, order) == [("A", 100), ("B", 100), ("C", 100)]
    assert (order.refunded_fen, order.status) == (320, "partially_refunded")
    # when the 0.30 of shipping left is refunded, the order is refunded
    _refund(db, actor, clock, order, "R4", amount_fen=30)
    assert (order.refunded_fen, order.status) == (350, "refunded")
    assert _lines(db, order) == [("A", 100), ("B", 100), ("C", 100)]


def test_lines_always_sum_to_the_refunded_amount(db: Session, clock: FrozenClock) -> None:
    # given an order of uneven lines and shipping, refunded in 40 seeded random steps by amount or by item
    rng = random.Random(6)
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    lines = [
        {"sku": "A", "name": "A", "quantity": 3, "amount_fen": 1_001},
        {"sku": "B", "name": "B", "amount_fen": 7},
        {"sku": "C", "name": "C", "quantity": 2, "amount_fen": 2_503},
    ]
    order = ingest_order(
        db, actor=actor, order=order_in(items=lines, shipping_fen=99), source=OrderSource.API, clock=clock
    ).order
    assert order is not None
    kinds: list[str] = []
    for step in range(40):
        left = order.total_fen - order.refunded_fen
        if left == 0:
            break
        rows = _pieces(db, order)
        sku, _, _, refunded = rng.choice(rows)
        line_left = next(i["amount_fen"] for i in lines if i["sku"] == sku) - refunded
        if rng.random() < 0.4 and line_left > 0:
            item = RefundItemIn(sku=sku, quantity=1, amount_fen=rng.randint(1, line_left))
            try:
                _refund(db, actor, clock, order, f"R{step}", items=[item])
                kinds.append("items")
            except InvalidRefund as exc:  # no piece left of that line
                assert exc.details["field"] == "items[0].quantity"
                kinds.append("refused")
        else:
            _refund(db, actor, clock, order, f"R{step}", amount_fen=rng.randint(1, min(left, 900)))
            kinds.append("amount")
        # then after every step the lines sum to what was refunded, up to their total
        rows = _pieces(db, order)
        assert sum(r[3] for r in rows) == min(order.refunded_fen, 3_511)
        assert all(
            0 <= refunded <= amount["amount_fen"] for (_, _, _, refunded), amount in zip(rows, lines, strict=True)
        )
        assert all(0 <= done <= quantity for (_, quantity, done, _) in rows)
    assert {"items", "amount"} <= set(kinds), kinds
    # and the refund that completed the order (or this last one) left every line fully refunded
    if order.status != "refunded":
        _refund(db, actor, clock, order, "last")
    assert (order.refunded_fen, order.status) == (3_610, "refunded")
    assert _pieces(db, order) == [("A", 3, 3, 1_001), ("B", 1, 1, 7), ("C", 2, 2, 2_503)]
