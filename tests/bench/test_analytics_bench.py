"""`siyu bench analytics` at `tiny`: the agreed JSON shape, and the product agreeing with polars on
every headline figure (the bench itself fails on a mismatch), on fixed data."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench import run_bench
from tests.conftest import PG_URL

DATABASES = [None] + ([PG_URL] if PG_URL else [])
NAMES = ["rfm", "pareto", "funnel_3_steps", "cohorts_12_months", "clv_fit"]
KEYS = {
    "bench",
    "size",
    "database",
    "results",
    "customers",
    "orders",
    "events",
    "relationships",
    "rfm_scored",
    "pareto_top20_share",
    "funnel_steps",
    "clv_customers",
    "clv_params",
    "mismatches",
    "peak_memory_mb",
}


def check(result: dict[str, Any], database: str) -> None:
    assert set(result) == KEYS
    assert (result["bench"], result["size"], result["database"]) == ("analytics", "tiny", database)
    assert [row["name"] for row in result["results"]] == NAMES
    for row in result["results"]:
        assert set(row) == {"name", "seconds", "baseline_seconds", "ratio", "rows_per_s"}
        assert row["seconds"] > 0 and row["baseline_seconds"] > 0
        assert math.isclose(row["ratio"], row["seconds"] / row["baseline_seconds"], rel_tol=1e-9)
    # the segment bench's brand at tiny: a pure function of the seed, the same on both databases
    assert (result["customers"], result["orders"], result["events"], result["relationships"]) == (
        2_000,
        6_000,
        20_000,
        1_544,
    )
    # 1,447 customers ordered in the last 365 days; the top 20 % of them bring 55.9 % of the revenue
    assert (result["rfm_scored"], result["pareto_top20_share"]) == (1_447, 0.559)
    # added in the 90 days → page view within 7 days → order within 30 days of that view
    assert result["funnel_steps"] == [157, 30, 4]
    assert result["clv_customers"] == 1_813
    assert set(result["clv_params"]) == {"r", "alpha", "a", "b", "p", "q", "v"}
    assert all(math.isfinite(v) and v > 0 for v in result["clv_params"].values())
    assert result["mismatches"] == 0
    assert result["peak_memory_mb"] >= 0


@pytest.mark.parametrize("url", DATABASES, ids=lambda url: "sqlite" if url is None else "postgresql")
def test_analytics_bench_at_tiny(url: str | None) -> None:
    check(run_bench("analytics", size="tiny", database_url=url), "sqlite" if url is None else "postgresql")
