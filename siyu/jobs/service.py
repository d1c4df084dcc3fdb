"""Creating jobs, running them with status tracking, and resuming them after a crash."""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import dramatiq
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.db import after_commit, get_database
from siyu.jobs.broker import QUEUE, get_broker, register
from siyu.kit.clock import Clock, system_clock
from siyu.kit.errors import DomainError, NotFound
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.models import Job, JobStatus
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)


class Progress(Protocol):
    def __call__(self, done: int, total: int | None = None) -> None: ...


@dataclass
class JobContext:
    """What a job function gets: its job's id, workspace and arguments, a progress callback, and
    `transaction()`, which opens a session bound to the job's workspace that commits when its
    block ends. The function decides its own transactions (an import commits batch by batch).
    """

    job_id: int
    workspace_id: int | None
    args: dict[str, Any]
    progress: Progress

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with get_database().transaction() as session:
            if self.workspace_id is not None:
                bind_workspace(session, self.workspace_id)
            yield session


JobFunction = Callable[[JobContext], dict[str, Any]]
_functions: dict[str, JobFunction] = {}
_actors: dict[str, dramatiq.Actor[[int], None]] = {}
# Jobs running in this process (job id -> attempt), so a worker shutting down knows what to release.
_in_progress: dict[int, int] = {}
_in_progress_lock = threading.Lock()


def job_actor(kind: str) -> Callable[[JobFunction], JobFunction]:
    """Declare a job kind. The function returns the result stored on the job; it must be safe
    to run twice (a message can be delivered again after a crash).
    """

    def decorate(fn: JobFunction) -> JobFunction:
        _functions[kind] = fn

        def run(job_id: int) -> None:
            run_job(job_id)

        run.__name__ = kind
        declare = dramatiq.actor(actor_name=kind, queue_name=QUEUE, max_retries=0, broker=get_broker())
        _actors[kind] = register(declare(run))
        return fn

    return decorate


def enqueue(
    session: Session,
    *,
    kind: str,
    args: dict[str, Any],
    workspace_id: int | None,
    clock: Clock,
    created_by: str | None = None,
) -> Job:
    """Create a job row and send it to the broker once this transaction commits."""
    if kind not in _functions:
        raise ValueError(f"unknown job kind {kind!r}")
    job = Job(
        workspace_id=workspace_id,
        kind=kind,
        args=args,
        status=JobStatus.QUEUED,
        created_by=created_by,
        created_at=clock.now(),
    )
    session.add(job)
    session.flush()
    job_id = job.id
    after_commit(session, lambda: send(kind, job_id))
    return job


def send(kind: str, job_id: int) -> None:
    _actors[kind].send(job_id)


def run_job(job_id: int, *, clock: Clock = system_clock) -> None:
    """Run one job by id: mark it running, run its function, record the result or the error.

    Status changes are short transactions of their own, so the function's own transactions
    never wait on a lock the runner holds (SQLite allows one writer at a time). The finish is
    conditional on this attempt still owning the job: an attempt that was released at shutdown
    (and picked up by another worker) never records a second result.
    """
    database = get_database()
    with database.transaction() as session:
        job = session.get(Job, job_id)
        if job is None:
            logger.warning("job vanished", extra={"job_id": job_id})
            return
        if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            return  # delivered twice: already done
        job.status = JobStatus.RUNNING
        job.attempts += 1
        job.started_at = clock.now()
        kind, workspace_id, args, attempt = job.kind, job.workspace_id, dict(job.args), job.attempts

    def progress(done: int, total: int | None = None) -> None:
        with database.transaction() as session:
            row = session.get(Job, job_id)
            if row is not None:
                row.progress_done = done
                if total is not None:
                    row.progress_total = total

    context = JobContext(job_id=job_id, workspace_id=workspace_id, args=args, progress=progress)
    with _in_progress_lock:
        _in_progress[job_id] = attempt
    try:
        try:
            result = _functions[kind](context)
        finally:
            # The work is done (or failed): from here a worker shutting down must not release this
            # attempt, or `_finish` would drop its result and another worker would redo the job.
            # Under the lock, so a release in progress (`frozen_in_progress`) decides first.
            with _in_progress_lock:
                if _in_progress.get(job_id) == attempt:
                    del _in_progress[job_id]
    except Exception as exc:
        logger.exception("job failed", extra={"job_id": job_id, "kind": kind})
        message = (
            exc.message
            if isinstance(exc, DomainError)
            else "".join(traceback.format_exception_only(type(exc), exc)).strip()
        )
        _finish(job_id, attempt, JobStatus.FAILED, clock, error=message[:4000])
        return
    _finish(job_id, attempt, JobStatus.SUCCEEDED, clock, result=result)


def _finish(
    job_id: int,
    attempt: int,
    status: JobStatus,
    clock: Clock,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    with get_database().transaction() as session:
        done = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.attempts == attempt)
            .values(status=status, result=result, error=error, finished_at=clock.now()),
            execution_options={"synchronize_session": False},
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            logger.warning("job released or taken over; result dropped", extra={"job_id": job_id, "attempt": attempt})


def jobs_in_progress() -> dict[int, int]:
    """Jobs this process is running now (function not returned yet): job id -> attempt number."""
    with _in_progress_lock:
        return dict(_in_progress)


@contextmanager
def frozen_in_progress() -> Iterator[dict[int, int]]:
    """The jobs this process is running now, with none of them allowed to start finishing until
    the block ends: release them (`release_jobs`, committed) inside the block, and a job whose
    function returns meanwhile waits, then finds itself released. A job that started finishing
    before the block is not in the dict, so it is never released."""
    with _in_progress_lock:
        yield dict(_in_progress)


def release_jobs(session: Session, attempts: dict[int, int]) -> list[int]:
    """Put jobs this process could not finish back to queued (at shutdown), if each is still on
    the given attempt; returns the ids released. The caller requeues their messages after commit."""
    released: list[int] = []
    for job_id, attempt in sorted(attempts.items()):
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.attempts == attempt)
            .values(status=JobStatus.QUEUED, started_at=None),
            execution_options={"synchronize_session": False},
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            released.append(job_id)
    return released


def resume_unfinished(session: Session) -> int:
    """Re-send jobs left queued or running by a crash or restart (after commit). Returns how many."""
    rows = session.scalars(select(Job).where(Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))).all()
    for job in rows:
        job.status = JobStatus.QUEUED
        kind, job_id = job.kind, job.id
        if kind in _functions:
            after_commit(session, lambda kind=kind, job_id=job_id: send(kind, job_id))  # type: ignore[misc]
    return len(rows)


def get_job(session: Session, *, workspace_id: int, job_id: int) -> Job:
    job = session.scalar(select(Job).where(Job.id == job_id, Job.workspace_id == workspace_id))
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def list_jobs(session: Session, *, workspace_id: int, cursor: str | None = None, limit: int = 50) -> Page[Job]:
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(Job).where(Job.workspace_id == workspace_id)
    if cursor:
        query = query.where(Job.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(Job.id.desc()).limit(limit + 1)))
    return Page(items=rows[:limit], next_cursor=encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)
