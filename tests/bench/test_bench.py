"""The benchmarks run at `tiny` and report the agreed JSON shape (they prove they work, not speed)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from bench import run_bench
from bench.data import DUPLICATE_EVERY, rows
from siyu.cli import app
from siyu.kit.errors import InvalidInput
from siyu.kit.phone import normalize_phone
from tests.conftest import PG_URL

DATABASES = [None] + ([PG_URL] if PG_URL else [])
RESULT_KEYS = {"name", "seconds", "baseline_seconds", "ratio", "rows_per_s"}
IMPORT_KEYS = {
    "bench",
    "size",
    "database",
    "results",
    "rows",
    "created",
    "merged",
    "updated",
    "rejected",
    "customers",
    "identities",
    "baseline_rows_per_s",
    "batch_size",
    "file_mb",
    "peak_memory_mb",
    "memory_method",
}
LOOKUP_KEYS = {
    "bench",
    "size",
    "database",
    "results",
    "pool_customers",
    "pool_identities",
    "pool_build_seconds",
    "lookups",
    "p50_us",
    "p99_us",
    "baseline_p50_us",
    "baseline_p99_us",
    "lookups_per_s",
    "baseline_lookups_per_s",
}


def _check_results(result: dict[str, Any], names: list[str]) -> None:
    assert [r["name"] for r in result["results"]] == names
    for row in result["results"]:
        assert set(row) == RESULT_KEYS
        assert row["seconds"] > 0 and row["baseline_seconds"] > 0
        assert math.isclose(row["ratio"], row["seconds"] / row["baseline_seconds"], rel_tol=1e-9)


def check_import(result: dict[str, Any], database: str) -> None:
    assert set(result) == IMPORT_KEYS
    assert (result["bench"], result["size"], result["database"]) == ("import", "tiny", database)
    _check_results(result, ["import"])
    assert result["rows"] == 2_000
    duplicates = 2_000 // DUPLICATE_EVERY
    assert (result["created"], result["merged"], result["updated"], result["rejected"]) == (
        2_000 - duplicates,
        duplicates,
        0,
        0,
    )
    assert result["created"] + result["merged"] == result["rows"]
    # three identities per customer, plus the one new JD id each duplicate brings
    assert (result["customers"], result["identities"]) == (1_900, 1_900 * 3 + duplicates)
    row = result["results"][0]
    assert math.isclose(row["rows_per_s"], 2_000 / row["seconds"], rel_tol=1e-3)
    assert result["peak_memory_mb"] >= 0 and result["memory_method"] in {"rss-sampler", "ru_maxrss-delta"}


def check_lookup(result: dict[str, Any], database: str) -> None:
    assert set(result) == LOOKUP_KEYS
    assert (result["bench"], result["size"], result["database"]) == ("lookup", "tiny", database)
    _check_results(result, ["lookup p50", "lookup p99", "500 lookups"])
    assert (result["pool_customers"], result["pool_identities"], result["lookups"]) == (2_000, 6_000, 500)
    p50, p99, total = result["results"]
    assert p50["rows_per_s"] is None and p99["rows_per_s"] is None
    assert math.isclose(total["rows_per_s"], 500 / total["seconds"], rel_tol=1e-3)
    assert result["p50_us"] == round(p50["seconds"] * 1e6, 1)
    assert result["baseline_p99_us"] == round(p99["baseline_seconds"] * 1e6, 1)
    assert result["p50_us"] <= result["p99_us"]


SCAN_KEYS = {
    "bench",
    "size",
    "database",
    "results",
    "requests",
    "concurrency",
    "scans_per_s",
    "healthz_per_s",
    "throughput_share",
    "p50_ms",
    "p99_ms",
    "healthz_p99_ms",
    "errors",
    "scans_recorded",
    "over_cap",
    "server_peak_memory_mb",
}


def check_scan(result: dict[str, Any], database: str) -> None:
    assert set(result) == SCAN_KEYS
    assert (result["bench"], result["size"], result["database"]) == ("scan", "tiny", database)
    _check_results(result, ["300 scans", "scan p50", "scan p99"])
    # every request answered, every scan recorded (warm-up included), no cap overrun
    assert (result["errors"], result["over_cap"], result["scans_recorded"]) == (0, 0, 400)
    assert math.isclose(result["results"][0]["rows_per_s"], 300 / result["results"][0]["seconds"], rel_tol=1e-3)
    assert result["p50_ms"] <= result["p99_ms"] and result["server_peak_memory_mb"] >= 0


def _kind(url: str | None) -> str:
    return "sqlite" if url is None else "postgresql"


@pytest.mark.parametrize("url", DATABASES, ids=_kind)
def test_import_bench_at_tiny(url: str | None) -> None:
    check_import(run_bench("import", size="tiny", database_url=url), _kind(url))


def _bench_databases() -> set[str]:
    """The PostgreSQL databases benches create (`siyu_bench_…`) that exist now."""
    assert PG_URL
    engine = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return set(
                conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE 'siyu_bench_%'")).scalars()
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", DATABASES, ids=_kind)
def test_lookup_bench_at_tiny(url: str | None) -> None:
    before = _bench_databases() if url else set()
    check_lookup(run_bench("lookup", size="tiny", database_url=url), _kind(url))
    # and on PostgreSQL the bench drops the database it made (other runs' may come and go meanwhile)
    if url:
        assert _bench_databases() <= before


@pytest.mark.parametrize("url", DATABASES, ids=_kind)
def test_scan_bench_at_tiny(url: str | None) -> None:
    check_scan(run_bench("scan", size="tiny", database_url=url), _kind(url))


def test_cli_prints_one_json_object() -> None:
    runner = CliRunner()
    imported = runner.invoke(app, ["bench", "import", "--size", "tiny", "--json"])
    assert imported.exit_code == 0, imported.output
    check_import(json.loads(imported.stdout), "sqlite")
    looked_up = runner.invoke(app, ["bench", "lookup", "--size", "tiny", "--json"])
    assert looked_up.exit_code == 0, looked_up.output
    check_lookup(json.loads(looked_up.stdout), "sqlite")


def test_cli_prints_a_table() -> None:
    result = CliRunner().invoke(app, ["bench", "import", "--size", "tiny"])
    assert result.exit_code == 0, result.output
    assert "siyu bench import" in result.stdout and "ratio" in result.stdout


@pytest.mark.parametrize(
    ("name", "size", "message"), [("export", "tiny", "unknown bench"), ("import", "huge", "unknown bench size")]
)
def test_unknown_name_or_size_is_invalid_input(name: str, size: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        run_bench(name, size=size)
    result = CliRunner().invoke(app, ["bench", name, "--size", size, "--json"])
    assert result.exit_code == 2


def test_generated_rows_are_valid_and_duplicates_repeat_an_earlier_customer() -> None:
    generated = list(rows(400))
    phones = [r.phone for r in generated if r.duplicate_of is None]
    assert len(set(phones)) == len(phones) == 380
    for row in generated:
        assert normalize_phone(row.cells[1]) == row.phone
        if row.duplicate_of is not None:
            original = generated[row.duplicate_of]
            assert original.duplicate_of is None and row.duplicate_of < row.index
            assert (row.phone, row.cells[2]) == (original.phone, original.cells[2])
            assert row.identities == [("jd", row.cells[3])]
