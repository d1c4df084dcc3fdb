"""Applying the delivery policy atomically: lock the customers' touch states, decide, write back.

Callers pass a batch of requests; the states are created if missing (insert-or-ignore), locked
in customer id order (PostgreSQL `FOR UPDATE`; SQLite write transactions are already exclusive,
see `siyu.db`), decided with `policy.decide`, and updated in the caller's transaction. Two
broadcasts and an SOP touching the same customer therefore queue on that customer's row: the
second sees the first one's counts, so no cap is ever exceeded, and a rollback undoes both the
deliveries and the counts together.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.messaging import policy
from siyu.models import TouchPolicy, TouchState, Workspace

_SLICE = 500
DEFAULT_APPROVAL_THRESHOLD = (
    10_000  # customer ids per IN list (SQLite's variable limit is far above; keeps plans simple)
)


def load_config(session: Session, workspace_id: int) -> policy.PolicyConfig:
    """The workspace's policy (its saved `TouchPolicy`, or the defaults) in its time zone."""
    workspace = session.get(Workspace, workspace_id)
    tz = ZoneInfo(workspace.timezone if workspace is not None else "Asia/Shanghai")
    row = session.scalar(select(TouchPolicy).where(TouchPolicy.workspace_id == workspace_id))
    if row is None:
        return policy.PolicyConfig(tz=tz)
    return policy.PolicyConfig(
        tz=tz,
        caps=_int_caps(row.caps),
        platform_caps=_int_caps(row.platform_caps),
        quiet_start=policy.parse_hhmm(row.quiet_start),
        quiet_end=policy.parse_hhmm(row.quiet_end),
        dedup_days=row.dedup_days,
    )


def approval_threshold(session: Session, workspace_id: int) -> int:
    """Audience size above which a broadcast waits for an admin's approval."""
    value = session.scalar(select(TouchPolicy.approval_threshold).where(TouchPolicy.workspace_id == workspace_id))
    return int(value) if value is not None else DEFAULT_APPROVAL_THRESHOLD


def _int_caps(raw: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {scope: {p: int(n) for p, n in periods.items() if p in policy.PERIODS} for scope, periods in raw.items()}


def lock_states(
    session: Session, workspace_id: int, customer_ids: Sequence[int], clock: Clock
) -> dict[int, TouchState]:
    """Create missing touch states and lock all of them, in customer id order (the lock order
    every writer uses, so two batches never deadlock)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    table = cast(Table, TouchState.__table__)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    now = clock.now()
    for start in range(0, len(ids), _SLICE):
        chunk = ids[start : start + _SLICE]
        rows = [
            {"workspace_id": workspace_id, "customer_id": c, "counts": {}, "recent": {}, "updated_at": now}
            for c in chunk
        ]
        session.connection().execute(insert(table).values(rows).on_conflict_do_nothing(index_elements=["customer_id"]))
    states: dict[int, TouchState] = {}
    for start in range(0, len(ids), _SLICE):
        chunk = ids[start : start + _SLICE]
        query = (
            select(TouchState)
            .where(TouchState.workspace_id == workspace_id, TouchState.customer_id.in_(chunk))
            .order_by(TouchState.customer_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        states.update((s.customer_id, s) for s in session.scalars(query))
    return states


def write_states(
    session: Session, workspace_id: int, states: Sequence[tuple[int, dict[str, Any], dict[str, Any]]], now: datetime
) -> None:
    """Write `(customer_id, counts, recent)` back in one executemany (Core: no per-row ORM bookkeeping)."""
    if not states:
        return
    table = cast(Table, TouchState.__table__)
    statement = (
        table.update()
        .where(table.c.workspace_id == workspace_id, table.c.customer_id == bindparam("cid"))
        .values(counts=bindparam("c"), recent=bindparam("r"), updated_at=bindparam("u"))
    )
    params = [{"cid": customer_id, "c": counts, "r": recent, "u": now} for customer_id, counts, recent in states]
    session.connection().execute(statement, params)


def admit(
    session: Session,
    workspace_id: int,
    config: policy.PolicyConfig,
    requests: Sequence[tuple[int, policy.Request]],
    clock: Clock,
) -> list[policy.Decision]:
    """Decide every `(customer_id, request)` under the customers' row locks, in order."""
    states = lock_states(session, workspace_id, [c for c, _ in requests], clock)
    now = clock.now()
    working: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    decisions: list[policy.Decision] = []
    for customer_id, request in requests:
        if customer_id not in working:
            state = states[customer_id]
            counts, recent = _copy(state.counts), dict(state.recent)
            policy.prune(counts, recent, now, config)
            working[customer_id] = (counts, recent)
        counts, recent = working[customer_id]
        decisions.append(policy.decide(config, counts, recent, request))
    changed = [
        (customer_id, counts, recent)
        for customer_id, (counts, recent) in working.items()
        if counts != states[customer_id].counts or recent != states[customer_id].recent
    ]
    write_states(session, workspace_id, changed, now)
    return decisions


def give_back(
    session: Session,
    workspace_id: int,
    config: policy.PolicyConfig,
    customer_id: int,
    channel: str,
    not_before: datetime,
    clock: Clock,
) -> None:
    """Return the cap slots of a delivery that failed or was refused by the provider."""
    state = lock_states(session, workspace_id, [customer_id], clock)[customer_id]
    counts = _copy(state.counts)
    policy.release(config, counts, channel, not_before)
    write_states(session, workspace_id, [(customer_id, counts, dict(state.recent))], clock.now())


def _copy(counts: dict[str, Any]) -> dict[str, Any]:
    return {key: dict(bucket) for key, bucket in counts.items()}
