"""`siyu bench lookup`: resolve a customer by any identity, against a hand-written SQL lookup.

A pool of customers with three identities each (phone, Taobao id, JD id) is bulk inserted.
The product path normalises the value as the API does (`normalize_identity`: E.164 for a
phone typed "13800138000") and calls `repository.find_by_identity` on a session bound to the
workspace, which loads the customer. The baseline runs
`SELECT customer_id FROM identities WHERE workspace_id=? AND type=? AND value=?` on a raw
DBAPI cursor with the value already normalised. Each side resolves its own random sample of
identities (same distribution, after a warm-up), so neither warms the cache for the other.
"""

from __future__ import annotations

import random
import time
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bench import data
from bench.harness import Reporter, bench_database, new_workspace, result_row, size_rows, timed
from bench.raw import raw_insert
from siyu.customers.identities import normalize_identity
from siyu.customers.repository import find_by_identity
from siyu.db import read_only_engine
from siyu.kit.clock import system_clock
from siyu.workspaces.scope import bind_workspace

LOOKUPS = {"tiny": 500, "small": 10_000, "full": 20_000}
WARM_UP = 200
POOL_BATCH = 5_000
_TYPES = ("phone", "taobao", "jd")

Key = tuple[str, str, str]
"""(type, value as typed by a caller, normalised value)."""


def _keys(pool: int, count: int, seed: int) -> list[Key]:
    rng = random.Random(seed)
    keys: list[Key] = []
    for _ in range(count):
        i, type_ = rng.randrange(pool), rng.choice(_TYPES)
        if type_ == "phone":
            keys.append((type_, data.phone_digits(i), "+86" + data.phone_digits(i)))
        elif type_ == "taobao":
            keys.append((type_, data.taobao_id(i), data.taobao_id(i)))
        else:
            keys.append((type_, data.jd_id(i), data.jd_id(i)))
    return keys


def _product(engine: Engine, workspace_id: int, keys: list[Key]) -> list[int]:
    """Nanoseconds per lookup through normalisation and the repository."""
    timings: list[int] = []
    with Session(read_only_engine(engine)) as session:
        bind_workspace(session, workspace_id)
        for type_, typed, _ in keys:
            start = time.perf_counter_ns()
            customer = find_by_identity(session, workspace_id, type_, normalize_identity(type_, typed))
            timings.append(time.perf_counter_ns() - start)
            if customer is None:
                raise RuntimeError(f"lookup missed {type_}={typed!r}")
        session.rollback()
    return timings


def _baseline(engine: Engine, workspace_id: int, keys: list[Key]) -> list[int]:
    """Nanoseconds per lookup as one hand-written query on a raw DBAPI cursor."""
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    sql = f"SELECT customer_id FROM identities WHERE workspace_id = {mark} AND type = {mark} AND value = {mark}"
    timings: list[int] = []
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        for type_, _, value in keys:
            start = time.perf_counter_ns()
            cursor.execute(sql, (workspace_id, type_, value))
            row = cursor.fetchone()
            timings.append(time.perf_counter_ns() - start)
            if row is None:
                raise RuntimeError(f"baseline lookup missed {type_}={value!r}")
        cursor.close()
        connection.rollback()
    finally:
        connection.close()
    return timings


def _percentile(sorted_ns: list[int], fraction: float) -> float:
    """Nearest-rank percentile, in seconds."""
    index = min(len(sorted_ns) - 1, max(0, round(fraction * len(sorted_ns)) - 1))
    return sorted_ns[index] / 1e9


def run(*, size: str, database_url: str | None, reporter: Reporter) -> dict[str, Any]:
    """Build the pool, time both lookup paths, return the bench result."""
    pool = size_rows(size)
    lookups = LOOKUPS[size]
    with bench_database(database_url) as database:
        engine = database.engine
        workspace_id = new_workspace(engine, "bench-lookup")
        reporter.step(f"building a pool of {pool:,} customers × 3 identities in {database.label}")
        with timed() as build:
            counts = raw_insert(
                engine,
                workspace_id=workspace_id,
                rows=data.rows(pool, duplicates=False),
                count=pool,
                batch_size=POOL_BATCH,
                now=system_clock.now(),
            )
        reporter.step(f"{lookups:,} lookups each way")
        _product(engine, workspace_id, _keys(pool, WARM_UP, seed=1))
        _baseline(engine, workspace_id, _keys(pool, WARM_UP, seed=2))
        product = sorted(_product(engine, workspace_id, _keys(pool, lookups, seed=3)))
        baseline = sorted(_baseline(engine, workspace_id, _keys(pool, lookups, seed=4)))
    reporter.step("done")
    total, baseline_total = sum(product) / 1e9, sum(baseline) / 1e9
    p50, p99 = _percentile(product, 0.50), _percentile(product, 0.99)
    base_p50, base_p99 = _percentile(baseline, 0.50), _percentile(baseline, 0.99)
    return {
        "bench": "lookup",
        "size": size,
        "database": database.kind,
        "results": [
            result_row("lookup p50", p50, base_p50, None),
            result_row("lookup p99", p99, base_p99, None),
            result_row(f"{lookups} lookups", total, baseline_total, lookups),
        ],
        "pool_customers": counts.customers,
        "pool_identities": counts.identities,
        "pool_build_seconds": round(build.seconds, 3),
        "lookups": lookups,
        "p50_us": round(p50 * 1e6, 1),
        "p99_us": round(p99 * 1e6, 1),
        "baseline_p50_us": round(base_p50 * 1e6, 1),
        "baseline_p99_us": round(base_p99 * 1e6, 1),
        "lookups_per_s": round(lookups / total, 1),
        "baseline_lookups_per_s": round(lookups / baseline_total, 1),
    }
