"""`siyu bench segments` at `tiny`: the agreed JSON shape, identical counts both ways, fixed data."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from typer.testing import CliRunner

from bench import run_bench
from bench.segments_data import CUSTOMERS, MERGED_EVERY, Brand, Stamp, activity, customer_tags, customers
from siyu.cli import app
from tests.conftest import PG_URL

DATABASES = [None] + ([PG_URL] if PG_URL else [])
NAMES = ["one_tag", "profile_and_tags", "active_30d", "spenders_90d", "complex"]
KEYS = {
    "bench",
    "size",
    "database",
    "results",
    "customers",
    "events",
    "orders",
    "customer_tags",
    "relationships",
    "load_seconds",
    "counts",
    "mismatches",
    "goal_ratio",
    "over_goal",
    "peak_memory_mb",
}
# The data are a pure function of the seed: the same sets on every run and on both databases.
TINY_COUNTS = {"one_tag": 426, "profile_and_tags": 36, "active_30d": 287, "spenders_90d": 212, "complex": 13}


def check(result: dict[str, Any], database: str) -> None:
    assert set(result) == KEYS
    assert (result["bench"], result["size"], result["database"]) == ("segments", "tiny", database)
    assert [row["name"] for row in result["results"]] == NAMES
    for row in result["results"]:
        assert set(row) == {"name", "seconds", "baseline_seconds", "ratio", "rows_per_s"}
        assert row["seconds"] > 0 and row["baseline_seconds"] > 0
        assert math.isclose(row["ratio"], row["seconds"] / row["baseline_seconds"], rel_tol=1e-9)
        assert math.isclose(row["rows_per_s"], 2_000 / row["seconds"], rel_tol=1e-3)  # pool customers / s
    assert (result["customers"], result["events"], result["orders"]) == (2_000, 20_000, 6_000)
    assert (result["customer_tags"], result["relationships"]) == (2_045, 1_544)
    assert result["counts"] == TINY_COUNTS
    assert (result["mismatches"], result["goal_ratio"]) == (0, 1.5)
    assert result["over_goal"] == sum(1 for row in result["results"] if row["ratio"] > 1.5)
    assert result["peak_memory_mb"] >= 0 and result["load_seconds"] >= 0


@pytest.mark.parametrize("url", DATABASES, ids=lambda url: "sqlite" if url is None else "postgresql")
def test_segments_bench_at_tiny(url: str | None) -> None:
    check(run_bench("segments", size="tiny", database_url=url), "sqlite" if url is None else "postgresql")


def test_cli_prints_one_json_object() -> None:
    result = CliRunner().invoke(app, ["bench", "segments", "--size", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    check(json.loads(result.stdout), "sqlite")


def test_generated_data_are_deterministic_and_shaped_as_documented() -> None:
    brand = Brand(
        workspace_id=7, customers=CUSTOMERS["tiny"], first_customer_id=101, tag_ids=list(range(1, 31)), staff_ids=[1, 2]
    )
    stamp = Stamp("sqlite")
    rows = list(customers(brand, stamp))
    assert rows == list(customers(brand, stamp))
    assert [r[0] for r in rows] == list(range(101, 2_101))
    merged = [r for r in rows if r[9] is not None]
    assert len(merged) == 2_000 // MERGED_EVERY and all(r[9] == r[0] - 1 for r in merged)
    assert rows[0][10] == "2025-02-20 03:44:34.725062"  # naive UTC text, as SQLAlchemy stores it on SQLite
    tags = list(customer_tags(brand, stamp))
    assert len({(t[1], t[2]) for t in tags}) == len(tags)  # (customer, tag) is unique
    events, orders = activity(brand)
    assert (sum(events), sum(orders)) == (20_000, 6_000)
    assert Stamp("postgresql").ago(0) == "2026-11-23 02:00:00.000000+00"
