"""Drill-downs: the customers behind any figure become a static segment, ready to touch.

Each area recomputes the cell on the server from the report's parameters (never trusting a list of
ids from the browser) and hands the customer ids here.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import Customer, Segment
from siyu.segments.service.static import _new_static
from siyu.segments.service.tracking import insert_members, record_size

MAX_NAME = 100
_CHUNK = 5000
"""Ids checked per query: well under SQLite's 32,766 bound parameters."""


def _free_name(session: Session, workspace_id: int, name: str) -> str:
    """`name`, or `name (2)`, `name (3)`… : a drill-down never fails on a taken segment name."""
    base = name.strip()[: MAX_NAME - 6] or "drill-down"
    taken = set(
        session.scalars(select(Segment.name).where(Segment.workspace_id == workspace_id, Segment.name.startswith(base)))
    )
    if base not in taken:
        return base
    n = 2
    while f"{base} ({n})" in taken:
        n += 1
    return f"{base} ({n})"


def segment_from_ids(
    session: Session,
    *,
    actor: Actor,
    name: str,
    customer_ids: Iterable[int],
    source: str,
    clock: Clock,
    description: str | None = None,
) -> Segment:
    """A static segment holding `customer_ids` (merged-away and erased customers are dropped).

    `source` says where it came from ("analytics:funnel:step2"…); `name` gets " (2)" appended
    if taken. Needs `analytics:write` and a role that sees the whole pool.
    """
    actor.require(Scope.ANALYTICS_WRITE)
    if not actor.sees_whole_pool:
        raise PermissionDenied("only roles that see the whole pool can make segments from reports")
    ids = sorted(set(customer_ids))
    live: list[int] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        live.extend(
            session.scalars(
                select(Customer.id).where(
                    Customer.workspace_id == actor.workspace_id,
                    Customer.id.in_(chunk),
                    Customer.merged_into_id.is_(None),
                    # erased people (PIPL) are never listed or touched again
                    Customer.erased_at.is_(None),
                )
            )
        )
    if not name.strip():
        raise InvalidInput("a segment needs a name", details={"field": "name"})
    segment = _new_static(
        session,
        actor,
        name=_free_name(session, actor.workspace_id, name),
        description=description,
        source=source,
        clock=clock,
    )
    now = clock.now()
    insert_members(session, segment, sorted(live), now)
    record_size(session, segment, len(live), now)
    record(
        session,
        actor,
        action="drill_down",
        entity_type="segment",
        entity_id=segment.id,
        after={"source": source, "members": len(live)},
        clock=clock,
    )
    return segment
