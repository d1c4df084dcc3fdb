"""The fault scenarios of `make soak` (run by soak/run.py, which documents them): kill -9 of a worker,
the scheduler leader and an API plus a Redis restart during a broadcast; a PostgreSQL session kill
(or, with SIYU_SOAK_RESTART_PG=1, a server restart) during a customer import."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from siyu.db import Database
from siyu.kit.clock import system_clock
from siyu.models import Delivery, Job, JobStatus, SandboxMessage
from soak.load import drive, prepare
from tests.ops.procs import SiyuProcess, free_port, get_json, kill, start_worker, wait_ready

STANDBY_S = 2.0
"""The schedulers' stand-by period in the soak (SIYU_SCHEDULER_STANDBY_S)."""
PLAN_KIND, DISPATCH_KIND = "plan_broadcast", "dispatch_deliveries"


class OwnRedis:
    """A redis-server of the soak's own (free port, append-only file in a temp dir, as a Dramatiq broker
    should run in production), so the fault run can restart it without touching the machine's Redis."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: Redis flushes its append-only file and exits
            self.process.wait(timeout=30)

    def restart(self) -> float:
        """Stop and start again on the same port; returns the seconds Redis was down."""
        began = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - began


def _counts(database: Database, broadcast_id: int) -> dict[str, int]:
    with database.session() as session:
        rows = session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.source == "broadcast", Delivery.source_id == broadcast_id)
            .group_by(Delivery.status)
        ).all()
        by_status = {str(status): int(n) for status, n in rows}
        by_status["outbox"] = int(session.scalar(select(func.count()).select_from(SandboxMessage)) or 0)
        by_status["outbox_duplicates"] = int(
            session.scalar(
                select(func.count()).select_from(
                    select(SandboxMessage.customer_id)
                    .group_by(SandboxMessage.customer_id)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
            or 0
        )
    return by_status


def _send(database: Database, broker_url: str, kind: str, args: dict[str, Any], workspace_id: int | None) -> None:
    """A job row and its Redis message, as `siyu.jobs.service.enqueue` makes them in an API process."""
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    from siyu.jobs.broker import QUEUE

    with database.transaction() as session:
        job = Job(kind=kind, args=args, workspace_id=workspace_id, status=JobStatus.QUEUED, created_by="soak")
        job.created_at = system_clock.now()
        session.add(job)
        session.flush()
        job_id = job.id
    broker = RedisBroker(url=broker_url)
    try:
        broker.enqueue(Message(queue_name=QUEUE, actor_name=kind, args=(job_id,), kwargs={}, options={}))
    finally:
        broker.close()


def _leader(roles: dict[str, list[SiyuProcess]]) -> SiyuProcess | None:
    for scheduler in roles["schedulers"]:
        if scheduler.is_running() and get_json(scheduler.url + "/healthz")[1].get("leader"):
            return scheduler
    return None


def fault_run(
    database: Database,
    env: dict[str, str],
    roles: dict[str, list[SiyuProcess]],
    recipients: int,
    own_redis: OwnRedis | None,
) -> dict[str, Any]:
    from bench import dispatch_bench
    from bench.harness import new_workspace

    workspace_id = new_workspace(database.engine, "soak-faults")
    brand = dispatch_bench.load(
        database.engine, workspace_id, recipients, lambda m: None, now=system_clock.now(), quiet=("00:00", "00:00")
    )
    out: dict[str, Any] = {"recipients": recipients}
    # the scheduler's dispatch sweep (every minute, due at its first tick) plans and sends it; nudge it
    # now through a plan job so the run starts at once
    _send(database, env["SIYU_BROKER_URL"], PLAN_KIND, {"broadcast_id": brand.broadcast_id}, workspace_id)
    started = time.monotonic()
    load_fixture = prepare(database, members=2_000, slug="soak-faults-load")
    load_result: dict[str, Any] = {}
    stop_load = threading.Event()

    def background_load() -> None:
        report = drive([api.url for api in roles["apis"]], load_fixture, seconds=60, concurrency=4)
        load_result.update(report.summary())
        stop_load.set()

    loader = threading.Thread(target=background_load)
    loader.start()
    while _counts(database, brand.broadcast_id).get("sent", 0) < recipients // 20:
        if time.monotonic() - started > 600:
            raise RuntimeError("the broadcast did not start sending")
        time.sleep(0.2)
    out["sent_before_faults"] = _counts(database, brand.broadcast_id).get("sent", 0)
    # kill -9: a worker, the scheduler leader, an API
    victim = roles["workers"][0]
    out["worker_exit"] = kill(victim, signal.SIGKILL)
    leader = _leader(roles)
    if leader is not None:
        killed_at = time.monotonic()
        kill(leader, signal.SIGKILL)
        while _leader(roles) is None and time.monotonic() - killed_at < STANDBY_S + 10:
            time.sleep(0.05)
        out["leader_fail_over_s"] = round(time.monotonic() - killed_at, 2)
    out["api_exit"] = kill(roles["apis"][0], signal.SIGKILL)
    if own_redis is not None:
        out["redis_down_s"] = round(own_redis.restart(), 2)
    roles["workers"].append(replacement := start_worker(env, threads=2))
    wait_ready(replacement.url + "/readyz", timeout=240, process=replacement)
    # nudge the survivors: a dispatch job sends what is queued and requeues stale claims
    _send(database, env["SIYU_BROKER_URL"], DISPATCH_KIND, {}, None)
    deadline = time.monotonic() + 900
    while True:
        counts = _counts(database, brand.broadcast_id)
        if counts.get("queued", 0) + counts.get("sending", 0) == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    out["send_seconds"] = round(time.monotonic() - started, 1)
    out["deliveries"] = counts
    loader.join()
    out["load_during_faults"] = load_result
    # stuck jobs: wait out Dramatiq's redelivery of the killed worker's messages (heartbeat 60 s)
    deadline = time.monotonic() + 120
    while True:
        with database.session() as session:
            stuck = int(
                session.scalar(
                    select(func.count()).select_from(Job).where(Job.status.in_([JobStatus.RUNNING, JobStatus.QUEUED]))
                )
                or 0
            )
        if stuck == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    out["stuck_jobs"] = stuck
    out["ok"] = (
        counts.get("queued", 0) + counts.get("sending", 0) == 0
        and counts["outbox_duplicates"] == 0
        and stuck == 0
        and load_result.get("server_errors", 1) == 0
        and out.get("leader_fail_over_s", 0) < STANDBY_S + 1
    )
    return out


def import_fault(database: Database, env: dict[str, str], rows: int) -> dict[str, Any]:
    """A customer import of `rows` rows; once its first batches are in, every session of the database
    but this one is ended server-side (`pg_terminate_backend`: what a PostgreSQL restart does to a
    client). With SIYU_SOAK_RESTART_PG=1 the server is restarted for real instead
    (`pg_ctlcluster 15 main restart`; only where nothing else uses it). The job must end `failed` or
    `succeeded` with its report, and every customer it wrote must be whole (a phone identity each;
    rows land in committed batches only)."""
    import os
    import subprocess

    from sqlalchemy import text

    from bench.harness import new_workspace
    from siyu.auth.permissions import Actor
    from siyu.customers.tasks import actor_to_args
    from siyu.models import Customer, Identity

    workspace_id = new_workspace(database.engine, "soak-import")
    path = Path(env["SIYU_DATA_DIR"]) / "soak-import.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("姓名,手机号\n")
        for n in range(rows):
            handle.write(f"导入{n:06d},+86137{n:08d}\n")
    args = {
        "path": str(path),
        "filename": path.name,
        "actor": actor_to_args(Actor.system(workspace_id)),
        "options": {"encoding": None, "mapping": None, "dry_run": False},
    }
    _send(database, env["SIYU_BROKER_URL"], "import_customers", args, workspace_id)
    with database.session() as session:
        job_id = int(session.scalar(select(func.max(Job.id)).where(Job.kind == "import_customers")) or 0)
    deadline = time.monotonic() + 300
    while True:
        with database.session() as session:
            job = session.get(Job, job_id)
            assert job is not None
            if (job.progress_done or 0) > 0 or job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
                break
        if time.monotonic() > deadline:
            raise RuntimeError("the import did not start")
        time.sleep(0.05)
    out: dict[str, Any] = {"rows": rows, "progress_at_fault": job.progress_done}
    if os.environ.get("SIYU_SOAK_RESTART_PG") == "1":
        out["fault"] = "pg_ctlcluster 15 main restart"
        subprocess.run(["pg_ctlcluster", "15", "main", "restart"], check=True)
    else:
        out["fault"] = "pg_terminate_backend"
        with database.engine.connect() as conn:
            out["sessions_ended"] = int(
                conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
            )
            conn.commit()
    database.engine.dispose()
    deadline = time.monotonic() + 300
    while True:
        with database.session() as session:
            job = session.get(Job, job_id)
            assert job is not None
            status, error, result = job.status, job.error, job.result
            if status in (JobStatus.SUCCEEDED, JobStatus.FAILED) or time.monotonic() > deadline:
                break
        time.sleep(0.5)
    with database.session() as session:
        customers = int(
            session.scalar(select(func.count()).select_from(Customer).where(Customer.workspace_id == workspace_id)) or 0
        )
        without_identity = int(
            session.scalar(
                select(func.count())
                .select_from(Customer)
                .where(
                    Customer.workspace_id == workspace_id,
                    ~select(Identity.id).where(Identity.customer_id == Customer.id).exists(),
                )
            )
            or 0
        )
    out |= {
        "job_status": str(status),
        "job_error": (error or "")[:200] or None,
        "report_created": (result or {}).get("created"),
        "customers": customers,
        "customers_without_identity": without_identity,
    }
    out["ok"] = status in (JobStatus.SUCCEEDED, JobStatus.FAILED) and without_identity == 0
    if status == JobStatus.SUCCEEDED:
        out["ok"] = out["ok"] and customers == rows
    return out
