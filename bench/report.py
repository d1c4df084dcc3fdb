"""Human-readable output of a bench result: a rich table of the figures, then the counters."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(result: dict[str, Any], console: Console) -> None:
    """Print `result` (from `run_bench`) as a table of figures against their baselines."""
    title = f"siyu bench {result['bench']} — size {result['size']}"
    if result.get("database"):
        title += f" — {result['database']}"
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("seconds", justify="right")
    table.add_column("baseline s", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("rows/s", justify="right")
    for row in result["results"]:
        ratio = row["ratio"]
        table.add_row(
            row["name"],
            _number(row["seconds"], 6 if row["seconds"] < 0.01 else 3),
            _number(row["baseline_seconds"], 6 if row["baseline_seconds"] < 0.01 else 3),
            "–" if ratio is None else f"{ratio:.2f}×",
            _number(row["rows_per_s"], 0),
        )
    console.print(table)
    counters = Table(show_header=False, box=None, padding=(0, 2))
    for key, value in result.items():
        if key not in {"bench", "size", "database", "results"}:
            counters.add_row(key, _number(value, 1))
    console.print(counters)
