"""Background jobs: enqueued after commit, run by a Dramatiq worker (in-process or Redis), resumed after a crash."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from siyu.config import Settings
from siyu.customers.tasks import actor_to_args
from siyu.db import Database, set_database
from siyu.jobs.broker import configure_broker, start_worker
from siyu.jobs.service import enqueue, resume_unfinished
from siyu.kit.clock import FrozenClock
from siyu.migrate import upgrade
from siyu.models import Customer, Job, JobStatus
from tests.factories import actor_for, make_workspace

BROKER_URL = os.environ.get("SIYU_TEST_BROKER_URL")


@pytest.fixture
def file_database(tmp_path: Path) -> Iterator[Database]:
    """A committed SQLite file database that worker threads can share."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'jobs.db'}", data_dir=tmp_path, log_json=False)
    database = Database(settings)
    upgrade(database.engine)
    set_database(database)
    yield database
    set_database(None)
    database.engine.dispose()


def _wait_for(database: Database, job_id: int, timeout: float = 30) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with database.session(read_only=True) as session:
            job = session.get(Job, job_id)
            assert job is not None
            if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
                return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def _import_job(
    database: Database, clock: FrozenClock, csv_path: Path, *, commit: bool = True, dry_run: bool = False
) -> int:
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        job = enqueue(
            session,
            kind="import_customers",
            workspace_id=ws.id,
            clock=clock,
            created_by="test",
            args={
                "path": str(csv_path),
                "actor": actor_to_args(actor_for(ws)),
                "options": {"encoding": None, "mapping": None, "dry_run": dry_run},
            },
        )
        job_id = job.id
        if not commit:
            session.rollback()
    return job_id


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / f"in-{uuid.uuid4().hex[:8]}.csv"  # one file per job: a finished import deletes its upload
    path.write_text("姓名,手机\n甲,13800138000\n乙,123\n", encoding="utf-8")
    return path


def test_in_process_worker_runs_a_job_after_commit(file_database: Database, clock: FrozenClock, tmp_path: Path) -> None:
    broker = configure_broker(None)
    worker = start_worker(broker, threads=1)
    try:
        job_id = _import_job(file_database, clock, _csv(tmp_path))
        job = _wait_for(file_database, job_id)
    finally:
        worker.stop()
    assert job.status == JobStatus.SUCCEEDED
    assert job.result is not None
    assert (job.result["created"], job.result["rejected"], job.attempts) == (1, 1, 1)
    assert job.result["rejections"] == [{"line": 3, "column": "手机", "reason": "invalid phone number"}]
    assert (job.progress_done, job.progress_total) == (2, 2)


def test_a_job_whose_transaction_rolls_back_is_never_sent(
    file_database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    broker = configure_broker(None)
    _import_job(file_database, clock, _csv(tmp_path), commit=False)
    assert broker.queues.get("siyu") is None or broker.queues["siyu"].qsize() == 0  # type: ignore[attr-defined]
    with file_database.session() as session:
        assert session.scalars(select(Job)).all() == []


def test_unfinished_jobs_resume_after_restart(file_database: Database, clock: FrozenClock, tmp_path: Path) -> None:
    # given a job that was running when the process died (its message is lost with the stub broker)
    configure_broker(None)
    job_id = _import_job(file_database, clock, _csv(tmp_path))
    with file_database.transaction() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.status = JobStatus.RUNNING
    broker = configure_broker(None)  # a fresh process: empty queues
    worker = start_worker(broker, threads=1)
    try:
        with file_database.transaction() as session:
            assert resume_unfinished(session) == 1
        job = _wait_for(file_database, job_id)
    finally:
        worker.stop()
    assert job.status == JobStatus.SUCCEEDED
    with file_database.session() as session:
        assert len(session.scalars(select(Customer)).all()) == 1


def test_failed_job_records_the_error(file_database: Database, clock: FrozenClock, tmp_path: Path) -> None:
    from siyu.jobs.service import run_job

    configure_broker(None)
    job_id = _import_job(file_database, clock, tmp_path / "missing.csv")
    run_job(job_id)
    with file_database.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.status, job.error) == (JobStatus.FAILED, "the file is empty")
    run_job(job_id)  # a second delivery of a finished job changes nothing
    with file_database.session() as session:
        assert session.get(Job, job_id).attempts == 1  # type: ignore[union-attr]


@pytest.mark.broker
@pytest.mark.skipif(not BROKER_URL, reason="SIYU_TEST_BROKER_URL not set")
def test_redis_broker_moves_jobs_to_a_worker(file_database: Database, clock: FrozenClock, tmp_path: Path) -> None:
    assert BROKER_URL
    broker = configure_broker(BROKER_URL)
    broker.flush_all()
    worker = start_worker(broker, threads=2)
    try:
        job_ids = [_import_job(file_database, clock, _csv(tmp_path)) for _ in range(3)]
        jobs = [_wait_for(file_database, job_id) for job_id in job_ids]
    finally:
        worker.stop()
        broker.flush_all()
        broker.close()
        configure_broker(None)
    assert [(j.status, j.result["created"] if j.result else None) for j in jobs] == [(JobStatus.SUCCEEDED, 1)] * 3


def test_a_dry_run_job_finishes_on_sqlite(file_database: Database, clock: FrozenClock, tmp_path: Path) -> None:
    """Progress must not wait for the dry run's own write lock."""
    from siyu.jobs.service import run_job

    configure_broker(None)
    job_id = _import_job(file_database, clock, _csv(tmp_path), dry_run=True)
    file_database.engine.dispose()
    run_job(job_id)
    with file_database.session() as session:
        done = session.get(Job, job_id)
        assert done is not None
        assert (done.status, done.result["created"] if done.result else None) == (JobStatus.SUCCEEDED, 1)
        assert (done.progress_done, done.progress_total) == (2, 2)
        assert session.scalars(select(Customer)).all() == []
