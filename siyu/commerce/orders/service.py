"""Reading orders: the filtered list (API and console) and one order with its lines, refunds and
coupon. Staff and store managers see only the orders of customers they may see."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, exists, or_, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.commerce.errors import OrderNotFound
from siyu.customers.repository import visibility_clause
from siyu.kit.clock import as_utc
from siyu.kit.errors import InvalidInput
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor
from siyu.kit.phone import InvalidPhone, normalize_phone
from siyu.models import Coupon, Customer, Identity, Order, OrderItem, Refund


@dataclass
class OrderFilter:
    """The filters of the order list."""

    customer_id: int | None = None
    platform: str | None = None
    status: str | None = None
    paid_from: datetime | None = None
    """Paid at or after (inclusive)."""
    paid_to: datetime | None = None
    """Paid before (exclusive)."""
    q: str | None = None
    """An external order id, a phone number (any common spelling) or an exact identity value of the buyer."""
    sku: str | None = None


@dataclass
class OrderDetail:
    order: Order
    items: list[OrderItem] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    coupon: Coupon | None = None


def visible_orders(actor: Actor) -> Select[Order]:
    """Orders of the actor's workspace whose customer the actor may see."""
    query = select(Order).where(Order.workspace_id == actor.workspace_id)
    if not actor.sees_whole_pool:
        query = query.where(
            exists().where(Customer.id == Order.customer_id, visibility_clause(actor)),
        )
    return query


def _search(actor: Actor, q: str) -> object:
    q = q.strip()
    values = {q}
    with contextlib.suppress(InvalidPhone):
        values.add(normalize_phone(q))
    buyer = select(Identity.customer_id).where(Identity.workspace_id == actor.workspace_id, Identity.value.in_(values))
    return or_(Order.external_id == q, Order.customer_id.in_(buyer))


def filtered(actor: Actor, flt: OrderFilter) -> Select[Order]:
    query = visible_orders(actor)
    if flt.customer_id is not None:
        query = query.where(Order.customer_id == flt.customer_id)
    if flt.platform:
        query = query.where(Order.platform == flt.platform)
    if flt.status:
        query = query.where(Order.status == flt.status)
    if flt.paid_from is not None:
        query = query.where(Order.paid_at >= as_utc(flt.paid_from))
    if flt.paid_to is not None:
        query = query.where(Order.paid_at < as_utc(flt.paid_to))
    if flt.q:
        query = query.where(_search(actor, flt.q))  # type: ignore[arg-type]
    if flt.sku:
        query = query.where(exists().where(OrderItem.order_id == Order.id, OrderItem.sku == flt.sku))
    return query


def _cursor(cursor: str) -> tuple[datetime, int]:
    value = decode_cursor(cursor)
    try:
        paid, order_id = value
        paid_at = datetime.fromisoformat(paid)
        if paid_at.tzinfo is None or not isinstance(order_id, int) or isinstance(order_id, bool):
            raise ValueError(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("invalid cursor", details={"field": "cursor"}) from exc
    return paid_at, order_id


def list_orders(
    session: Session, *, actor: Actor, flt: OrderFilter, cursor: str | None = None, limit: int = 50
) -> Page[Order]:
    """A page of orders, most recently paid first."""
    actor.require(Scope.COMMERCE_READ)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = filtered(actor, flt)
    if cursor:
        paid_at, order_id = _cursor(cursor)
        query = query.where(or_(Order.paid_at < paid_at, (Order.paid_at == paid_at) & (Order.id < order_id)))
    rows = list(session.scalars(query.order_by(Order.paid_at.desc(), Order.id.desc()).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor([as_utc(last.paid_at).isoformat(), last.id])
    return Page(items=rows[:limit], next_cursor=next_cursor)


def get_order(session: Session, *, actor: Actor, order_id: int) -> Order:
    """An order the actor may see, or `OrderNotFound` (also for other workspaces' and hidden customers')."""
    actor.require(Scope.COMMERCE_READ)
    order = session.scalar(visible_orders(actor).where(Order.id == order_id))
    if order is None:
        raise OrderNotFound(f"order {order_id} not found")
    return order


def order_detail(session: Session, *, actor: Actor, order_id: int) -> OrderDetail:
    """One order with its lines, refunds (oldest first) and the siyu coupon redeemed on it."""
    order = get_order(session, actor=actor, order_id=order_id)
    items = list(session.scalars(select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.id)))
    refunds = list(session.scalars(select(Refund).where(Refund.order_id == order.id).order_by(Refund.id)))
    coupon = session.scalar(
        select(Coupon).where(Coupon.workspace_id == actor.workspace_id, Coupon.order_id == order.id).limit(1)
    )
    return OrderDetail(order=order, items=items, refunds=refunds, coupon=coupon)
