"""Announcing that something happened to a customer (an event, an order), for the areas that
react to it — tracked segments re-evaluate that customer. The customers area does not import
them: they subscribe here when their tasks module loads."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from siyu.kit.clock import Clock

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
