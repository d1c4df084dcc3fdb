"""Applying the delivery policy atomically: lock the customers' touch states, decide, write back.

Callers pass a batch of requests; the states are created if missing (insert-or-ignore), locked
in customer id order (PostgreSQL `FOR UPDATE`; SQLite write transactions are already exclusive,
see `siyu.db`), decided with `policy.decide`, and updated in the caller's transaction. Two
broadcasts and an SOP touching the same customer therefore queue on that customer's row: the
second sees the first one's counts, so no cap is ever exceeded, and a rollback undoes both the
deliveries and the counts together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, Table, bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.messaging import policy
from siyu.models import Delivery, TouchPolicy, TouchState, Workspace

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
    # One cached statement with a parameter list, not `.values(list)`, which compiles a new
    # statement with thousands of bind parameters on every call.
    statement = insert(table).on_conflict_do_nothing(index_elements=["customer_id"])
    rows = [
        {"workspace_id": workspace_id, "customer_id": c, "counts": {}, "recent": {}, "updated_at": now} for c in ids
    ]
    session.connection().execute(statement, rows)
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


def _locked_rows(
    session: Session, workspace_id: int, ids: Sequence[int]
) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """`customer_id → (counts, recent)` of the existing states among `ids` (sorted), locked in id
    order. Core rows rather than ORM objects: a batch reads thousands of them."""
    table = cast(Table, TouchState.__table__)
    found: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for start in range(0, len(ids), _SLICE):
        chunk = ids[start : start + _SLICE]
        query = (
            select(table.c.customer_id, table.c.counts, table.c.recent)
            .where(table.c.workspace_id == workspace_id, table.c.customer_id.in_(chunk))
            .order_by(table.c.customer_id)
            .with_for_update()
        )
        found.update((cid, (counts or {}, recent or {})) for cid, counts, recent in session.connection().execute(query))
    return found


def insert_returning(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], conflict: Sequence[str], returning: str
) -> list[Any]:
    """Insert `rows` (all with the same keys), skipping those whose `conflict` key exists, and
    return the `returning` column of the rows inserted.

    PostgreSQL: one `INSERT … SELECT * FROM unnest(…)` with one array parameter per column. Its SQL
    text is the same for any number of rows, so the driver parses it once; SQLAlchemy's multi-row
    VALUES batches ("insertmanyvalues", which RETURNING needs) made psycopg parse a statement with
    tens of thousands of placeholders per batch, which cost more than the insert itself. SQLite:
    the cached statement executed with a parameter list."""
    if not rows:
        return []
    names = list(rows[0])
    if session.get_bind().dialect.name != "postgresql":
        statement = (
            sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict)).returning(table.c[returning])
        )
        return list(session.connection().execute(statement, list(rows)).scalars())
    dialect = session.get_bind().dialect
    arrays: dict[str, list[Any]] = {}
    casts = []
    for i, name in enumerate(names):
        column = table.c[name]
        values = [r[name] for r in rows]
        processor = column.type.bind_processor(dialect)
        if isinstance(column.type, JSON) or isinstance(getattr(column.type, "impl", None), JSON):
            values = [None if v is None else json.dumps(v) for v in values]  # jsonb[] from text
        elif processor is not None:
            values = [processor(v) for v in values]
        arrays[f"a{i}"] = values
        casts.append(f"CAST(:a{i} AS {column.type.compile(dialect=dialect)}[])")
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({', '.join(casts)})"
        f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING RETURNING {returning}"
    )
    return list(session.connection().execute(text(sql), arrays).scalars())


def _insert_new(
    session: Session, workspace_id: int, states: Sequence[tuple[int, dict[str, Any], dict[str, Any]]], now: datetime
) -> set[int]:
    """Insert states of customers who had none, in id order, skipping any another transaction
    created meanwhile; returns the customer ids actually inserted."""
    if not states:
        return set()
    params = [
        {"workspace_id": workspace_id, "customer_id": cid, "counts": counts, "recent": recent, "updated_at": now}
        for cid, counts, recent in states
    ]
    return set(insert_returning(session, cast(Table, TouchState.__table__), params, ["customer_id"], "customer_id"))


def admit(
    session: Session,
    workspace_id: int,
    config: policy.PolicyConfig,
    requests: Sequence[tuple[int, policy.Request]],
    clock: Clock,
) -> list[policy.Decision]:
    """Decide every `(customer_id, request)` under the customers' row locks, in order.

    Existing states are locked (in id order) before deciding. Customers without a state are
    decided from empty counters and their state is inserted with the result, so a new customer
    costs one write instead of insert-empty + lock + update. Another transaction may create one
    of those states between our read and our insert (PostgreSQL; SQLite write transactions are
    exclusive): the insert then skips it (waiting for that transaction to finish first), and
    those customers are decided again from the state it committed, now locked by us.
    """
    if not requests:
        return []
    now = clock.now()
    ids = sorted({c for c, _ in requests})
    existing = _locked_rows(session, workspace_id, ids)
    decisions: list[policy.Decision | None] = [None] * len(requests)

    def decide(customers: set[int], states: dict[int, tuple[dict[str, Any], dict[str, Any]]]) -> dict[int, Any]:
        working: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        for index, (customer_id, request) in enumerate(requests):
            if customer_id not in customers:
                continue
            if customer_id not in working:
                counts, recent = states.get(customer_id, ({}, {}))
                if counts or recent:
                    counts, recent = _copy(counts), dict(recent)
                    policy.prune(counts, recent, now, config)
                else:
                    counts, recent = {}, {}
                working[customer_id] = (counts, recent)
            counts, recent = working[customer_id]
            decisions[index] = policy.decide(config, counts, recent, request)
        return working

    working = decide(set(ids), existing)
    fresh = [(cid, counts, recent) for cid, (counts, recent) in working.items() if cid not in existing]
    inserted = _insert_new(session, workspace_id, sorted(fresh, key=lambda s: s[0]), now)
    raced = {cid for cid, _, _ in fresh if cid not in inserted}
    if raced:
        created = _locked_rows(session, workspace_id, sorted(raced))
        existing.update(created)
        working.update(decide(raced, created))
    changed = [
        (customer_id, counts, recent)
        for customer_id, (counts, recent) in working.items()
        if customer_id in existing and (counts != existing[customer_id][0] or recent != existing[customer_id][1])
    ]
    write_states(session, workspace_id, changed, now)
    return [d for d in decisions if d is not None]


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


def release_slots(session: Session, deliveries: Sequence[Delivery], clock: Clock) -> None:
    """Give back the cap slots of deliveries that will not reach their customers (failed,
    refused, cancelled): the slots each took (`slot_at`; none for transactional sends), once, in
    customer order — the lock order of every touch-state writer, so this never deadlocks a planner."""
    configs: dict[int, policy.PolicyConfig] = {}
    for delivery in sorted(deliveries, key=lambda d: d.customer_id):
        if delivery.channel is None or delivery.slot_at is None:
            continue
        if delivery.workspace_id not in configs:
            configs[delivery.workspace_id] = load_config(session, delivery.workspace_id)
        give_back(
            session,
            delivery.workspace_id,
            configs[delivery.workspace_id],
            delivery.customer_id,
            delivery.channel,
            delivery.slot_at,
            clock,
        )
        delivery.slot_at = None
