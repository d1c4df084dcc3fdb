"""Periodic sweeps: each due task becomes a job, claimed with one conditional UPDATE.

`siyu scheduler` runs on any number of machines; one leader (see `siyu.ops.leader`) ticks and
the others stand by. Should two ever tick at once (a leader that lost its lock and has not yet
noticed), a run is still claimed by the UPDATE that moves `last_started_at` forward only if it
is still due, so exactly one claimant enqueues it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
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
from siyu.ops.collectors import SCHEDULER_LEADER
from siyu.ops.leader import LeaderLock

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


@dataclass
class SchedulerState:
    """What a running scheduler reports to its health endpoint."""

    is_leader: bool = False
    became_leader_at: float | None = None
    """`time.monotonic()` when this process last took the lock."""
    ticks: int = 0


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


def run_scheduler(
    database: Database,
    clock: Clock,
    stop: threading.Event,
    *,
    interval_s: float = 30.0,
    leader: LeaderLock | None = None,
    standby_s: float = 5.0,
    state: SchedulerState | None = None,
) -> None:
    """Tick until `stop` is set. Errors are logged and the next tick tries again.

    With a `leader` lock only its holder ticks; the others retry every `standby_s`. The holder
    checks the lock before each tick, so a leader whose lock connection died stops ticking (and
    rejoins the stand-bys). Without one every caller ticks; the claim UPDATE still runs each due
    task once.
    """
    state = state or SchedulerState()
    logger.info(
        "scheduler started",
        extra={"tasks": sorted(_tasks), "interval_s": interval_s, "lock": leader.describe() if leader else None},
    )
    try:
        while not stop.is_set():
            if leader is not None and not _lead(leader, state):
                SCHEDULER_LEADER.set(0)
                stop.wait(standby_s)
                continue
            SCHEDULER_LEADER.set(1 if leader is not None else 0)
            try:
                claimed = tick(database, clock)
                state.ticks += 1
                if claimed:
                    logger.info("scheduled", extra={"tasks": claimed})
            except Exception:
                logger.exception("scheduler tick failed")
            stop.wait(interval_s)
    finally:
        if leader is not None:
            SCHEDULER_LEADER.set(0)
            leader.release()
            if state.is_leader:
                state.is_leader = False
                logger.info("scheduler leadership released", extra={"lock": leader.describe()})


def _lead(leader: LeaderLock, state: SchedulerState) -> bool:
    """Whether this process leads now: keeps, loses or takes the lock, logging each change."""
    try:
        if state.is_leader:
            if leader.still_held():
                return True
            state.is_leader = False
            logger.warning("scheduler leadership lost", extra={"lock": leader.describe()})
            return False
        if leader.try_acquire():
            state.is_leader = True
            state.became_leader_at = time.monotonic()
            logger.info("scheduler leadership taken", extra={"lock": leader.describe(), "pid": os.getpid()})
            return True
    except Exception:
        # The database is unreachable: not leading, try again after the stand-by pause.
        logger.warning("scheduler leadership check failed", exc_info=True)
        state.is_leader = False
        leader.release()
    return False


def start_scheduler_thread(
    database: Database,
    clock: Clock,
    *,
    interval_s: float = 30.0,
    leader: LeaderLock | None = None,
    standby_s: float = 5.0,
) -> threading.Event:
    """Run the scheduler in a daemon thread (embedded mode); set the returned event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_scheduler,
        args=(database, clock, stop),
        kwargs={"interval_s": interval_s, "leader": leader, "standby_s": standby_s},
        daemon=True,
        name="siyu-scheduler",
    )
    thread.start()
    return stop
