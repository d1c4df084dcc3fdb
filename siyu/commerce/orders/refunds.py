"""Refunds: full or partial, per line or by amount, idempotent on (order, refund external id).

A refund is refused (`InvalidRefund`, nothing written) when it is larger than what is left of the
order or of a line (money or pieces). It updates the order's `refunded_fen` and status and the
lines' `refunded_fen` and `refunded_quantity`: a refund by items refunds those lines; one by amount
is spread over the lines in proportion to what is left of each (shipping only once every line is
refunded), so the lines sum to the order's `refunded_fen` up to their total; a refund that
completes the order refunds every line in full. It also recomputes the customer's pool flags (a
fully refunded order stops counting), takes back the points the refunded money earned
(`siyu.loyalty.purchases.apply_refund`) and, on a full refund, gives the coupon back when the
settings say so.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.commerce.errors import InvalidRefund, OrderNotFound, RefundConflict
from siyu.commerce.orders import flags
from siyu.commerce.orders.resolution import stored_items
from siyu.commerce.orders.schemas import MAX_FEN
from siyu.customers import repository as customers
from siyu.customers.activity import customer_activity, order_refunded
from siyu.kit.clock import Clock, as_utc
from siyu.kit.errors import InvalidInput
from siyu.kit.schemas import Input
from siyu.models import Order, OrderItem, OrderStatus, Refund

FUTURE_TOLERANCE = timedelta(minutes=10)


class RefundItemIn(Input):
    """One refunded line: which SKU, how many pieces, and how much money (fen)."""

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(default=1, ge=1, le=100_000)
    amount_fen: int = Field(ge=0, le=MAX_FEN)


class RefundIn(Input):
    """A refund of an order: give `items`, or `amount_fen`, or neither for everything that is left."""

    external_id: str = Field(min_length=1, max_length=100)
    """The platform's refund id: sending it again with the same amount changes nothing."""
    amount_fen: int | None = Field(default=None, ge=0, le=MAX_FEN)
    items: list[RefundItemIn] | None = Field(default=None, min_length=1, max_length=500)
    reason: str | None = Field(default=None, max_length=200)
    refunded_at: datetime | None = None


def _plan_lines(lines: list[OrderItem], items: list[RefundItemIn]) -> list[tuple[OrderItem, int, int]]:
    """(line, fen, pieces) for each refunded item, spread over the order's lines of its SKU.

    Refuses more pieces, or more money, than is left of the SKU's lines once what was refunded
    before (and by the earlier items of this refund) is taken off. Pieces go to the first lines with
    pieces left; the money goes to those lines first, then to the SKU's other lines.
    """
    left = {line.id: line.amount_fen - line.refunded_fen for line in lines}
    pieces = {line.id: line.quantity - line.refunded_quantity for line in lines}
    plan: list[tuple[OrderItem, int, int]] = []
    for index, item in enumerate(items):
        candidates = [line for line in lines if line.sku == item.sku]
        if not candidates:
            raise InvalidRefund(f"the order has no line with SKU {item.sku}", details={"field": f"items[{index}].sku"})
        pieces_left = sum(pieces[line.id] for line in candidates)
        if item.quantity > pieces_left:
            raise InvalidRefund(
                f"SKU {item.sku}: {item.quantity} refunded but {pieces_left} of "
                f"{sum(line.quantity for line in candidates)} are left to refund",
                details={"field": f"items[{index}].quantity", "left_quantity": pieces_left},
            )
        need = item.amount_fen
        available = sum(left[line.id] for line in candidates)
        if need > available:
            raise InvalidRefund(
                f"SKU {item.sku}: refund of {need} fen is more than the {available} fen left of the line",
                details={"field": f"items[{index}].amount_fen", "left_fen": available},
            )
        count: dict[int, int] = {}
        want = item.quantity
        for line in candidates:
            count[line.id] = min(want, pieces[line.id])
            pieces[line.id] -= count[line.id]
            want -= count[line.id]
        # The money follows the pieces: lines that gave pieces first, then the others of the SKU.
        for line in sorted(candidates, key=lambda line: count[line.id] == 0):
            take = min(need, left[line.id])
            left[line.id] -= take
            need -= take
            if take or count[line.id]:
                plan.append((line, take, count[line.id]))
    return plan


def spread_amount(lines: list[OrderItem], amount_fen: int) -> list[int]:
    """How much of an amount-only refund each line takes, exact to the fen.

    The lines carry the refunded money first, in proportion to what is left of each (largest
    remainder; ties go to the earlier line); only what exceeds every line's remainder is shipping.
    So the lines always sum to the order's `refunded_fen` (up to the lines' total)."""
    left = [line.amount_fen - line.refunded_fen for line in lines]
    total = sum(left)
    amount = min(amount_fen, total)
    if amount <= 0:
        return [0] * len(lines)
    shares = [amount * each // total for each in left]
    remainders = [amount * each % total for each in left]
    extra = amount - sum(shares)
    for index in sorted(range(len(lines)), key=lambda i: (-remainders[i], i))[:extra]:
        shares[index] += 1
    return shares


def _same(refund: Refund, amount_fen: int, items: list[dict[str, Any]] | None) -> bool:
    return refund.amount_fen == amount_fen and (items is None or refund.items == items)


def refund_order(
    session: Session,
    *,
    actor: Actor,
    order_id: int,
    external_id: str,
    amount_fen: int | None,
    items: list[RefundItemIn] | None,
    reason: str | None,
    refunded_at: datetime | None,
    clock: Clock,
) -> Refund:
    """Record a refund of an order; a retry with the same external id and amount returns the first."""
    from siyu.loyalty.purchases import apply_refund

    actor.require(Scope.COMMERCE_WRITE)
    external_id = (external_id or "").strip()
    if not external_id or len(external_id) > 100:
        raise InvalidInput("external_id is required (≤100 characters)", details={"field": "external_id"})
    if reason is not None and len(reason) > 200:
        raise InvalidInput("reason is at most 200 characters", details={"field": "reason"})
    if amount_fen is not None and not 0 <= amount_fen <= MAX_FEN:
        raise InvalidRefund("amount_fen must be a whole number of fen ≥ 0", details={"field": "amount_fen"})
    found = session.scalar(select(Order).where(Order.id == order_id, Order.workspace_id == actor.workspace_id))
    if found is None:
        raise OrderNotFound(f"order {order_id} not found", details={"field": "order_id"})
    # Lock order: the customer, then their member, then the order itself.
    customers.lock_customers(session, actor.workspace_id, [found.customer_id])
    members = flags.lock_members(session, actor.workspace_id, [found.customer_id])
    order = session.scalars(
        select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    ).one()
    items_doc = None if items is None else [i.model_dump() for i in items]
    existing = session.scalar(
        select(Refund).where(
            Refund.workspace_id == actor.workspace_id, Refund.order_id == order.id, Refund.external_id == external_id
        )
    )
    left = order.total_fen - order.refunded_fen
    if items is not None:
        wanted = sum(i.amount_fen for i in items)
        if amount_fen is not None and amount_fen != wanted:
            raise InvalidRefund(
                f"amount_fen ({amount_fen}) differs from the items' sum ({wanted})", details={"field": "amount_fen"}
            )
    else:
        wanted = left if amount_fen is None else amount_fen
    if existing is not None:
        if amount_fen is None and items is None:
            return existing  # "refund everything" sent again: the first answer stands
        if _same(existing, wanted, items_doc):
            return existing
        raise RefundConflict(
            f"refund {external_id} of order {order.id} was recorded with {existing.amount_fen} fen",
            details={"field": "amount_fen", "refund_id": existing.id, "amount_fen": existing.amount_fen},
        )
    if order.status == OrderStatus.REFUNDED:
        raise InvalidRefund(f"order {order.id} is already fully refunded", details={"field": "order_id"})
    if wanted > left:
        raise InvalidRefund(
            f"refund of {wanted} fen is more than the {left} fen left of order {order.id}",
            details={"field": "amount_fen" if items is None else "items", "left_fen": left},
        )
    if wanted == 0 and left > 0:
        raise InvalidRefund("a refund must be more than 0 fen", details={"field": "amount_fen"})
    if refunded_at is not None and refunded_at.tzinfo is None:
        raise InvalidInput("refunded_at needs a time zone", details={"field": "refunded_at"})
    now = clock.now()
    when = as_utc(refunded_at) if refunded_at is not None else now
    if when > now + FUTURE_TOLERANCE:
        raise InvalidRefund("refunded_at is in the future", details={"field": "refunded_at"})
    if when < as_utc(order.paid_at):
        raise InvalidRefund("refunded_at is before the order was paid", details={"field": "refunded_at"})
    lines = stored_items(session, order.id)
    full = wanted == left
    plan = _plan_lines(lines, items) if items is not None else []  # refuses before anything is written
    if full:
        for line in lines:
            line.refunded_fen, line.refunded_quantity = line.amount_fen, line.quantity
    elif items is not None:
        for line, take, pieces in plan:
            line.refunded_fen += take
            line.refunded_quantity += pieces
    else:
        for line, take in zip(lines, spread_amount(lines, wanted), strict=True):
            line.refunded_fen += take
    refund = Refund(
        workspace_id=actor.workspace_id,
        order_id=order.id,
        external_id=external_id,
        amount_fen=wanted,
        items=items_doc,
        reason=reason,
        refunded_at=when,
        created_at=now,
    )
    session.add(refund)
    before = {"status": str(order.status), "refunded_fen": order.refunded_fen}
    order.refunded_fen += wanted
    order.status = OrderStatus.REFUNDED if full else OrderStatus.PARTIALLY_REFUNDED
    session.flush()
    flags.recompute(
        session, workspace_id=actor.workspace_id, customer_ids=[order.customer_id], clock=clock, members=members
    )
    apply_refund(session, order=order, refund=refund, clock=clock)
    order_refunded(session, order, refund, clock)
    if full and order.coupon_code:
        from siyu.commerce.coupons.redeeming import restore_for_refund

        restore_for_refund(session, order=order, clock=clock)
    record(
        session,
        actor,
        action="refund",
        entity_type="order",
        entity_id=order.id,
        before=before,
        after={"status": str(order.status), "refunded_fen": order.refunded_fen, "refund_id": refund.id},
        clock=clock,
    )
    customer_activity(session, actor.workspace_id, order.customer_id)
    return refund
