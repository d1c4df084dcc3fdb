"""The scheduler: a due periodic task becomes exactly one job, however many schedulers tick at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select

from siyu.config import Settings
from siyu.db import Database, set_database
from siyu.jobs import scheduler
from siyu.jobs.service import JobContext, job_actor
from siyu.kit.clock import FrozenClock
from siyu.models import Job, ScheduledRun

KIND = "test_periodic_sweep"


@job_actor(KIND)
def _sweep(job: JobContext) -> dict[str, Any]:
    return {"swept": True}


@pytest.fixture
def committed(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """Real commits; only this test's periodic task is declared; its rows are removed after."""
    monkeypatch.setattr(scheduler, "_tasks", {})
    scheduler.periodic("test-sweep", kind=KIND, every=lambda: timedelta(minutes=10), args={"n": 1})
    database = Database(Settings(database_url="sqlite://"), engine=engine)
    set_database(database)

    def clean() -> None:
        with database.transaction() as session:
            session.execute(delete(Job).where(Job.kind == KIND))
            session.execute(delete(ScheduledRun).where(ScheduledRun.name == "test-sweep"))

    clean()
    yield database
    clean()
    set_database(None)


def _jobs(database: Database) -> list[Job]:
    with database.session() as session:
        return list(session.scalars(select(Job).where(Job.kind == KIND).order_by(Job.id)))


def test_a_due_task_is_enqueued_once_per_interval(committed: Database, clock: FrozenClock) -> None:
    # the first tick claims the never-run task
    assert scheduler.tick(committed, clock) == ["test-sweep"]
    # a tick five minutes later finds it not due
    clock.advance(timedelta(minutes=5))
    assert scheduler.tick(committed, clock) == []
    # ten minutes after the first run it is due again
    clock.advance(timedelta(minutes=5))
    assert scheduler.tick(committed, clock) == ["test-sweep"]
    jobs = _jobs(committed)
    assert [(j.kind, j.args, j.workspace_id, j.created_by) for j in jobs] == [(KIND, {"n": 1}, None, "scheduler")] * 2
    with committed.session() as session:
        run = session.get(ScheduledRun, "test-sweep")
        assert run is not None
        assert run.last_started_at == clock.now()
        assert run.last_job_id == jobs[-1].id


def test_schedulers_ticking_at_once_enqueue_one_job(committed: Database, clock: FrozenClock) -> None:
    threads_count = 6
    barrier = threading.Barrier(threads_count)
    claims: list[list[str]] = []
    errors: list[str] = []

    def run() -> None:
        barrier.wait()
        try:
            claims.append(scheduler.tick(committed, clock))
        except Exception as exc:  # asserted below
            errors.append(repr(exc))

    threads = [threading.Thread(target=run) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(claims) == [[]] * (threads_count - 1) + [["test-sweep"]]
    assert len(_jobs(committed)) == 1


def test_run_scheduler_stops_when_asked(committed: Database, clock: FrozenClock) -> None:
    stop = threading.Event()
    thread = threading.Thread(
        target=scheduler.run_scheduler, args=(committed, clock, stop), kwargs={"interval_s": 0.05}
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not _jobs(committed) and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    # it ticked every 50 ms, but the task is due only every 10 minutes
    assert len(_jobs(committed)) == 1
