"""Orders whose buyer matched no customer while the policy is `park`: kept in `parked_orders` and
ingested by the sweep once a customer with one of their identities appears."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.commerce.errors import OrderConflict
from siyu.commerce.orders.resolution import Pair, content_hash
from siyu.commerce.orders.schemas import OrderIn
from siyu.customers import repository as customers
from siyu.kit.clock import Clock
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.models import OrderSource, ParkedOrder

SWEEP_BATCH = 500


def identities_text(pairs: Sequence[Pair]) -> str:
    return "\n".join(f"{type_}:{value}" for type_, value in pairs)


def parse_identities(text: str) -> list[Pair]:
    pairs: list[Pair] = []
    for line in text.splitlines():
        type_, sep, value = line.partition(":")
        if sep and value:
            pairs.append((type_, value))
    return pairs


def park(
    session: Session,
    *,
    workspace_id: int,
    order: OrderIn,
    pairs: Sequence[Pair],
    source: str,
    existing: ParkedOrder | None,
    clock: Clock,
) -> ParkedOrder:
    """Keep the order until its buyer appears. Sending it again while parked changes nothing; with
    other amounts or items it is an `OrderConflict`, as for an ingested order."""
    if existing is not None and existing.resolved_at is None:
        before = OrderIn.model_validate(existing.payload)
        if content_hash(before) != content_hash(order):
            raise OrderConflict(
                f"order {order.platform} {order.external_id} is parked with other amounts or items",
                details={"field": "external_id", "parked_order_id": existing.id},
            )
        return existing
    row = ParkedOrder(
        workspace_id=workspace_id,
        platform=str(order.platform),
        external_id=order.external_id,
        payload=order.model_dump(mode="json"),
        identities=identities_text(pairs),
        reason="no customer has these identities",
        source=str(source),
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    return row


def list_parked(
    session: Session, *, actor: Actor, resolved: bool | None = False, cursor: str | None = None, limit: int = 50
) -> Page[ParkedOrder]:
    """Parked orders, newest first; by default only those still waiting for their customer."""
    actor.require(Scope.COMMERCE_READ)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    if not actor.sees_whole_pool:
        return Page(items=[], next_cursor=None)  # no customer yet: nobody's part of the pool
    query = select(ParkedOrder).where(ParkedOrder.workspace_id == actor.workspace_id)
    if resolved is not None:
        query = query.where(ParkedOrder.resolved_at.is_not(None) if resolved else ParkedOrder.resolved_at.is_(None))
    if cursor:
        query = query.where(ParkedOrder.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(ParkedOrder.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


def sweep(session: Session, *, workspace_id: int, clock: Clock, after_id: int = 0) -> tuple[int, int | None]:
    """Ingest the parked orders (from id `after_id` on, one batch) whose buyer is now a customer.

    Returns (how many were ingested, the last id looked at or None when the end was reached), so a
    caller can go through a large backlog batch by batch, committing between batches.
    """
    from siyu.commerce.orders.ingest import ingest_orders  # ingest imports this module

    rows = list(
        session.scalars(
            select(ParkedOrder)
            .where(
                ParkedOrder.workspace_id == workspace_id,
                ParkedOrder.resolved_at.is_(None),
                ParkedOrder.id > after_id,
            )
            .order_by(ParkedOrder.id)
            .limit(SWEEP_BATCH)
        )
    )
    if not rows:
        return 0, None
    wanted = {pair for row in rows for pair in parse_identities(row.identities)}
    owners = customers.customer_ids_for_identities(session, workspace_id, wanted) if wanted else {}
    ready = [row for row in rows if any(pair in owners for pair in parse_identities(row.identities))]
    actor = Actor.system(workspace_id, label="parked orders")
    ingested = 0
    by_source: dict[str, list[tuple[ParkedOrder, OrderIn]]] = {}
    for row in ready:
        try:
            order = OrderIn.model_validate(row.payload)
        except ValidationError:
            row.reason = "the stored order no longer validates"
            continue
        by_source.setdefault(row.source or OrderSource.API, []).append((row, order))
    for source, items in by_source.items():
        outcomes = ingest_orders(
            session, actor=actor, orders=[o for _, o in items], source=OrderSource(source), clock=clock
        )
        for (row, _), outcome in zip(items, outcomes, strict=True):
            if outcome.order is not None:
                ingested += outcome.status == "created"
            elif outcome.error is not None:
                row.reason = outcome.error.message[:200]
    session.flush()
    last = rows[-1].id if len(rows) == SWEEP_BATCH else None
    return ingested, last
