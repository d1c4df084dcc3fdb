"""`siyu bench scan`: the live code scan page under load, against a bare `/healthz` on the same server.

A real server (`uvicorn`, one process, as `siyu serve` runs it) is started on a free loopback
port over the bench database, with a staff live code of 10 routes (round-robin, one capped).
A second process sends keep-alive GETs from 8 threads: first to `/healthz` (the baseline: the
same server, middleware and a database round trip, no routing), then to `/q/{slug}` — each
scan a new visitor, so every request routes, counts a cap and writes a scan row. Reported:
requests/s and p50/p99 of both, the throughput share (goal ≥ 0.5) and, after the run, that
no route took more scans than its cap.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from bench.harness import Reporter, bench_database, new_workspace, result_row, size_rows
from bench.load import hammer_in_subprocess, load_process, percentile
from siyu.auth.permissions import Actor
from siyu.kit.clock import system_clock
from siyu.livecodes.schemas import LiveCodeIn, RouteIn, WelcomeIn
from siyu.livecodes.service import create_live_code
from siyu.models import LiveCodeRoute, LiveCodeScan, Staff
from siyu.workspaces.scope import bind_workspace

REQUESTS = {"tiny": 300, "small": 3_000, "full": 20_000}
CONCURRENCY = 8
WARM_UP = 100
ROUTES = 10
CAPPED_ROUTE_CAP = 50


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _setup(engine: Engine) -> tuple[str, int]:
    workspace_id = new_workspace(engine, "bench-scan")
    with Session(engine) as session, session.begin():
        bind_workspace(session, workspace_id)
        staff = []
        for n in range(ROUTES):
            member = Staff(workspace_id=workspace_id, name=f"导购{n}", created_at=system_clock.now())
            session.add(member)
            staff.append(member)
        session.flush()
        routes = [RouteIn(staff_id=s.id, daily_cap=CAPPED_ROUTE_CAP if i == 0 else None) for i, s in enumerate(staff)]
        code = create_live_code(
            session,
            actor=Actor.system(workspace_id),
            data=LiveCodeIn(name="bench", routes=routes, welcome=WelcomeIn(text="{{ name }}您好")),
            clock=system_clock,
        )
        return code.slug, code.id


def _start_server(url: str, port: int, data_dir: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SIYU_DATABASE_URL": url,
        "SIYU_LOG_LEVEL": "WARNING",
        "SIYU_DATA_DIR": data_dir,
        "SIYU_SECRET_KEY": "bench-secret",
        # One client hammers from loopback: keep the limiter on the path (its cost is measured) but out of reach.
        "SIYU_PUBLIC_REQUESTS_PER_IP": "100000000",
    }
    env.pop("SIYU_BROKER_URL", None)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "siyu.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    log = os.path.join(data_dir, "server.log")  # a file, not a pipe: a full pipe would stall the server
    with open(log, "wb") as sink:
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=sink)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            with open(log, encoding="utf-8", errors="replace") as failed:
                raise RuntimeError(f"bench server exited: {failed.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("bench server did not start within 30 s")


def _rss(pid: int) -> int:
    """Resident set of process `pid` in bytes (0 where /proc is missing)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class ServerMemory:
    """Samples the server process's RSS every 20 ms; `peak_growth` is the peak above the start."""

    def __init__(self, pid: int) -> None:
        self.pid, self.start, self.peak = pid, _rss(pid), _rss(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, _rss(self.pid))

    def __enter__(self) -> ServerMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()

    @property
    def peak_growth_mb(self) -> float:
        return round(max(0, self.peak - self.start) / 2**20, 1)


def run(*, size: str, database_url: str | None, reporter: Reporter) -> dict[str, Any]:
    """Start the server, load the baseline and the scan page, check the caps."""
    size_rows(size)
    requests = REQUESTS[size]
    with bench_database(database_url) as database:
        engine = database.engine
        slug, code_id = _setup(engine)
        url = engine.url.render_as_string(hide_password=False)
        port = _free_port()
        reporter.step(f"server on 127.0.0.1:{port} over {database.label}")
        with tempfile.TemporaryDirectory(prefix="siyu-bench-data-") as data_dir:
            server = _start_server(url, port, data_dir)
            try:
                reporter.step(f"warm-up, then {requests:,} requests × 2 from {CONCURRENCY} connections")
                with load_process() as pool:
                    hammer_in_subprocess(pool, "127.0.0.1", port, "/healthz", WARM_UP, CONCURRENCY)
                    hammer_in_subprocess(pool, "127.0.0.1", port, f"/q/{slug}", WARM_UP, CONCURRENCY)
                    baseline = hammer_in_subprocess(pool, "127.0.0.1", port, "/healthz", requests, CONCURRENCY)
                    with ServerMemory(server.pid) as memory:
                        scans = hammer_in_subprocess(pool, "127.0.0.1", port, f"/q/{slug}", requests, CONCURRENCY)
            finally:
                server.terminate()
                server.wait(timeout=30)
        with Session(engine) as session:
            per_route = dict(
                session.execute(
                    select(LiveCodeScan.route_id, func.count())
                    .where(LiveCodeScan.live_code_id == code_id)
                    .group_by(LiveCodeScan.route_id)
                ).all()
            )
            caps = dict(
                session.execute(
                    select(LiveCodeRoute.id, LiveCodeRoute.daily_cap).where(LiveCodeRoute.live_code_id == code_id)
                ).all()
            )
            recorded = session.scalar(
                select(func.count()).select_from(LiveCodeScan).where(LiveCodeScan.live_code_id == code_id)
            )
    reporter.step("done")
    over_cap = sum(max(0, per_route.get(r, 0) - cap) for r, cap in caps.items() if cap is not None)
    rps, base_rps = len(scans.latencies_ns) / scans.seconds, len(baseline.latencies_ns) / baseline.seconds
    p50, p99 = percentile(scans.latencies_ns, 0.5), percentile(scans.latencies_ns, 0.99)
    base_p50, base_p99 = percentile(baseline.latencies_ns, 0.5), percentile(baseline.latencies_ns, 0.99)
    return {
        "bench": "scan",
        "size": size,
        "database": database.kind,
        "results": [
            result_row(f"{requests} scans", scans.seconds, baseline.seconds, requests),
            result_row("scan p50", p50, base_p50, None),
            result_row("scan p99", p99, base_p99, None),
        ],
        "requests": requests,
        "concurrency": CONCURRENCY,
        "scans_per_s": round(rps, 1),
        "healthz_per_s": round(base_rps, 1),
        "throughput_share": round(rps / base_rps, 3),
        "p50_ms": round(p50 * 1e3, 2),
        "p99_ms": round(p99 * 1e3, 2),
        "healthz_p99_ms": round(base_p99 * 1e3, 2),
        "errors": scans.errors + baseline.errors,
        "scans_recorded": recorded,
        "over_cap": over_cap,
        "server_peak_memory_mb": memory.peak_growth_mb,
    }
