"""The SQL conditions every analytics area shares: which customers, edges and orders count.

- Customers in scope are not merged into another (their rows moved to the survivor).
- Friend edges count when their customer is in scope.
- Orders count unless fully refunded; their revenue is `total − refunded` (`NET_FEN`). Some pages
  take only private-domain orders (`pool_only=True`: `pool_sequence IS NOT NULL`); which ones do
  is listed in docs/analytics.md.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from siyu.models import Channel, Customer, Order, OrderStatus, Relationship, Segment, Staff, Store, Tag

NET_FEN = Order.total_fen - Order.refunded_fen
"""An order's revenue: what was paid less what was refunded."""

MAX_CHOICES = 500


def merged_ids(workspace_id: int) -> Select[Any]:
    """Customers merged into another: a small list, used as `NOT IN` so that big tables are never
    joined to `customers` only to drop them (PostgreSQL may pick a nested loop on fresh tables)."""
    return select(Customer.id).where(Customer.workspace_id == workspace_id, Customer.merged_into_id.is_not(None))


def live_customer(workspace_id: int) -> list[ColumnElement[bool]]:
    """Conditions on `Customer` for the customers in scope."""
    return [Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None)]


def live_edges(workspace_id: int) -> list[ColumnElement[bool]]:
    """Conditions on `Relationship` joined to `Customer` (the join condition included) for the
    friend edges of customers in scope."""
    return [
        Relationship.workspace_id == workspace_id,
        Customer.id == Relationship.customer_id,
        Customer.merged_into_id.is_(None),
    ]


def counted_orders(workspace_id: int, *, pool_only: bool) -> list[ColumnElement[bool]]:
    """Conditions on `Order`: the workspace's orders that are not fully refunded, of customers in
    scope; only private-domain orders when `pool_only`."""
    conditions = [
        Order.workspace_id == workspace_id,
        Order.status != OrderStatus.REFUNDED,
        Order.customer_id.not_in(merged_ids(workspace_id)),
    ]
    if pool_only:
        conditions.append(Order.pool_sequence.is_not(None))
    return conditions


_CHOICE_MODELS: dict[str, Any] = {
    "channel_id": Channel,
    "store_id": Store,
    "staff_id": Staff,
    "tag_id": Tag,
    "segment_id": Segment,
}


def filter_choices(session: Session, workspace_id: int, key: str, selected: int | None) -> list[tuple[int, str]]:
    """(id, name) for a filter drop-down ("channel_id", "store_id", "staff_id", "tag_id",
    "segment_id"): the first 500 by name, plus the selected one when it falls outside them, so a
    picker never shows "all" while the figures are filtered. Archived segments are not offered."""
    model = _CHOICE_MODELS[key]
    where: list[Any] = [model.workspace_id == workspace_id]
    if model is Segment:
        where.append(Segment.archived_at.is_(None))
    rows = [
        (int(i), str(n))
        for i, n in session.execute(
            select(model.id, model.name).where(*where).order_by(model.name, model.id).limit(MAX_CHOICES)
        )
    ]
    if selected is not None and all(i != selected for i, _ in rows):
        extra = session.execute(select(model.id, model.name).where(*where, model.id == selected)).first()
        if extra is not None:
            rows.append((int(extra[0]), str(extra[1])))
    return rows
