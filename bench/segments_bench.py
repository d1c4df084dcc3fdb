"""`siyu bench segments`: count five reference segments through the product, against hand-written SQL.

A brand is bulk loaded (`bench/segments_data.py`: customers, 30 tags, relationships, 10 events and
3 orders per customer, a saved dynamic segment "lapsed"), then `ANALYZE`d; the bench creates no
index. Each reference segment is counted by `siyu.segments.query.count_definition` (validation,
compilation and the count query) and by a hand-written SQL query for the same set, on the same
session, with the same transaction settings (`guard`: PostgreSQL's statement timeout and
work_mem), at the same fixed `now`. After one warm-up each, the two alternate five times; the
best time of each is reported. The counts must be equal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.orm import Session

from bench import segments_data
from bench.harness import Reporter, bench_database, new_workspace, peak_memory, result_row, size_rows, timed
from bench.segments_data import NOW, Brand
from siyu.db import read_only_engine
from siyu.models.base import UTCDateTime
from siyu.segments.query import count_definition, guard
from siyu.workspaces.scope import bind_workspace

GOAL_RATIO = 1.5
RUNS = 5
LAPSED = {"kind": "order", "measure": "last_paid_at", "op": "more_than_ago", "value": 180}
"""Segment X of the complex reference segment: bought before, but not in the last 180 days."""

_POOL = "c.workspace_id = :ws AND c.merged_into_id IS NULL"
_ACTIVE_30D = (
    "SELECT customer_id FROM customer_events"
    " WHERE workspace_id = :ws AND type = 'page.view' AND occurred_at >= :since_30d AND occurred_at <= :now"
    " GROUP BY customer_id HAVING count(*) >= 3"
)
_SPEND_90D = (
    "SELECT customer_id FROM orders"
    " WHERE workspace_id = :ws AND status <> 'refunded' AND paid_at >= :since_90d AND paid_at <= :now"
    " GROUP BY customer_id HAVING sum(total_fen - refunded_fen) > 50000"
)

_TAGGED = "SELECT customer_id FROM customer_tags WHERE tag_id = :{}"

HAND_WRITTEN = {
    "one_tag": f"""
SELECT count(*) FROM customers c
WHERE {_POOL} AND c.id IN ({_TAGGED.format("tag")})""",
    "profile_and_tags": f"""
SELECT count(*) FROM customers c
WHERE {_POOL} AND c.city IN ('上海', '杭州')
  AND c.id IN ({_TAGGED.format("tag_a")})
  AND c.id IN ({_TAGGED.format("tag_b")})""",
    "active_30d": f"""
SELECT count(*) FROM customers c
WHERE {_POOL} AND c.id IN ({_ACTIVE_30D})""",
    "spenders_90d": f"""
SELECT count(*) FROM customers c
WHERE {_POOL} AND c.id IN ({_SPEND_90D})
  AND EXISTS (SELECT 1 FROM relationships r WHERE r.customer_id = c.id AND r.removed_at IS NULL)""",
    "complex": f"""
SELECT count(*) FROM customers c
WHERE {_POOL}
  AND c.id IN ({_TAGGED.format("tag")})
  AND c.id IN ({_ACTIVE_30D})
  AND c.id IN ({_SPEND_90D})
  AND NOT (
    EXISTS (SELECT 1 FROM orders x WHERE x.customer_id = c.id AND x.status <> 'refunded')
    AND NOT EXISTS (
      SELECT 1 FROM orders x WHERE x.customer_id = c.id AND x.status <> 'refunded' AND x.paid_at >= :since_180d))
  AND (c.gender = 'female' OR EXISTS (
    SELECT 1 FROM relationships r
    WHERE r.customer_id = c.id AND r.removed_at IS NOT NULL AND r.removed_by = 'customer'))""",
}
"""The same sets as `definitions`, written by hand. Each is the fastest on both databases of the
forms tried at `small` (joins from the qualifying rows, `IN` subqueries, correlated `EXISTS`): the
selective conditions as `IN` lists, and the tests that only need checking for the few remaining
candidates — an active relationship, segment X inlined ("lapsed": has a kept order, none in the
last 180 days), removed by the customer — as correlated `EXISTS`. Joining `customers` to the
qualifying rows instead lets SQLite drive the query from `ix_customers_merged_into_id`, 3× slower."""


def definitions(brand: Brand) -> dict[str, dict[str, Any]]:
    """The five reference segments, from one tag to a nested complex tree."""
    popular, tag_a, tag_b = brand.tag_ids[0], brand.tag_ids[1], brand.tag_ids[2]
    active = {"kind": "event", "type": "page.view", "measure": "count", "op": "at_least", "value": 3}
    active["window"] = {"last_days": 30}
    spend = {"kind": "order", "measure": "total_fen", "op": "gt", "value": 50000, "window": {"last_days": 90}}
    return {
        "one_tag": {"kind": "tag", "match": "any", "tag_ids": [popular]},
        "profile_and_tags": {
            "all": [
                {"kind": "field", "field": "city", "op": "in", "value": ["上海", "杭州"]},
                {"kind": "tag", "match": "all", "tag_ids": [tag_a, tag_b]},
            ]
        },
        "active_30d": active,
        "spenders_90d": {"all": [spend, {"kind": "relationship", "status": "active"}]},
        "complex": {
            "all": [
                {"kind": "tag", "match": "any", "tag_ids": [popular]},
                active,
                spend,
                {"not": {"kind": "segment", "segment_id": brand.lapsed_segment_id}},
                {
                    "any": [
                        {"kind": "field", "field": "gender", "op": "eq", "value": "female"},
                        {"kind": "relationship", "status": "removed", "removed_by": "customer"},
                    ]
                },
            ]
        },
    }


def hand_written(name: str) -> TextClause:
    """The hand-written query of a reference segment, its instants typed as UTC columns (so SQLite
    compares them in the stored text form)."""
    sql = HAND_WRITTEN[name]
    instants = sorted({m for m in re.findall(r":(now|since_\w+)", sql)})
    return text(sql).bindparams(*(bindparam(n, type_=UTCDateTime()) for n in instants))


def parameters(brand: Brand) -> dict[str, Any]:
    return {
        "ws": brand.workspace_id,
        "tag": brand.tag_ids[0],
        "tag_a": brand.tag_ids[1],
        "tag_b": brand.tag_ids[2],
        "now": NOW,
        "since_30d": NOW - timedelta(days=30),
        "since_90d": NOW - timedelta(days=90),
        "since_180d": NOW - timedelta(days=180),
    }


@dataclass
class Timing:
    product: float
    baseline: float
    product_count: int
    baseline_count: int


def _once(session: Session, count: Callable[[], int]) -> tuple[float, int]:
    """One count in its own read transaction, with the settings the product's count uses."""
    try:
        with timed() as took:
            result = count()
    finally:
        session.rollback()
    return took.seconds, result


def time_segment(session: Session, brand: Brand, name: str, definition: dict[str, Any]) -> Timing:
    """Warm up both paths, then alternate them `RUNS` times; the best time of each."""
    query, params = hand_written(name), parameters(brand)

    def product() -> int:
        return count_definition(session, workspace_id=brand.workspace_id, definition=definition, now=NOW)

    def baseline() -> int:
        guard(session)  # the statement timeout and work_mem the product's count runs with
        return int(session.execute(query, params).scalar_one())

    _, product_count = _once(session, product)
    _, baseline_count = _once(session, baseline)
    product_times, baseline_times = [], []
    for _ in range(RUNS):
        product_times.append(_once(session, product)[0])
        baseline_times.append(_once(session, baseline)[0])
    return Timing(min(product_times), min(baseline_times), product_count, baseline_count)


def run(*, size: str, database_url: str | None, reporter: Reporter) -> dict[str, Any]:
    """Load the brand, time the five reference segments both ways, return the bench result."""
    size_rows(size)
    with bench_database(database_url) as database:
        engine = database.engine
        workspace_id = new_workspace(engine, "bench-segments")
        brand = segments_data.setup(engine, workspace_id, size)
        reporter.step(f"loading {brand.customers:,} customers and their rows into {database.label}")
        with timed() as load:
            segments_data.load(engine, brand, reporter.step)
        brand.lapsed_segment_id = segments_data.add_segment(engine, brand, "lapsed", LAPSED)
        results, counts, mismatched = [], {}, {}
        with Session(read_only_engine(engine)) as session, peak_memory() as memory:
            bind_workspace(session, workspace_id)
            for name, definition in definitions(brand).items():
                reporter.step(f"counting {name}")
                timing = time_segment(session, brand, name, definition)
                results.append(result_row(name, timing.product, timing.baseline, brand.customers))
                counts[name] = timing.baseline_count
                if timing.product_count != timing.baseline_count:
                    mismatched[name] = {"product": timing.product_count, "hand_written": timing.baseline_count}
                reporter.step(
                    f"{name}: {timing.baseline_count:,} customers, {timing.product * 1000:.1f} ms vs "
                    f"{timing.baseline * 1000:.1f} ms hand-written ({timing.product / timing.baseline:.2f}×)"
                )
    if mismatched:
        raise RuntimeError(f"segment counts differ from the hand-written queries: {mismatched}")
    reporter.step("done")
    return {
        "bench": "segments",
        "size": size,
        "database": database.kind,
        "results": results,
        "customers": brand.customers,
        "events": brand.rows["customer_events"],
        "orders": brand.rows["orders"],
        "customer_tags": brand.rows["customer_tags"],
        "relationships": brand.rows["relationships"],
        "load_seconds": round(load.seconds, 1),
        "counts": counts,
        "mismatches": len(mismatched),
        "goal_ratio": GOAL_RATIO,
        "over_goal": sum(1 for row in results if row["ratio"] is not None and row["ratio"] > GOAL_RATIO),
        "peak_memory_mb": memory.peak_mb,
    }
