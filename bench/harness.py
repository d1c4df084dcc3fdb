"""What every benchmark shares: sizes, throwaway databases, timing, memory and result rows.

Peak memory is the growth of the process's resident set (RSS) while a block runs, sampled
from `/proc/self/statm` every 5 ms by a background thread (where `/proc` is missing it falls
back to the `resource.getrusage` ``ru_maxrss`` delta, which only sees growth past the
process's earlier peak). RSS rather than `tracemalloc`: tracing every allocation would slow
the importer several-fold and distort the timings it sits next to.
"""

from __future__ import annotations

import math
import os
import resource
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from siyu.db import make_engine
from siyu.kit.clock import system_clock
from siyu.kit.errors import InvalidInput
from siyu.migrate import upgrade
from siyu.workspaces.service import create_workspace

SIZES: dict[str, int] = {"tiny": 2_000, "small": 100_000, "full": 1_000_000}
"""Rows in the import file, customers in the lookup pool."""


def size_rows(size: str) -> int:
    """The row count of a named size; `InvalidInput` for an unknown name."""
    if size not in SIZES:
        raise InvalidInput(f"unknown bench size {size!r}; use one of {', '.join(SIZES)}", details={"field": "size"})
    return SIZES[size]


class Reporter:
    """Step-by-step progress on stderr (silent for `--json`, so stdout stays one object)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.started = time.perf_counter()

    def step(self, message: str) -> None:
        if self.enabled:
            self.console.print(f"[dim]{time.perf_counter() - self.started:8.1f}s[/dim] {message}")


@dataclass
class Timer:
    """Wall-clock seconds of a block (`perf_counter`)."""

    seconds: float = 0.0


@contextmanager
def timed() -> Iterator[Timer]:
    timer = Timer()
    start = time.perf_counter()
    try:
        yield timer
    finally:
        timer.seconds = time.perf_counter() - start


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _maxrss_bytes() -> int:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024


@dataclass
class Memory:
    """Peak RSS growth of a block, in bytes, and how it was measured."""

    peak_growth: int = 0
    method: str = "rss-sampler"
    samples: list[int] = field(default_factory=list)

    @property
    def peak_mb(self) -> float:
        return round(self.peak_growth / 2**20, 1)


@contextmanager
def peak_memory(interval: float = 0.005) -> Iterator[Memory]:
    """Measure how far the resident set grows above its starting size while the block runs."""
    memory = Memory()
    start = _rss_bytes()
    if start is None:
        memory.method = "ru_maxrss-delta"
        before = _maxrss_bytes()
        try:
            yield memory
        finally:
            memory.peak_growth = max(_maxrss_bytes() - before, 0)
        return
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval):
            rss = _rss_bytes() or 0
            if rss > peak[0]:
                peak[0] = rss

    sampler = threading.Thread(target=sample, name="bench-rss", daemon=True)
    sampler.start()
    try:
        yield memory
    finally:
        done.set()
        sampler.join()
        peak[0] = max(peak[0], _rss_bytes() or 0)
        memory.peak_growth = peak[0] - start


def result_row(name: str, seconds: float, baseline_seconds: float, rows: int | None) -> dict[str, Any]:
    """One entry of `results`: the figure, its same-run baseline, their ratio and throughput."""
    return {
        "name": name,
        "seconds": seconds,
        "baseline_seconds": baseline_seconds,
        "ratio": seconds / baseline_seconds if baseline_seconds > 0 else None,
        "rows_per_s": _rate(rows / seconds) if rows and seconds > 0 else None,
    }


def _rate(per_second: float) -> float:
    """Rows per second with at least four significant digits (0.5704, 12.35, 1234.6)."""
    return round(per_second, max(1, 3 - math.floor(math.log10(per_second))))


# --- databases ---------------------------------------------------------------------------------


@dataclass
class BenchDatabase:
    """A migrated database the bench may fill, and a description for the report."""

    engine: Engine
    kind: str  # "sqlite" or "postgresql"
    label: str


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://"))


# Set by the test suite only: its throwaway bench databases do not wait for the disk at each
# commit, because the suite proves that a bench works, not how fast the CI machine's disk flushes.
# Real runs (`siyu bench`) keep PostgreSQL's durable default.
RELAXED_COMMIT = False


@contextmanager
def bench_database(database_url: str | None) -> Iterator[BenchDatabase]:
    """A throwaway migrated database: a temp SQLite file by default, or a fresh database
    `siyu_bench_<random>` created (and dropped afterwards) on the PostgreSQL server named by
    `database_url`. A SQLite URL is used as given (migrated, then filled)."""
    if database_url is None:
        directory = Path(tempfile.mkdtemp(prefix="siyu-bench-"))
        engine = make_engine(f"sqlite:///{directory / 'bench.db'}")
        try:
            upgrade(engine)
            yield BenchDatabase(engine=engine, kind="sqlite", label="sqlite (temp file)")
        finally:
            engine.dispose()
            shutil.rmtree(directory, ignore_errors=True)
        return
    if database_url.startswith("sqlite"):
        engine = make_engine(database_url)
        try:
            upgrade(engine)
            yield BenchDatabase(engine=engine, kind="sqlite", label=f"sqlite ({make_url(database_url).database})")
        finally:
            engine.dispose()
        return
    if not _is_postgres(database_url):
        raise InvalidInput(
            f"unsupported database URL {database_url!r}; use sqlite:///… or postgresql://…",
            details={"field": "database"},
        )
    with _throwaway_postgres(database_url) as (url, name):
        engine = make_engine(url)
        try:
            upgrade(engine)
            yield BenchDatabase(engine=engine, kind="postgresql", label=f"postgresql ({name}, dropped after)")
        finally:
            engine.dispose()


@contextmanager
def _throwaway_postgres(database_url: str) -> Iterator[tuple[str, str]]:
    server = make_url(database_url.replace("postgres://", "postgresql://", 1)).set(drivername="postgresql+psycopg")
    admin = create_engine(server.set(database=server.database or "postgres"), isolation_level="AUTOCOMMIT")
    name = f"siyu_bench_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            if RELAXED_COMMIT:
                conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
        try:
            yield server.set(database=name).render_as_string(hide_password=False), name
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def new_workspace(engine: Engine, slug: str) -> int:
    """Create a workspace for one side of a bench; returns its id."""
    with Session(engine) as session, session.begin():
        return create_workspace(session, slug=slug, name=slug, clock=system_clock).id
