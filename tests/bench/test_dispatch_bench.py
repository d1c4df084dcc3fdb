"""`siyu bench dispatch` at `tiny`: the agreed JSON shape, exact outcome counts, no overdraft, no duplicate."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from typer.testing import CliRunner

from bench import run_bench
from bench.dispatch_bench import _kind
from siyu.cli import app
from tests.conftest import PG_URL

DATABASES = [None] + ([PG_URL] if PG_URL else [])
KEYS = {
    "bench",
    "size",
    "database",
    "results",
    "customers",
    "planned",
    "queued",
    "holdout",
    "suppressed",
    "sent",
    "outbox",
    "final_statuses",
    "overdrafts",
    "duplicates",
    "load_seconds",
    "raw_rows_per_s",
    "peak_mb",
    "goal_ratio",
    "over_goal",
}
# The audience is a pure function of the customer index and of hashes seeded by the broadcast id
# (the first broadcast of a fresh database on both backends), so the outcome is exact.
HOLDOUT, UNSUBSCRIBED, CAPPED, DUPLICATE = 93, 58, 95, 39
SENT = 2_000 - HOLDOUT - UNSUBSCRIBED - CAPPED - DUPLICATE


def check(result: dict[str, Any], database: str) -> None:
    assert set(result) == KEYS
    assert (result["bench"], result["size"], result["database"]) == ("dispatch", "tiny", database)
    assert [row["name"] for row in result["results"]] == ["planning", "sending", "end_to_end"]
    for row in result["results"]:
        assert set(row) == {"name", "seconds", "baseline_seconds", "ratio", "rows_per_s"}
        assert row["seconds"] > 0 and row["baseline_seconds"] > 0
        assert math.isclose(row["ratio"], row["seconds"] / row["baseline_seconds"], rel_tol=1e-9)
    planning, sending, end_to_end = result["results"]
    assert math.isclose(planning["rows_per_s"], 2_000 / planning["seconds"], rel_tol=1e-3)
    assert math.isclose(sending["rows_per_s"], SENT / sending["seconds"], rel_tol=1e-3)
    assert math.isclose(end_to_end["seconds"], planning["seconds"] + sending["seconds"], rel_tol=1e-9)
    assert (result["customers"], result["planned"], result["queued"], result["holdout"]) == (
        2_000,
        2_000,
        SENT,
        HOLDOUT,
    )
    assert result["suppressed"] == {"capped": CAPPED, "duplicate": DUPLICATE, "unsubscribed": UNSUBSCRIBED}
    assert (result["sent"], result["outbox"]) == (SENT, SENT)
    assert result["final_statuses"] == {
        "holdout": HOLDOUT,
        "sent": SENT,
        "suppressed:capped": CAPPED,
        "suppressed:duplicate": DUPLICATE,
        "suppressed:unsubscribed": UNSUBSCRIBED,
    }
    assert (result["overdrafts"], result["duplicates"]) == (0, 0)
    assert set(result["peak_mb"]) == {"raw_insert", "planning", "sending"}
    assert all(value >= 0 for value in result["peak_mb"].values())
    assert result["goal_ratio"] == 3.0 and result["over_goal"] == int(planning["ratio"] > 3.0)
    assert result["raw_rows_per_s"] > 0 and result["load_seconds"] >= 0


@pytest.mark.parametrize("url", DATABASES, ids=lambda url: "sqlite" if url is None else "postgresql")
def test_dispatch_bench_at_tiny(url: str | None) -> None:
    check(run_bench("dispatch", size="tiny", database_url=url), "sqlite" if url is None else "postgresql")


def test_cli_prints_one_json_object() -> None:
    result = CliRunner().invoke(app, ["bench", "dispatch", "--size", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    check(json.loads(result.stdout), "sqlite")


def test_the_audience_mix_is_as_documented() -> None:
    kinds = [_kind(i) for i in range(200)]
    assert [kinds.count(k) for k in ("unsubscribed", "capped", "recent", "open")] == [6, 10, 4, 180]
