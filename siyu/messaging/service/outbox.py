"""The sandbox outbox (what the sandbox adapter "sent") and the deliveries of one customer."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.customers.repository import get_visible
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.models import Delivery, SandboxMessage


def list_outbox(session: Session, actor: Actor, *, cursor: str | None = None, limit: int = 50) -> Page[SandboxMessage]:
    """Sandbox messages newest first (by id), a page at a time."""
    actor.require(Scope.TOUCH_READ)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(SandboxMessage).where(SandboxMessage.workspace_id == actor.workspace_id)
    if cursor:
        query = query.where(SandboxMessage.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(SandboxMessage.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    items = rows[:limit]
    return Page(items=items, next_cursor=encode_cursor(items[-1].id) if more and items else None)


def deliveries_of_customer(session: Session, actor: Actor, customer_id: int, limit: int = 50) -> list[Delivery]:
    """A customer's most recent deliveries (every source, suppressed ones too), newest first.

    Part of the customer's history, so it needs customers:read (not touch:read) and the customer
    must be one the actor may see (a store manager's or staff member's part of the pool);
    otherwise it is a 404, as on the customer page itself.
    """
    actor.require(Scope.CUSTOMERS_READ)
    customer = get_visible(session, actor, customer_id)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = (
        select(Delivery)
        .where(Delivery.workspace_id == actor.workspace_id, Delivery.customer_id == customer.id)
        .order_by(Delivery.planned_at.desc(), Delivery.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
