"""Previewing a definition while it is being built: count, a few members, a count per node, the SQL."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.models import Customer
from siyu.segments import query
from siyu.segments.service.members import visibility_filter
from siyu.segments.validation import refuse_pii_conditions, validate_definition

SAMPLE_SIZE = 10


@dataclass
class Preview:
    count: int
    sample: list[Customer]
    """The newest members (up to `SAMPLE_SIZE`)."""
    node_counts: dict[str, int]
    """Customers matching each group and condition on its own, by path ("$", "$.all[0]", …)."""
    sql: str
    elapsed_ms: float


def preview_definition(
    session: Session,
    *,
    actor: Actor,
    definition: Any,
    clock: Clock,
    segment_id: int | None = None,
    sample_size: int = SAMPLE_SIZE,
) -> Preview:
    """Evaluate a definition without saving it, within the actor's part of the pool."""
    actor.require(Scope.SEGMENTS_READ)
    started = time.perf_counter()
    node = validate_definition(session, workspace_id=actor.workspace_id, raw=definition, segment_id=segment_id)
    refuse_pii_conditions(node, actor)
    now = clock.now()
    extra = visibility_filter(actor)
    members = query.members_select(session, workspace_id=actor.workspace_id, definition=node, now=now, extra=extra)
    query.guard(session)
    # The root's count is the segment's size: one pass over the pool gives it and every node's.
    counts = query.node_counts(session, workspace_id=actor.workspace_id, node=node, now=now, extra=extra)
    count = counts[node.path]
    sample_size = max(0, min(sample_size, 50)) if actor.can(Scope.CUSTOMERS_READ) else 0
    sample_ids = list(query.execute(session, members.order_by(Customer.id.desc()).limit(sample_size)).scalars())
    by_id = {c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_(sample_ids)))}
    sql = query.explain_sql(session, workspace_id=actor.workspace_id, definition=node, now=now)
    return Preview(
        count=count,
        sample=[by_id[i] for i in sample_ids if i in by_id],
        node_counts=counts,
        sql=sql,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
    )
