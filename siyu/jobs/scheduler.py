"""Periodic sweeps: each due task becomes a job, claimed with one conditional UPDATE.

`tick()` may run in any number of processes at once (`siyu scheduler` on several machines, or
the thread `siyu serve` starts in embedded mode): a run is claimed by the UPDATE that moves
`last_started_at` forward only if it is still due, so exactly one claimant enqueues it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, update

from siyu.db import Database
from siyu.jobs.service import enqueue
from siyu.kit.clock import Clock
from siyu.kit.sql import insert_or_ignore
from siyu.models import ScheduledRun

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    kind: str
    """The job kind enqueued when the task is due."""
    every: Callable[[], timedelta]
    """Read at each tick, so a changed setting applies without a restart."""
    args: dict[str, Any]


_tasks: dict[str, PeriodicTask] = {}


def periodic(name: str, *, kind: str, every: Callable[[], timedelta], args: dict[str, Any] | None = None) -> None:
    """Declare a periodic task (once, when the module declaring its job kind loads)."""
    _tasks[name] = PeriodicTask(name=name, kind=kind, every=every, args=args or {})


def periodic_tasks() -> list[PeriodicTask]:
    return list(_tasks.values())


def tick(database: Database, clock: Clock) -> list[str]:
    """Enqueue every task that is due; returns the names claimed by this call."""
    claimed: list[str] = []
    for task in periodic_tasks():
        now = clock.now()
        with database.transaction() as session:
            insert_or_ignore(session, ScheduledRun, {"name": task.name, "last_started_at": None}, ["name"])
            result = session.execute(
                update(ScheduledRun)
                .where(
                    ScheduledRun.name == task.name,
                    or_(ScheduledRun.last_started_at.is_(None), ScheduledRun.last_started_at <= now - task.every()),
                )
                .values(last_started_at=now),
                execution_options={"synchronize_session": False},
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                continue
            job = enqueue(
                session, kind=task.kind, args=dict(task.args), workspace_id=None, clock=clock, created_by="scheduler"
            )
            session.execute(
                update(ScheduledRun).where(ScheduledRun.name == task.name).values(last_job_id=job.id),
                execution_options={"synchronize_session": False},
            )
            claimed.append(task.name)
    return claimed


def run_scheduler(database: Database, clock: Clock, stop: threading.Event, *, interval_s: float = 30.0) -> None:
    """Tick until `stop` is set. Errors are logged and the next tick tries again."""
    logger.info("scheduler started", extra={"tasks": sorted(_tasks), "interval_s": interval_s})
    while not stop.is_set():
        try:
            claimed = tick(database, clock)
            if claimed:
                logger.info("scheduled", extra={"tasks": claimed})
        except Exception:
            logger.exception("scheduler tick failed")
        stop.wait(interval_s)


def start_scheduler_thread(database: Database, clock: Clock, *, interval_s: float = 30.0) -> threading.Event:
    """Run the scheduler in a daemon thread (embedded mode); set the returned event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_scheduler,
        args=(database, clock, stop),
        kwargs={"interval_s": interval_s},
        daemon=True,
        name="siyu-scheduler",
    )
    thread.start()
    return stop
