"""`siyu bench dispatch`: a broadcast to a whole brand through planning and the sandbox, against a
raw bulk insert of the same delivery rows.

The brand (customers written with raw bulk inserts: SQLite `executemany`, PostgreSQL `COPY`) is
the audience of a dynamic segment matching everyone (`name is_set`). By customer index `i`:
`i % 100 < 3` unsubscribed from SMS (the sandbox account simulates SMS consent), `3 ≤ i % 100 < 8`
already at the day and week caps of the day the send lands on, `8 ≤ i % 100 < 10` sent the same content two
days ago (deduplication, 7 days). The policy: at most 1 message a day and 3 a week, quiet hours
21:00–09:00 Asia/Shanghai, and the broadcast goes out at 22:00, so every admitted send is held to
09:00 the next morning. 5% holdout.

Figures (each against the same baseline, measured first in the same run on the same database):
- `raw_insert` (the baseline): the same number of delivery rows, with the same columns and
  values as planning writes, put in with Core `executemany` inserts, one transaction per batch of
  `BATCH_SIZE` (the planner's batch), into the same `deliveries` table; deleted afterwards (and
  the table vacuumed on PostgreSQL) before planning runs.
- `planning`: `run_planning` over the whole audience (segment streaming, holdout, consent, the
  policy under row locks, insert-or-ignore of every row) → deliveries/s.
- `sending`: the clock moved past quiet hours, `dispatch(plan=False)` sends every queued row to the
  sandbox (claim, render, outbox row, status) → messages/s.
- `end_to_end`: planning + sending → deliveries/s.
Counters: `overdrafts` (customers over a cap afterwards), `duplicates` (customers with more than
one delivery row or sandbox message) — both must be 0 — and `peak_mb` per phase (RSS growth,
`bench.harness.peak_memory`), which stays flat from `small` to `full` because planning streams
the segment in batches and sending claims `send_batch_size` rows at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, cast
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import Engine, Table, delete, func, insert, select, text

from bench.harness import Reporter, bench_database, new_workspace, peak_memory, result_row, size_rows, timed
from siyu.campaigns.broadcasts import planner
from siyu.campaigns.broadcasts.tasks import dispatch
from siyu.db import Database, get_database, set_database
from siyu.kit.clock import FrozenClock
from siyu.messaging import policy
from siyu.messaging.content import content_hash
from siyu.models import (
    Broadcast,
    ChannelAccount,
    ContentItem,
    Delivery,
    SandboxMessage,
    Segment,
    SegmentVersion,
    TouchPolicy,
)

GOAL_RATIO = 3.0
BATCH_SIZE = planner.BATCH_SIZE
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
"""22:00 in Shanghai: inside quiet hours, so every send is held to the morning."""
MORNING = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
"""09:00 in Shanghai on the 24th, when quiet hours end and the held sends become due."""
TIMEZONE = ZoneInfo("Asia/Shanghai")
"""The bench workspace's time zone (the default of new workspaces)."""
CAPS = {"all": {"day": 1, "week": 3}}
UNSUBSCRIBED_PCT, CAPPED_PCT, DEDUP_PCT, HOLDOUT_PCT = 3, 5, 2, 5
BODY = "{{ name }}，您的会员专享礼已到账"

_CUSTOMER_COLUMNS = "id, workspace_id, name, lifecycle_stage, attributes, field_updated_at, created_at, updated_at"
_CONSENT_COLUMNS = "workspace_id, customer_id, channel, status, source, changed_at"
_STATE_COLUMNS = "workspace_id, customer_id, counts, recent, updated_at"


def _kind(i: int) -> str:
    """What customer index `i` brings to the broadcast (see the module docstring)."""
    slot = i % 100
    if slot < UNSUBSCRIBED_PCT:
        return "unsubscribed"
    if slot < UNSUBSCRIBED_PCT + CAPPED_PCT:
        return "capped"
    if slot < UNSUBSCRIBED_PCT + CAPPED_PCT + DEDUP_PCT:
        return "recent"
    return "open"


def _stamp(kind: str, at: datetime) -> str:
    naive = at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return naive if kind == "sqlite" else naive + "+00"


def _write(engine: Engine, table: str, columns: str, rows: Iterable[tuple[Any, ...]]) -> int:
    """Raw bulk load: SQLite `executemany` in large transactions, PostgreSQL `COPY`."""
    connection = engine.raw_connection()
    written = 0
    try:
        if engine.dialect.name == "postgresql":
            pg = cast("psycopg.Connection[Any]", connection.driver_connection)
            with pg.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    written += 1
            pg.commit()
            return written
        sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * (columns.count(',') + 1))})"
        lite = connection.cursor()
        iterator = iter(rows)
        while batch := list(islice(iterator, 100_000)):
            lite.execute("BEGIN")
            lite.executemany(sql, batch)
            lite.execute("COMMIT")
            written += len(batch)
        lite.close()
    finally:
        connection.close()
    return written


class Brand:
    """The bench's workspace: customers, consents, touch states, policy, account, content, segment."""

    def __init__(self, workspace_id: int, customers: int, first_id: int) -> None:
        self.workspace_id = workspace_id
        self.customers = customers
        self.first_id = first_id
        self.account_id = 0
        self.content_id = 0
        self.content_hash = ""
        self.segment_id = 0
        self.broadcast_id = 0

    def ids(self) -> range:
        return range(self.first_id, self.first_id + self.customers)


def load(
    engine: Engine,
    workspace_id: int,
    customers: int,
    step: Any,
    *,
    now: datetime = NOW,
    quiet: tuple[str, str] = ("21:00", "09:00"),
) -> Brand:
    """Write the brand (see the module docstring) as of `now`, with quiet hours `quiet` (equal
    times: none); returns it with the ids the bench needs. The capped customers are at the day
    and week caps of the day a broadcast sent at `now` lands on."""
    kind = engine.dialect.name
    start, end = policy.parse_hhmm(quiet[0]), policy.parse_hhmm(quiet[1])
    landing = policy.quiet_hours_end(now.astimezone(TIMEZONE), start, end)
    keys = policy.period_keys(landing)
    with engine.begin() as conn:
        first = int(conn.execute(text("SELECT coalesce(max(id), 0) FROM customers")).scalar_one()) + 1
    brand = Brand(workspace_id, customers, first)
    created = _stamp(kind, now - timedelta(days=400))
    step(f"writing {customers:,} customers")
    _write(
        engine,
        "customers",
        _CUSTOMER_COLUMNS,
        ((cid, workspace_id, f"客户{cid:07d}", "active", "{}", "{}", created, created) for cid in brand.ids()),
    )
    if kind == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('customers', 'id'), max(id)) FROM customers"))
    with engine.begin() as conn:
        account = cast(Table, ChannelAccount.__table__)
        brand.account_id = conn.execute(
            insert(account).returning(account.c.id),
            {
                "workspace_id": workspace_id,
                "name": "沙箱短信",
                "kind": "sandbox",
                "settings": {"consent_channel": "sms"},
                "is_active": True,
                "created_at": now,
                "updated_at": now,
            },
        ).scalar_one()
        content = ContentItem(kind="text", body=BODY)
        brand.content_hash = content_hash(content)
        items = cast(Table, ContentItem.__table__)
        brand.content_id = conn.execute(
            insert(items).returning(items.c.id),
            {
                "workspace_id": workspace_id,
                "name": "会员礼",
                "kind": "text",
                "body": BODY,
                "tags": [],
                "is_marketing": True,
                "created_at": now,
                "updated_at": now,
            },
        ).scalar_one()
        conn.execute(
            insert(cast(Table, TouchPolicy.__table__)),
            {
                "workspace_id": workspace_id,
                "caps": CAPS,
                "platform_caps": {},
                "quiet_start": quiet[0],
                "quiet_end": quiet[1],
                "dedup_days": 7,
                "approval_threshold": 10_000_000,
                "moments_marketing_share": 20,
                "updated_at": now,
            },
        )
        definition = {"kind": "field", "field": "name", "op": "is_set"}
        segments = cast(Table, Segment.__table__)
        brand.segment_id = conn.execute(
            insert(segments).returning(segments.c.id),
            {
                "workspace_id": workspace_id,
                "name": "全部客户",
                "kind": "dynamic",
                "definition": definition,
                "version": 1,
                "is_tracked": False,
                "created_by": "bench",
                "created_at": now,
                "updated_at": now,
            },
        ).scalar_one()
        conn.execute(
            insert(cast(Table, SegmentVersion.__table__)),
            {
                "workspace_id": workspace_id,
                "segment_id": brand.segment_id,
                "version": 1,
                "definition": definition,
                "created_by": "bench",
                "created_at": now,
            },
        )
    step("writing consents and touch states")
    at = _stamp(kind, now - timedelta(days=30))
    _write(
        engine,
        "consents",
        _CONSENT_COLUMNS,
        (
            (workspace_id, cid, "sms", "unsubscribed", "bench", at)
            for i, cid in enumerate(brand.ids())
            if _kind(i) == "unsubscribed"
        ),
    )
    capped = json.dumps({keys["day"]: {"all": 1}, keys["week"]: {"all": 3}, keys["month"]: {"all": 3}})
    recent = json.dumps({brand.content_hash: (now - timedelta(days=2)).isoformat()})
    sent_before = json.dumps({"w2026-48": {"all": 1}, "m2026-11": {"all": 1}, "d2026-11-21": {"all": 1}})
    _write(
        engine,
        "touch_states",
        _STATE_COLUMNS,
        (
            (workspace_id, cid, capped if k == "capped" else sent_before, "{}" if k == "capped" else recent, at)
            for i, cid in enumerate(brand.ids())
            if (k := _kind(i)) in ("capped", "recent")
        ),
    )
    with engine.begin() as conn:
        broadcasts = cast(Table, Broadcast.__table__)
        brand.broadcast_id = conn.execute(
            insert(broadcasts).returning(broadcasts.c.id),
            {
                "workspace_id": workspace_id,
                "name": "双十二预热",
                "status": "scheduled",
                "segment_id": brand.segment_id,
                "channel_account_ids": [brand.account_id],
                "variants": [{"key": "A", "content_id": brand.content_id, "weight": 100}],
                "holdout_pct": HOLDOUT_PCT,
                "goal": {},
                "brief": {},
                "priority": 2,
                "quiet_hours": "hold",
                "audience_size": customers,
                "planned_through": 0,
                "created_by": "bench",
                "created_at": now,
                "updated_at": now,
            },
        ).scalar_one()
    _analyze(engine)
    return brand


def _analyze(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def raw_rows(brand: Brand) -> Iterator[dict[str, Any]]:
    """One delivery row per customer with the columns and values planning writes (queued, held)."""
    for cid in brand.ids():
        yield {
            "workspace_id": brand.workspace_id,
            "source": "bench",
            "source_id": brand.broadcast_id,
            "step": "",
            "customer_id": cid,
            "channel_account_id": brand.account_id,
            "channel": "sandbox",
            "address": None,
            "staff_id": None,
            "variant": "A",
            "content_id": brand.content_id,
            "content_hash": brand.content_hash,
            "priority": 2,
            "status": "queued",
            "reason": None,
            "not_before": MORNING,
            "planned_at": NOW,
            "attempts": 0,
        }


def raw_insert(engine: Engine, brand: Brand) -> int:
    """The baseline: Core `executemany` inserts, one transaction per `BATCH_SIZE` rows."""
    table = cast(Table, Delivery.__table__)
    rows = raw_rows(brand)
    written = 0
    while batch := list(islice(rows, BATCH_SIZE)):
        with engine.begin() as conn:
            conn.execute(insert(table), batch)
        written += len(batch)
    return written


def _clear_raw(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(Delivery).where(Delivery.source == "bench"))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE deliveries"))


def check(engine: Engine, brand: Brand) -> dict[str, Any]:
    """Counts by outcome, and the two counters that must be 0."""
    deliveries = cast(Table, Delivery.__table__)
    with engine.connect() as conn:
        statuses = {
            f"{status}:{reason}" if reason else str(status): int(n)
            for status, reason, n in conn.execute(
                select(deliveries.c.status, deliveries.c.reason, func.count())
                .where(deliveries.c.source == "broadcast", deliveries.c.source_id == brand.broadcast_id)
                .group_by(deliveries.c.status, deliveries.c.reason)
            )
        }
        per_customer = (
            select(deliveries.c.customer_id)
            .where(deliveries.c.source == "broadcast")
            .group_by(deliveries.c.customer_id)
            .having(func.count() > 1)
        )
        outbox = cast(Table, SandboxMessage.__table__)
        per_message = select(outbox.c.customer_id).group_by(outbox.c.customer_id).having(func.count() > 1)
        duplicates = int(conn.execute(select(func.count()).select_from(per_customer.subquery())).scalar_one())
        duplicates += int(conn.execute(select(func.count()).select_from(per_message.subquery())).scalar_one())
        # Over a cap: a customer who was already at the day cap of the 24th and still got a
        # message, or anyone with more than one message that day (cap 1). The week cap (3) cannot
        # be reached: nobody starts the week with more than one send.
        sent_ids = select(outbox.c.customer_id)
        overdrafts = 0
        capped = [cid for i, cid in enumerate(brand.ids()) if _kind(i) == "capped"]
        for start in range(0, len(capped), 5_000):
            chunk = capped[start : start + 5_000]
            overdrafts += int(
                conn.execute(
                    select(func.count()).select_from(
                        sent_ids.where(outbox.c.customer_id.in_(chunk)).distinct().subquery()
                    )
                ).scalar_one()
            )
        overdrafts += int(conn.execute(select(func.count()).select_from(per_message.subquery())).scalar_one())
        overdrafts += _state_overdrafts(conn, brand)
        outbox_rows = int(conn.execute(select(func.count()).select_from(outbox)).scalar_one())
    return {"statuses": statuses, "duplicates": duplicates, "overdrafts": overdrafts, "outbox": outbox_rows}


def _state_overdrafts(conn: Any, brand: Brand) -> int:
    """Touch states holding a count above its cap (streamed: a million small JSON documents)."""
    over = 0
    result = conn.execution_options(yield_per=10_000).execute(
        text("SELECT counts FROM touch_states WHERE workspace_id = :ws"), {"ws": brand.workspace_id}
    )
    for (counts,) in result:
        data = json.loads(counts) if isinstance(counts, str) else counts
        for key, scopes in data.items():
            limit = CAPS["all"].get({"d": "day", "w": "week", "m": "month"}.get(key[0], ""), None)
            if limit is not None and int(scopes.get("all", 0)) > limit:
                over += 1
                break
    return over


def run(*, size: str, database_url: str | None, reporter: Reporter) -> dict[str, Any]:
    """Load the brand, time the raw insert, planning and sending, check the outcome."""
    customers = size_rows(size)
    previous = get_database() if _has_database() else None
    with bench_database(database_url) as bench_db:
        engine = bench_db.engine
        workspace_id = new_workspace(engine, "bench-dispatch")
        with timed() as loading:
            brand = load(engine, workspace_id, customers, reporter.step)
        database = Database(engine=engine)
        set_database(database)  # sending reads its settings (retries, public URL) from the process database
        try:
            reporter.step(f"raw insert of {customers:,} delivery rows (baseline) into {bench_db.label}")
            with peak_memory() as raw_memory, timed() as raw:
                raw_insert(engine, brand)
            _clear_raw(engine)
            reporter.step("planning")
            clock = FrozenClock(NOW)
            step_every = max(customers // 10, BATCH_SIZE)
            marks = {"next": step_every}

            def progress(done: int) -> None:
                if done >= marks["next"]:
                    reporter.step(f"  planned {done:,}")
                    marks["next"] += step_every

            with peak_memory() as plan_memory, timed() as planning:
                counts = planner.run_planning(database, workspace_id, brand.broadcast_id, clock, progress=progress)
            reporter.step(f"planned {counts.by_status.total():,} rows in {planning.seconds:.1f}s; sending")
            clock.set(MORNING + timedelta(minutes=5))
            with peak_memory() as send_memory, timed() as sending:
                sent = dispatch(database, clock, plan=False)
            reporter.step(f"sent {sent.sent.sent:,} in {sending.seconds:.1f}s; checking")
            outcome = check(engine, brand)
        finally:
            set_database(previous)
    planned = counts.by_status.total()
    results = [
        result_row("planning", planning.seconds, raw.seconds, planned),
        result_row("sending", sending.seconds, raw.seconds, sent.sent.sent),
        result_row("end_to_end", planning.seconds + sending.seconds, raw.seconds, planned),
    ]
    reporter.step("done")
    return {
        "bench": "dispatch",
        "size": size,
        "database": bench_db.kind,
        "results": results,
        "customers": customers,
        "planned": planned,
        "queued": counts.by_status.get("queued", 0),
        "holdout": counts.by_status.get("holdout", 0),
        "suppressed": dict(sorted(counts.by_reason.items())),
        "sent": sent.sent.sent,
        "outbox": outcome["outbox"],
        "final_statuses": dict(sorted(outcome["statuses"].items())),
        "overdrafts": outcome["overdrafts"],
        "duplicates": outcome["duplicates"],
        "load_seconds": round(loading.seconds, 1),
        "raw_rows_per_s": round(customers / raw.seconds, 1) if raw.seconds > 0 else None,
        "peak_mb": {"raw_insert": raw_memory.peak_mb, "planning": plan_memory.peak_mb, "sending": send_memory.peak_mb},
        "goal_ratio": GOAL_RATIO,
        "over_goal": sum(1 for row in results[:1] if row["ratio"] is not None and row["ratio"] > GOAL_RATIO),
    }


def _has_database() -> bool:
    import siyu.db

    return siyu.db._database is not None
