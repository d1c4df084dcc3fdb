"""Graceful worker shutdown: running jobs finish within the grace period, or are released to
another worker; never lost, never finished twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dramatiq import Broker
from sqlalchemy import Engine, delete

from siyu.config import Settings
from siyu.db import Database, set_database
from siyu.jobs import service
from siyu.jobs.broker import configure_broker, start_worker
from siyu.jobs.service import enqueue
from siyu.kit.clock import FrozenClock
from siyu.models import Job, JobStatus
from siyu.ops.shutdown import graceful_stop, supervise
from tests.ops import slowjob
from tests.ops.procs import BROKER_URL, redis_db


@pytest.fixture
def committed(engine: Engine, tmp_path: Path) -> Iterator[Database]:
    """Real commits on the run's database; this module's jobs are removed after."""
    database = Database(Settings(database_url="sqlite://", data_dir=tmp_path, log_json=False), engine=engine)
    set_database(database)
    slowjob.calls = 0
    slowjob.hold.clear()
    yield database
    slowjob.hold.set()
    with database.transaction() as session:
        session.execute(delete(Job).where(Job.kind == slowjob.SLOW_KIND))
    set_database(None)


def _enqueue(database: Database, clock: FrozenClock, **args: object) -> int:
    with database.transaction() as session:
        return enqueue(session, kind=slowjob.SLOW_KIND, args=dict(args), workspace_id=None, clock=clock).id


def _job(database: Database, job_id: int) -> Job:
    with database.session(read_only=True) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _wait_status(database: Database, job_id: int, status: JobStatus, timeout: float = 10) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _job(database, job_id)
        if job.status == status:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} is {_job(database, job_id).status}, not {status}")


def test_a_job_that_ends_within_the_grace_period_finishes_once(committed: Database, clock: FrozenClock) -> None:
    broker = configure_broker(None)
    worker = start_worker(broker, threads=2)
    job_id = _enqueue(committed, clock, seconds=0.3)
    _wait_status(committed, job_id, JobStatus.RUNNING)
    # when the worker is asked to stop mid-job
    report = graceful_stop(worker, committed, grace_s=5)
    # then it waited for the job, which finished once, on its first attempt
    assert (report.finished_in_grace, report.released_job_ids) == (True, [])
    assert report.waited_s < 3
    job = _job(committed, job_id)
    assert job.result is not None
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 1, {"pid": job.result["pid"], "call": 1})


def test_a_job_whose_function_returned_is_not_released_while_its_result_is_recorded(
    committed: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    finishing, go_on = threading.Event(), threading.Event()
    record = service._finish

    def slow_record(*args: Any, **kwargs: Any) -> None:
        finishing.set()
        go_on.wait(10)
        record(*args, **kwargs)

    monkeypatch.setattr(service, "_finish", slow_record)
    worker = start_worker(configure_broker(None), threads=1)
    job_id = _enqueue(committed, clock, seconds=0)
    assert finishing.wait(10)
    # when the worker stops after the job's function returned but before its result is committed
    threading.Timer(0.3, go_on.set).start()
    report = graceful_stop(worker, committed, grace_s=0.05)
    # then the job is not released (no other worker redoes it) and its first attempt's result stays
    assert (report.finished_in_grace, report.released_job_ids) == (False, [])
    job = _wait_status(committed, job_id, JobStatus.SUCCEEDED)
    assert job.result is not None
    assert (job.attempts, job.result) == (1, {"pid": job.result["pid"], "call": 1})


@pytest.mark.broker
@pytest.mark.skipif(not BROKER_URL, reason="SIYU_TEST_BROKER_URL not set")
def test_a_job_still_running_after_the_grace_is_released_and_run_by_another_worker(
    committed: Database, clock: FrozenClock
) -> None:
    with redis_db(12) as url:
        broker: Broker = configure_broker(url)
        try:
            first = start_worker(broker, threads=1)
            job_id = _enqueue(committed, clock, wait_for_event=True)
            _wait_status(committed, job_id, JobStatus.RUNNING)
            # when the worker stops while the job is still running past the grace period
            report = graceful_stop(first, committed, grace_s=0.2)
            # then the job is back to queued, its message back on the queue
            assert (report.finished_in_grace, report.released_job_ids) == (False, [job_id])
            assert (_job(committed, job_id).status, _job(committed, job_id).attempts) == (JobStatus.QUEUED, 1)
            # and another worker runs it to the end
            second = start_worker(broker, threads=1)
            try:
                done = _wait_status(committed, job_id, JobStatus.SUCCEEDED)
            finally:
                second.stop()
            assert done.result is not None
            assert (done.attempts, done.result) == (2, {"pid": done.result["pid"], "call": 2})
            # when the released first attempt finally ends, it records nothing
            slowjob.hold.set()
            for thread in first.workers:
                thread.join(timeout=5)
            again = _job(committed, job_id)
            assert (again.status, again.attempts, again.result, again.finished_at) == (
                JobStatus.SUCCEEDED,
                2,
                done.result,
                done.finished_at,
            )
        finally:
            broker.close()
            configure_broker(None)


def test_the_process_supervisor_stops_its_children_when_asked_or_when_one_dies() -> None:
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    # asked to stop: every child gets SIGTERM, exit code 0
    assert supervise([["sleep", "30"], ["sleep", "30"]], grace_s=5, stop=stop) == 0
    assert time.monotonic() - started < 3
    # one child dies on its own: the others are stopped and the code is 1 (restart the set)
    started = time.monotonic()
    assert supervise([["sleep", "30"], ["false"]], grace_s=5, stop=threading.Event()) == 1
    assert time.monotonic() - started < 3
