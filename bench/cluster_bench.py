"""`siyu bench cluster`: how throughput grows with processes, on PostgreSQL + Redis.

Needs a PostgreSQL server (`--database postgresql://…`, a throwaway database is made on it) and a
Redis URL in SIYU_BROKER_URL or SIYU_TEST_BROKER_URL (its database number 11 is flushed and used).
Without either it does nothing and says so (`"skipped": reason`, no results): CI runs it in
`make bench-tiny` only where both are configured.

Figures (each against the 1-process run of the same bench, measured first):
- `deliveries_N_workers` (N = 1, 2, 4; tiny: 1, 2): a broadcast to a fresh brand of `DELIVERIES[size]`
  customers (bench.dispatch_bench's brand, no quiet hours) is planned in this process (not timed),
  then 2·N `dispatch_deliveries` jobs are sent through Redis to N `siyu worker --threads 2`
  processes; timed until every queued delivery is sent (sandbox) → deliveries/s. Workers are added
  between runs (1, then 2, then 4 running).
- `events_N_apis` (N = 1, 2, 4; tiny: 1, 2): `EVENTS[size]` timeline events posted as `/api/v1/events/batch`
  requests of 100 from 8 client threads spread over N `siyu serve` processes → events/s. Events
  are written by the API processes (no job), so API processes are what scales them.
Counters: `ratio_per_added_worker` (deliveries/s with 2 and 4 workers over 1 worker, divided by
the added workers), `duplicates` (sandbox messages beyond one per delivery; must be 0) and
`cpu_count` — on a 2-core machine the ceiling is the cores: PostgreSQL, Redis, the workers and
this process share them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from bench import dispatch_bench
from bench.harness import Reporter, bench_database, new_workspace, result_row, size_rows
from siyu.campaigns.broadcasts import planner
from siyu.db import Database
from siyu.kit.clock import system_clock
from siyu.models import Delivery, DeliveryStatus, Job, JobStatus, SandboxMessage

DELIVERIES = {"tiny": 300, "small": 20_000, "full": 100_000}
EVENTS = {"tiny": 200, "small": 50_000, "full": 200_000}
PROCESSES = {"tiny": (1, 2), "small": (1, 2, 4), "full": (1, 2, 4)}
"""Process counts measured: tiny (the CI run) stops at 2 to keep start-ups short."""
REDIS_DB = 11
BATCH = 100
CLIENTS = 8
ROOT = Path(__file__).resolve().parents[1]
DISPATCH_KIND = "dispatch_deliveries"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_url_from_env() -> str | None:
    """SIYU_BROKER_URL, else SIYU_TEST_BROKER_URL, with the bench's own database number."""
    base = os.environ.get("SIYU_BROKER_URL") or os.environ.get("SIYU_TEST_BROKER_URL")
    if not base:
        return None
    from sqlalchemy.engine import make_url

    return make_url(base).set(database=str(REDIS_DB)).render_as_string(hide_password=False)


class _Processes:
    """`siyu worker` / `siyu serve` children of this bench, stopped (SIGTERM) at the end."""

    def __init__(self, database_url: str, broker_url: str, data_dir: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
        self.env.update(
            SIYU_DATABASE_URL=database_url,
            SIYU_BROKER_URL=broker_url,
            SIYU_DATA_DIR=str(data_dir),
            SIYU_SECRET_KEY="bench-secret",
            SIYU_LOG_LEVEL="WARNING",
            PYTHONPYCACHEPREFIX=str(Path(tempfile.gettempdir()) / "siyu-test-pycache"),
        )
        self.data_dir = data_dir
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], port: int) -> str:
        log = (self.data_dir / f"{args[0]}-{len(self.children)}.log").open("wb")
        child = subprocess.Popen(
            [sys.executable, "-m", "siyu", *args], env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.children.append(child)
        return f"http://127.0.0.1:{port}"

    def worker(self) -> str:
        port = _free_port()
        return self.start(["worker", "--threads", "2", "--processes", "1", "--health-port", str(port)], port)

    def api(self) -> str:
        port = _free_port()
        return self.start(["serve", "--host", "127.0.0.1", "--port", str(port), "--no-migrate"], port)

    def wait_ready(self, urls: list[str], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        for url in urls:
            while True:
                try:
                    with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline or any(c.poll() is not None for c in self.children):
                    raise RuntimeError(f"{url} not ready; logs in {self.data_dir}")
                time.sleep(0.1)

    def stop(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _send_dispatch_jobs(database: Database, broker_url: str, count: int) -> None:
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    from siyu.jobs.broker import QUEUE

    with database.transaction() as session:
        jobs = [
            Job(kind=DISPATCH_KIND, args={}, status=JobStatus.QUEUED, created_by="bench", created_at=system_clock.now())
            for _ in range(count)
        ]
        session.add_all(jobs)
        session.flush()
        ids = [job.id for job in jobs]
    broker = RedisBroker(url=broker_url)
    try:
        for job_id in ids:
            broker.enqueue(Message(queue_name=QUEUE, actor_name=DISPATCH_KIND, args=(job_id,), kwargs={}, options={}))
    finally:
        broker.close()


def _pending(engine: Engine, broadcast_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(Delivery)
                .where(
                    Delivery.source == "broadcast",
                    Delivery.source_id == broadcast_id,
                    Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]),
                )
            ).scalar_one()
        )


def _deliveries_run(
    database: Database, broker_url: str, customers: int, workers: int, reporter: Reporter
) -> tuple[float, int, dispatch_bench.Brand]:
    """Seconds from sending the jobs until the broadcast's deliveries are all sent; deliveries sent; the brand."""
    engine = database.engine
    workspace_id = new_workspace(engine, f"bench-cluster-{workers}")
    brand = dispatch_bench.load(
        engine, workspace_id, customers, reporter.step, now=system_clock.now(), quiet=("00:00", "00:00")
    )
    counts = planner.run_planning(database, workspace_id, brand.broadcast_id, system_clock)
    queued = counts.by_status.get("queued", 0)
    reporter.step(f"{workers} worker(s): {queued:,} deliveries queued; sending")
    started = time.perf_counter()
    _send_dispatch_jobs(database, broker_url, 2 * workers)
    deadline = time.monotonic() + 600
    while _pending(engine, brand.broadcast_id) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("deliveries still pending after 600 s")
        time.sleep(0.05)
    return time.perf_counter() - started, queued, brand


def _events_run(urls: list[str], token: str, customers: range, events: int, tag: str) -> float:
    """Seconds to post `events` events in batches of `BATCH` from `CLIENTS` threads over `urls`."""
    import http.client

    batches = [
        json.dumps(
            {
                "events": [
                    {
                        "type": "page.view",
                        "occurred_at": datetime.now(UTC).isoformat(),
                        "idempotency_key": f"{tag}-{start + i}",
                        "customer_id": customers[(start + i) % len(customers)],
                        "properties": {"page": "/bench"},
                    }
                    for i in range(min(BATCH, events - start))
                ]
            }
        ).encode()
        for start in range(0, events, BATCH)
    ]
    failures: list[str] = []

    def client(index: int) -> None:
        host, port = urls[index % len(urls)].removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for body in batches[index::CLIENTS]:
            connection.request("POST", "/api/v1/events/batch", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200 or json.loads(answer).get("created") != len(json.loads(body)["events"]):
                failures.append(f"{response.status} {answer[:200]!r}")
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} event batches failed, first: {failures[0]}")
    return seconds


def _token(database: Database, workspace_id: int) -> str:
    from siyu.auth.permissions import Actor
    from siyu.auth.service import create_token

    with database.transaction() as session:
        actor = Actor.system(workspace_id)
        return create_token(
            session, workspace_id=workspace_id, name="bench", scopes=["events:write"], actor=actor, clock=system_clock
        ).secret


def _skip(size: str, reason: str, reporter: Reporter) -> dict[str, Any]:
    print(f"siyu bench cluster: skipped: {reason}", file=sys.stderr)
    reporter.step("skipped")
    return {"bench": "cluster", "size": size, "skipped": reason, "results": []}


def run(*, size: str, database_url: str | None, reporter: Reporter) -> dict[str, Any]:
    """Deliveries/s by worker count and events/s by API count (see the module docstring)."""
    size_rows(size)
    broker_url = broker_url_from_env()
    if not database_url or not database_url.startswith(("postgresql", "postgres://")):
        return _skip(size, "needs --database postgresql://… (workers share one PostgreSQL database)", reporter)
    if broker_url is None:
        return _skip(size, "needs a Redis URL in SIYU_BROKER_URL or SIYU_TEST_BROKER_URL", reporter)
    import redis

    redis.Redis.from_url(broker_url).flushdb()
    data_dir = Path(tempfile.mkdtemp(prefix="siyu-bench-cluster-"))
    with bench_database(database_url) as bench_db:
        database = Database(engine=bench_db.engine)
        url = bench_db.engine.url.render_as_string(hide_password=False).replace("+psycopg", "", 1)
        processes = _Processes(url, broker_url, data_dir)
        delivery_seconds: dict[int, tuple[float, int, dispatch_bench.Brand]] = {}
        event_seconds: dict[int, float] = {}
        try:
            reporter.step(f"starting {max(PROCESSES[size])} API processes and the first worker")
            apis = [processes.api() for _ in range(max(PROCESSES[size]))]
            workers = [processes.worker()]
            processes.wait_ready([*apis, *workers])
            for n in PROCESSES[size]:
                while len(workers) < n:
                    workers.append(processes.worker())
                processes.wait_ready(workers)
                delivery_seconds[n] = _deliveries_run(database, broker_url, DELIVERIES[size], n, reporter)
                reporter.step(f"{n} worker(s): {delivery_seconds[n][1] / delivery_seconds[n][0]:.0f} deliveries/s")
                brand = delivery_seconds[1][2]  # the events are about the first brand's customers
                token = _token(database, brand.workspace_id)
                event_seconds[n] = _events_run(apis[:n], token, brand.ids(), EVENTS[size], f"n{n}")
                reporter.step(f"{n} API process(es): {EVENTS[size] / event_seconds[n]:.0f} events/s")
        finally:
            processes.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
            import redis as redis_client

            redis_client.Redis.from_url(broker_url).flushdb()
        with bench_db.engine.connect() as conn:
            outbox = int(conn.execute(select(func.count()).select_from(SandboxMessage)).scalar_one())
            sent = int(
                conn.execute(
                    select(func.count()).select_from(Delivery).where(Delivery.status == DeliveryStatus.SENT)
                ).scalar_one()
            )
    base_d, base_e = delivery_seconds[1][0], event_seconds[1]
    results = [
        result_row(f"deliveries_{n}_workers", seconds, base_d, rows)
        for n, (seconds, rows, _b) in delivery_seconds.items()
    ] + [result_row(f"events_{n}_apis", seconds, base_e, EVENTS[size]) for n, seconds in event_seconds.items()]
    rate = {n: rows / seconds for n, (seconds, rows, _b) in delivery_seconds.items()}
    events_rate = {n: EVENTS[size] / seconds for n, seconds in event_seconds.items()}
    return {
        "bench": "cluster",
        "size": size,
        "database": bench_db.kind,
        "results": results,
        "deliveries_per_run": DELIVERIES[size],
        "events_per_run": EVENTS[size],
        "speedup_deliveries": {str(n): round(rate[n] / rate[1], 2) for n in PROCESSES[size]},
        "speedup_events": {str(n): round(events_rate[n] / events_rate[1], 2) for n in PROCESSES[size]},
        "ratio_per_added_worker": {
            str(n): round((rate[n] / rate[1] - 1) / (n - 1), 2) for n in PROCESSES[size] if n > 1
        },
        "sent": sent,
        "duplicates": outbox - sent,
        "cpu_count": os.cpu_count(),
    }
