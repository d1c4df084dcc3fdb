"""The analytics bench's "no overhead" baseline: the same figures computed by polars straight from
CSV files exported from the bench database (the export itself is not timed).

Each function mirrors one product computation's definition (see docs/analytics-*.md), so the bench
can also check that both sides agree on the headline numbers.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import Engine, text

ZONE = "Asia/Shanghai"
EXPORTS = {
    "customers": "SELECT id, merged_into_id FROM customers WHERE workspace_id = :ws",
    "orders": "SELECT customer_id, paid_at, status, total_fen, refunded_fen FROM orders WHERE workspace_id = :ws",
    "relationships": "SELECT customer_id, added_at FROM relationships WHERE workspace_id = :ws",
    "events": "SELECT customer_id, type, occurred_at FROM customer_events WHERE workspace_id = :ws",
}


def export_csv(engine: Engine, workspace_id: int, folder: Path) -> dict[str, Path]:
    """Each table the analytics read, as a CSV file (timestamps as ISO text in UTC)."""
    paths: dict[str, Path] = {}
    with engine.connect() as conn:
        for name, sql in EXPORTS.items():
            path = folder / f"{name}.csv"
            result = conn.execution_options(stream_results=True, yield_per=50_000).execute(
                text(sql), {"ws": workspace_id}
            )
            with path.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(result.keys())
                for partition in result.partitions():
                    writer.writerows(_plain(row) for row in partition)
            paths[name] = path
    return paths


def _plain(row: Sequence[Any]) -> list[Any]:
    return [_utc_text(v) if isinstance(v, datetime) else v for v in row]


def _utc_text(value: datetime) -> str:
    return value.replace(tzinfo=None).isoformat(" ") if value.tzinfo is None else value.isoformat(" ")


def _local_date(column: str) -> pl.Expr:
    """A UTC timestamp text column as a brand-local date."""
    stamp = pl.col(column).str.slice(0, 19).str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC")
    return stamp.dt.convert_time_zone(ZONE).dt.date()


def _local_time(column: str) -> pl.Expr:
    stamp = pl.col(column).str.slice(0, 19).str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC")
    return stamp


def live_orders(paths: dict[str, Path]) -> pl.LazyFrame:
    """Orders of customers in the pool (not merged away), not fully refunded, with net revenue."""
    customers = pl.scan_csv(paths["customers"]).filter(pl.col("merged_into_id").is_null()).select("id")
    return (
        pl.scan_csv(paths["orders"])
        .filter(pl.col("status") != "refunded")
        .join(customers, left_on="customer_id", right_on="id", how="semi")
        .with_columns(
            (pl.col("total_fen") - pl.col("refunded_fen")).alias("revenue"),
            _local_date("paid_at").alias("day"),
            _local_time("paid_at").alias("at"),
        )
    )


@dataclass
class RfmBaseline:
    customers: int
    revenue: int
    score_counts: dict[str, int]
    """Customers per "R,F,M" score triple (strings like "5,3,1")."""


def quintile(values: pl.Expr, n: pl.Expr) -> pl.Expr:
    """1–5 with ties sharing a score: ceil(5 × rank_min / n)."""
    return (values.rank("min") * 5 / n).ceil().cast(pl.Int32)


def rfm(paths: dict[str, Path], *, today: date, window_days: int) -> RfmBaseline:
    since = today - timedelta(days=window_days - 1)
    per_customer = (
        live_orders(paths)
        .filter(pl.col("day") >= since, pl.col("day") <= today)
        .group_by("customer_id")
        .agg(pl.col("day").max().alias("last"), pl.len().alias("f"), pl.col("revenue").sum().alias("m"))
        .with_columns((pl.lit(today) - pl.col("last")).dt.total_days().alias("r"))
        .with_columns(pl.len().alias("n"))
        .with_columns(
            quintile(-pl.col("r"), pl.col("n")).alias("rs"),
            quintile(pl.col("f"), pl.col("n")).alias("fs"),
            quintile(pl.col("m"), pl.col("n")).alias("ms"),
        )
        .collect()
    )
    counts = per_customer.group_by("rs", "fs", "ms").len()
    return RfmBaseline(
        customers=per_customer.height,
        revenue=int(per_customer["m"].sum() or 0),
        score_counts={f"{r},{f},{m}": int(c) for r, f, m, c in counts.iter_rows()},
    )


def pareto(paths: dict[str, Path], *, today: date, window_days: int | None) -> dict[int, float]:
    """Share of revenue from the top 1/5/10/20 % of customers with revenue (ranked by revenue)."""
    orders = live_orders(paths)
    if window_days is not None:
        orders = orders.filter(pl.col("day") >= today - timedelta(days=window_days - 1), pl.col("day") <= today)
    revenue = (
        orders.group_by("customer_id")
        .agg(pl.col("revenue").sum())
        .filter(pl.col("revenue") > 0)
        .sort("revenue", descending=True)
        .collect()["revenue"]
        .to_numpy()
    )
    total = float(revenue.sum())
    shares: dict[int, float] = {}
    for pct in (1, 5, 10, 20):
        top = max(1, math.ceil(len(revenue) * pct / 100)) if len(revenue) else 0
        shares[pct] = float(revenue[:top].sum()) / total if total else 0.0
    return shares


def funnel(paths: dict[str, Path], *, start: datetime, end: datetime, view_days: int, order_days: int) -> list[int]:
    """added (first add in [start, end)) → page.view within `view_days` → order within `order_days`
    of a page view that qualified: a customer reaches a step when any feasible path reaches it."""
    customers = pl.scan_csv(paths["customers"]).filter(pl.col("merged_into_id").is_null()).select("id")
    start_s, end_s = _naive(start), _naive(end)
    entries = (
        pl.scan_csv(paths["relationships"])
        .join(customers, left_on="customer_id", right_on="id", how="semi")
        .with_columns(_local_time("added_at").alias("t0"))
        .filter(pl.col("t0") >= pl.lit(start_s).dt.replace_time_zone("UTC"))
        .filter(pl.col("t0") < pl.lit(end_s).dt.replace_time_zone("UTC"))
        .group_by("customer_id")
        .agg(pl.col("t0").min())
    )
    views = (
        pl.scan_csv(paths["events"])
        .filter(pl.col("type") == "page.view")
        .with_columns(_local_time("occurred_at").alias("t1"))
        .select("customer_id", "t1")
    )
    feasible_views = entries.join(views, on="customer_id").filter(
        pl.col("t1") >= pl.col("t0"), pl.col("t1") <= pl.col("t0") + pl.duration(days=view_days)
    )
    orders = live_orders(paths).select("customer_id", pl.col("at").alias("t2"))
    step3 = (
        feasible_views.join(orders, on="customer_id")
        .filter(pl.col("t2") >= pl.col("t1"), pl.col("t2") <= pl.col("t1") + pl.duration(days=order_days))
        .select("customer_id")
        .unique()
    )
    step2 = feasible_views.select("customer_id").unique()
    counts = pl.collect_all([entries.select(pl.len()), step2.select(pl.len()), step3.select(pl.len())])
    return [int(frame.item()) for frame in counts]


def _naive(at: datetime) -> datetime:
    return at.replace(tzinfo=None)


def cohorts(paths: dict[str, Path], *, first_month: date, months: int) -> dict[tuple[date, int], int]:
    """Add-month cohorts (first add, brand-local) × months since: customers with an order that month
    on or after their first add's day."""
    customers = pl.scan_csv(paths["customers"]).filter(pl.col("merged_into_id").is_null()).select("id")
    last = _add_months(first_month, months)
    first_add = (
        pl.scan_csv(paths["relationships"])
        .join(customers, left_on="customer_id", right_on="id", how="semi")
        .with_columns(_local_date("added_at").alias("day"))
        .group_by("customer_id")
        .agg(pl.col("day").min().alias("first"))
        .filter(pl.col("first") >= first_month, pl.col("first") < last)
        .with_columns(pl.col("first").dt.truncate("1mo").alias("cohort"))
    )
    order_days = live_orders(paths).select("customer_id", "day").unique()
    returned = (
        first_add.join(order_days, on="customer_id")
        .filter(pl.col("day") >= pl.col("first"))  # a return comes on or after the entry day
        .with_columns(pl.col("day").dt.truncate("1mo").alias("month"))
        .select("customer_id", "cohort", "month")
        .unique()
        .with_columns(
            (
                (pl.col("month").dt.year() - pl.col("cohort").dt.year()) * 12
                + pl.col("month").dt.month()
                - pl.col("cohort").dt.month()
            ).alias("offset")
        )
        .group_by("cohort", "offset")
        .len()
    )
    sizes = first_add.group_by("cohort").len().with_columns(pl.lit(-1).alias("offset"))
    table: dict[tuple[date, int], int] = {}
    for frame in pl.collect_all([sizes.select("cohort", "offset", "len"), returned.select("cohort", "offset", "len")]):
        for cohort, offset, count in frame.iter_rows():
            table[(cohort, int(offset))] = int(count)
    return table


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    return date(day.year + month // 12, month % 12 + 1, 1)


def purchase_days(paths: dict[str, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customer ids, brand-local purchase days and revenue per order in yuan, for the CLV fit."""
    frame = live_orders(paths).select("customer_id", "day", "revenue").collect()
    return (
        frame["customer_id"].to_numpy(),
        frame["day"].to_numpy().astype("datetime64[D]"),
        frame["revenue"].to_numpy().astype(np.float64) / 100,  # yuan, as the product fits
    )


def total_rows(paths: Iterable[Path]) -> int:
    return sum(sum(1 for _ in path.open()) - 1 for path in paths)
