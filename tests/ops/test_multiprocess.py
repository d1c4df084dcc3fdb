"""Production mode on one machine: 2 `siyu serve`, 3 `siyu worker`, 2 `siyu scheduler` over a
throwaway PostgreSQL database and a Redis database of their own.

Runs only when both SIYU_TEST_DATABASE_URL and SIYU_TEST_BROKER_URL are set.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import select

from siyu.config import Settings
from siyu.db import Database
from siyu.jobs.broker import QUEUE
from siyu.jobs.scheduler import periodic_tasks
from siyu.kit.clock import system_clock
from siyu.migrate import upgrade
from siyu.models import Job, JobStatus
from tests.conftest import PG_URL
from tests.factories import make_token, make_workspace
from tests.ops.procs import (
    BROKER_URL,
    SiyuProcess,
    free_port,
    get_json,
    kill,
    redis_db,
    siyu_env,
    start_api,
    start_scheduler,
    start_worker,
    stop_all,
    throwaway_pg,
    wait_ready,
)
from tests.ops.slowjob import SLOW_KIND

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(not (PG_URL and BROKER_URL), reason="needs SIYU_TEST_DATABASE_URL and SIYU_TEST_BROKER_URL"),
]
STANDBY_S = 1.0
GRACE_S = 1
IMPORTS = ["tests.ops.slowjob"]  # every worker must know the test job kind


@dataclass
class Cluster:
    database: Database
    broker_url: str
    token: str
    data_dir: Path
    apis: list[SiyuProcess]
    workers: list[SiyuProcess]
    schedulers: list[SiyuProcess]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("cluster")
    with throwaway_pg() as db_url, redis_db(13) as broker_url:
        database = Database(Settings(database_url=db_url, data_dir=data_dir, log_json=False))
        # The release step (`siyu migrate`), in this process to save a start-up.
        upgrade(database.engine)
        with database.transaction() as session:
            token = make_token(session, clock=system_clock, workspace=make_workspace(session, clock=system_clock))
        env = siyu_env(
            db_url,
            broker_url,
            data_dir,
            scheduler_standby_s=STANDBY_S,
            scheduler_interval_s=0.5,
            shutdown_grace_s=GRACE_S,
            log_level="INFO",
        )
        try:
            apis = [start_api(free_port(), env) for _ in range(2)]
            workers = [start_worker(env, threads=2, imports=IMPORTS) for _ in range(3)]
            schedulers = [start_scheduler(env) for _ in range(2)]
            for process in [*apis, *workers, *schedulers]:
                wait_ready(process.url + "/readyz", timeout=240, process=process)
            yield Cluster(database, broker_url, token, data_dir, apis, workers, schedulers)
        finally:
            stop_all()
            database.engine.dispose()


def _call(base: str, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def _jobs(cluster: Cluster, *ids: int, kind: str | None = None) -> list[Job]:
    with cluster.database.session() as session:
        query = select(Job).order_by(Job.id)
        query = query.where(Job.id.in_(ids)) if ids else query.where(Job.kind == kind)
        return list(session.scalars(query))


def _wait_done(cluster: Cluster, ids: list[int], timeout: float = 30) -> list[Job]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = _jobs(cluster, *ids)
        if all(j.status in (JobStatus.SUCCEEDED, JobStatus.FAILED) for j in jobs) or time.monotonic() > deadline:
            return jobs
        time.sleep(0.1)


def test_both_apis_serve_and_each_job_runs_exactly_once(cluster: Cluster) -> None:
    first, second = (api.url for api in cluster.apis)
    status, segment = _call(
        first,
        "POST",
        "/api/v1/segments",
        cluster.token,
        {"name": "上海", "definition": {"kind": "field", "field": "city", "op": "eq", "value": "上海"}},
    )
    assert status == 201
    assert _call(second, "GET", f"/api/v1/segments/{segment['id']}", cluster.token)[1]["name"] == "上海"
    # ten refreshes, asked of both APIs in turn
    ids = [
        _call(base, "POST", f"/api/v1/segments/{segment['id']}/refresh", cluster.token)[1]["id"]
        for base in [first, second] * 5
    ]
    jobs = _wait_done(cluster, ids)
    # each ran once, on one of the workers
    assert [(j.kind, j.status, j.attempts) for j in jobs] == [("refresh_segments", JobStatus.SUCCEEDED, 1)] * 10


def _leaders(cluster: Cluster) -> list[bool]:
    return [bool(get_json(s.url + "/healthz")[1]["leader"]) for s in cluster.schedulers if s.is_running()]


def _scheduled_kinds(cluster: Cluster) -> Counter[str]:
    with cluster.database.session() as session:
        return Counter(session.scalars(select(Job.kind).where(Job.created_by == "scheduler")))


def test_one_scheduler_leads_and_the_other_takes_over_after_kill_9(cluster: Cluster) -> None:
    expected = Counter(task.kind for task in periodic_tasks())
    deadline = time.monotonic() + 15
    while _scheduled_kinds(cluster) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(_leaders(cluster)) == [False, True]
    # every periodic task (all due at the first tick) was claimed once
    assert _scheduled_kinds(cluster) == expected
    leader = next(s for s, leads in zip(cluster.schedulers, _leaders(cluster), strict=True) if leads)
    stand_by = next(s for s in cluster.schedulers if s is not leader)
    # when the leader is killed outright
    killed_at = time.monotonic()
    assert kill(leader, signal.SIGKILL) == -signal.SIGKILL
    while not get_json(stand_by.url + "/healthz")[1]["leader"]:
        assert time.monotonic() - killed_at < STANDBY_S + 5, stand_by.output()
        time.sleep(0.05)
    fail_over_s = time.monotonic() - killed_at
    # then the stand-by leads within a stand-by period (plus a tick), and claims nothing twice
    assert fail_over_s < STANDBY_S + 1.5
    time.sleep(1.2)  # two of the new leader's ticks
    assert _scheduled_kinds(cluster) == expected
    print(f"scheduler fail-over after kill -9: {fail_over_s:.2f} s (stand-by period {STANDBY_S} s)")


def test_sigterm_to_a_busy_worker_releases_its_job_to_another(cluster: Cluster) -> None:
    marker = cluster.data_dir / "slow"
    with cluster.database.transaction() as session:
        job = Job(kind=SLOW_KIND, args={"seconds": 3, "marker": str(marker)}, status=JobStatus.QUEUED)
        job.created_at = system_clock.now()
        session.add(job)
        session.flush()
        job_id = job.id
    broker = RedisBroker(url=cluster.broker_url)
    try:
        broker.enqueue(Message(queue_name=QUEUE, actor_name=SLOW_KIND, args=(job_id,), kwargs={}, options={}))
    finally:
        broker.close()
    deadline = time.monotonic() + 15
    while not (started := list(cluster.data_dir.glob("slow.*"))):
        assert time.monotonic() < deadline, "the slow job never started"
        time.sleep(0.05)
    busy_pid = int(started[0].suffix[1:])
    busy = next(w for w in cluster.workers if w.pid == busy_pid)
    # when the worker running it gets SIGTERM mid-job (3 s job, 1 s grace)
    signalled = time.monotonic()
    assert kill(busy, signal.SIGTERM, timeout=GRACE_S + 20) == 0, busy.output()
    exited_s = time.monotonic() - signalled
    # it stopped by itself (exit 0, not SIGKILL), after the grace, having released the job
    [stopped] = [json.loads(line) for line in busy.output(10**6).splitlines() if '"worker stopped"' in line]
    assert (stopped["finished_in_grace"], stopped["released"]) == (False, [job_id])
    assert GRACE_S <= stopped["waited_s"] < GRACE_S + 3, stopped
    # then another worker runs it to the end, once
    [done] = _wait_done(cluster, [job_id])
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 2)
    assert done.result is not None and done.result["pid"] != busy_pid
    print(f"SIGTERM to exit of a busy worker: {exited_s:.2f} s (graceful stop {stopped['waited_s']} s)")
