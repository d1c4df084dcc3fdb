"""Benchmarks run by `siyu bench NAME`: each figure comes with a baseline measured in the same run.

`run_bench` returns one JSON-ready object: `{"bench", "size", "results": [{"name", "seconds",
"baseline_seconds", "ratio", "rows_per_s"}, …]}` plus the bench's own counters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.harness import Reporter, size_rows
from siyu.kit.errors import InvalidInput

BenchFn = Callable[..., dict[str, Any]]


def _benches() -> dict[str, BenchFn]:
    from bench import (
        analytics_bench,
        cluster_bench,
        dispatch_bench,
        import_bench,
        lookup_bench,
        orders_bench,
        redeem_bench,
        scan_bench,
        segments_bench,
        wecom_bench,
    )

    return {
        "import": import_bench.run,
        "lookup": lookup_bench.run,
        "scan": scan_bench.run,
        "segments": segments_bench.run,
        "dispatch": dispatch_bench.run,
        "orders": orders_bench.run,
        "redeem": redeem_bench.run,
        "analytics": analytics_bench.run,
        "wecom": wecom_bench.run,
        "cluster": cluster_bench.run,
    }


def run_bench(
    name: str, *, size: str = "small", database_url: str | None = None, progress: bool = False
) -> dict[str, Any]:
    """Run the bench `name` ("import", "lookup", "scan", "segments", "dispatch", "orders", "redeem", "analytics",
    "wecom" or "cluster") at `size` ("tiny", "small" or "full") on a throwaway database (a temp SQLite file, or a fresh
    database on the PostgreSQL server of `database_url`); `progress` prints steps on stderr."""
    benches = _benches()
    if name not in benches:
        raise InvalidInput(f"unknown bench {name!r}; use one of {', '.join(benches)}", details={"field": "name"})
    size_rows(size)  # validates the size before any work
    return benches[name](size=size, database_url=database_url, reporter=Reporter(progress))


__all__ = ["run_bench"]
