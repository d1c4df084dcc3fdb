"""Graceful worker shutdown: stop taking messages, let running jobs finish, release the rest.

On SIGTERM `siyu worker` stops its job threads from taking new messages, waits up to
`SIYU_SHUTDOWN_GRACE_S` for the running jobs, and then, for each job still running, puts the
job row back to queued and hands its message back to the broker queue, so another worker runs
it (jobs are safe to run twice). The released attempt cannot record a result afterwards: the
finish is conditional on the attempt number (`siyu.jobs.service.run_job`). A job whose function has
already returned is finishing, not running: it is never released, so its result is kept.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from dramatiq import Worker

from siyu.db import Database
from siyu.jobs.broker import QUEUE, in_flight
from siyu.jobs.service import frozen_in_progress, release_jobs

logger = logging.getLogger(__name__)


@dataclass
class ShutdownReport:
    """What a graceful stop did."""

    finished_in_grace: bool
    released_job_ids: list[int] = field(default_factory=list)
    waited_s: float = 0.0


def graceful_stop(worker: Worker, database: Database, *, grace_s: float, poll_s: float = 0.05) -> ShutdownReport:
    """Stop `worker` within about `grace_s` seconds, releasing jobs that are still running then."""
    started = time.monotonic()
    tracker = in_flight(worker.broker)
    # Worker threads finish the message in hand and take no other; the consumer threads keep
    # running meanwhile so the broker keeps seeing this worker's heartbeat.
    for thread in worker.workers:
        thread.stop()
    deadline = started + grace_s
    while tracker.running() and time.monotonic() < deadline:
        time.sleep(poll_s)
    stragglers = tracker.running()
    report = ShutdownReport(finished_in_grace=not stragglers)
    if stragglers:
        report.released_job_ids = _release(worker, database, stragglers)
    # Prefetched messages nobody started go back to the queue; then the consumers close. Stuck
    # threads are daemons and are not waited for (their messages were handed back above).
    worker.stop(timeout=500 if stragglers else max(1000, int(grace_s * 1000)))
    report.waited_s = round(time.monotonic() - started, 3)
    logger.info(
        "worker stopped",
        extra={
            "finished_in_grace": report.finished_in_grace,
            "released": report.released_job_ids,
            "waited_s": report.waited_s,
        },
    )
    return report


def _job_id(message: Any) -> int | None:
    return message.args[0] if message.args and isinstance(message.args[0], int) else None


def _release(worker: Worker, database: Database, messages: list[Any]) -> list[int]:
    # No running job may start finishing while its release is decided and committed; one that
    # already finished its work (result being recorded) is not in `attempts`, so it is left alone.
    with frozen_in_progress() as attempts, database.transaction() as session:
        job_ids = {job_id for job_id in map(_job_id, messages) if job_id is not None}
        released = release_jobs(session, {job_id: attempts[job_id] for job_id in job_ids if job_id in attempts})
    # Only released jobs' messages go back now. The others belong to jobs that are finishing (the
    # function returned, the result is being recorded) or not this attempt's any more: requeued,
    # another worker could run the job again before its result is committed. They stay unacked
    # here and, if this process exits first, the broker redelivers them after its heartbeat
    # timeout (a finished job's redelivery is a no-op).
    requeue = [message for message in messages if _job_id(message) in released]
    consumer = worker.consumers.get(QUEUE)
    if consumer is not None and requeue:
        try:
            # Moves each message from this worker's unacked set back onto the queue at once,
            # instead of after the broker's heartbeat timeout declares this worker dead.
            consumer.requeue_messages(requeue)
        except Exception:
            logger.exception("requeue failed; the broker will redeliver after its heartbeat timeout")
    logger.warning("released running jobs at shutdown", extra={"job_ids": released})
    return released


def supervise(commands: list[list[str]], *, grace_s: float, stop: threading.Event) -> int:
    """Run one child process per command (`siyu worker --processes N`) until `stop` is set or a
    child exits; then SIGTERM the others and wait up to `grace_s` + 5 s for them (SIGKILL after).
    Returns the exit code: 0 after a requested stop, 1 when a child died on its own (so the
    service manager restarts the whole set)."""
    children = [subprocess.Popen(command) for command in commands]
    logger.info("worker processes started", extra={"pids": [child.pid for child in children]})
    died: list[int] = []
    while not stop.is_set():
        died = [child.pid for child in children if child.poll() is not None]
        if died:
            logger.error("worker process exited; stopping the others", extra={"pids": died})
            break
        stop.wait(0.5)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s + 5
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return 1 if died else 0
