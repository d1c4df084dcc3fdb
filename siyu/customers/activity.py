"""Announcing that something happened to a customer (an event, an order), for the areas that
react to it — tracked segments re-evaluate that customer. The customers area does not import
them: they subscribe here when their tasks module loads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from siyu.kit.clock import Clock

if TYPE_CHECKING:
    from siyu.models import Order, Refund

Listener = Callable[[Session, int, int], None]
_listeners: list[Listener] = []


def on_customer_activity(listener: Listener) -> Listener:
    """Subscribe `listener(session, workspace_id, customer_id)`; it runs inside the writer's transaction."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def customer_activity(session: Session, workspace_id: int, customer_id: int) -> None:
    """Tell subscribers that a customer's events or orders changed in this transaction."""
    for listener in _listeners:
        listener(session, workspace_id, customer_id)


RelationshipListener = Callable[[Session, int, int, Clock], None]
_relationship_listeners: list[RelationshipListener] = []


def on_relationship_added(listener: RelationshipListener) -> RelationshipListener:
    """Subscribe `listener(session, workspace_id, customer_id, clock)` to a customer adding a staff member
    (joining the pool): commerce renumbers their first order and issues the first-order coupon."""
    if listener not in _relationship_listeners:
        _relationship_listeners.append(listener)
    return listener


def relationship_added(session: Session, workspace_id: int, customer_id: int, clock: Clock) -> None:
    """Tell subscribers, inside the writer's transaction, that a customer added a staff member."""
    for listener in _relationship_listeners:
        listener(session, workspace_id, customer_id, clock)


OrdersListener = Callable[[Session, Sequence["Order"], Clock], None]
_orders_listeners: list[OrdersListener] = []


def on_orders_paid(listener: OrdersListener) -> OrdersListener:
    """Subscribe `listener(session, orders, clock)` to newly ingested paid orders (after loyalty has
    earned their points, in the same transaction): referrals qualify on first orders, KOCs earn
    commission. `orders` may span customers and is never empty."""
    if listener not in _orders_listeners:
        _orders_listeners.append(listener)
    return listener


def orders_paid(session: Session, orders: Sequence[Order], clock: Clock) -> None:
    """Tell subscribers, inside the writer's transaction, that these orders were ingested as paid."""
    if orders:
        for listener in _orders_listeners:
            listener(session, orders, clock)


RefundListener = Callable[[Session, "Order", "Refund", Clock], None]
_refund_listeners: list[RefundListener] = []


def on_order_refunded(listener: RefundListener) -> RefundListener:
    """Subscribe `listener(session, order, refund, clock)` to a refund (full or partial) being recorded,
    after loyalty reversed the order's points: referral rewards and commission are reversed."""
    if listener not in _refund_listeners:
        _refund_listeners.append(listener)
    return listener


def order_refunded(session: Session, order: Order, refund: Refund, clock: Clock) -> None:
    """Tell subscribers, inside the writer's transaction, that `refund` was recorded on `order`."""
    for listener in _refund_listeners:
        listener(session, order, refund, clock)


GroupJoinListener = Callable[[Session, int, int, int, Clock], None]
_group_join_listeners: list[GroupJoinListener] = []


def on_group_joined(listener: GroupJoinListener) -> GroupJoinListener:
    """Subscribe `listener(session, workspace_id, customer_id, group_id, clock)` to a customer joining a
    community group (first join or re-join): the join-group task and group-fission referrals count it."""
    if listener not in _group_join_listeners:
        _group_join_listeners.append(listener)
    return listener


def group_joined(session: Session, workspace_id: int, customer_id: int, group_id: int, clock: Clock) -> None:
    """Tell subscribers, inside the writer's transaction, that a customer joined a community group."""
    for listener in _group_join_listeners:
        listener(session, workspace_id, customer_id, group_id, clock)
