"""Background work of segments: the periodic refresh of tracked segments (and daily sizes), one
segment's refresh on demand, and re-evaluating one customer after an event or order."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import dramatiq
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.config import get_settings
from siyu.customers.activity import on_customer_activity
from siyu.db import after_commit, get_database
from siyu.jobs.broker import QUEUE, get_broker, register
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, enqueue, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.models import Job, Segment
from siyu.segments.service.tracking import refresh_customer, refresh_segment
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
REFRESH_KIND = "refresh_segments"
_PENDING_KEY = "segments_pending_customers"


@job_actor(REFRESH_KIND)
def refresh_segments_job(job: JobContext) -> dict[str, Any]:
    """Refresh one segment (`segment_id`) or every live segment of every workspace: tracked ones
    record who entered and left, all record the day's size. One transaction per segment."""
    wanted = job.args.get("segment_id")
    with get_database().transaction(read_only=True) as session:
        statement = select(Segment.id, Segment.workspace_id).where(Segment.archived_at.is_(None))
        if wanted is not None:
            statement = statement.where(Segment.id == int(wanted))
        targets = [(row[0], row[1]) for row in session.execute(statement.order_by(Segment.id))]
    totals = {"segments": 0, "entered": 0, "left": 0, "failed": 0}
    for done, (segment_id, workspace_id) in enumerate(targets, start=1):
        try:
            with get_database().transaction() as session:
                bind_workspace(session, workspace_id)
                result = refresh_segment(session, segment_id=segment_id, clock=system_clock)
        except Exception:
            # One broken segment (e.g. a definition that times out) must not stop the sweep.
            logger.exception("segment refresh failed", extra={"segment_id": segment_id})
            totals["failed"] += 1
            continue
        if result is not None:
            totals["segments"] += 1
            totals["entered"] += result.entered
            totals["left"] += result.left
        job.progress(done, len(targets))
    return totals


def queue_segment_refresh(
    session: Session, *, workspace_id: int, segment_id: int, clock: Clock, created_by: str | None
) -> Job:
    """Refresh one segment in the background once this transaction commits."""
    return enqueue(
        session,
        kind=REFRESH_KIND,
        args={"segment_id": segment_id},
        workspace_id=workspace_id,
        clock=clock,
        created_by=created_by,
    )


periodic(
    REFRESH_KIND,
    kind=REFRESH_KIND,
    every=lambda: timedelta(minutes=max(1, get_settings().segment_refresh_minutes)),
)


def customer_changed(workspace_id: int, customer_id: int) -> None:
    """Re-evaluate tracked segments for one customer (the message body of the actor below)."""
    with get_database().transaction() as session:
        bind_workspace(session, workspace_id)
        refresh_customer(session, workspace_id=workspace_id, customer_id=customer_id, clock=system_clock)


customer_changed_actor: dramatiq.Actor[[int, int], None] = register(
    dramatiq.actor(actor_name="segments_customer_changed", queue_name=QUEUE, max_retries=3, broker=get_broker())(
        customer_changed
    )
)


@on_customer_activity
def _after_activity(session: Session, workspace_id: int, customer_id: int) -> None:
    """Queue one re-evaluation per customer per transaction, sent after commit, and only when the
    workspace tracks a segment at all (most events arrive in workspaces that track none)."""
    pending: set[tuple[int, int]] = session.info.setdefault(_PENDING_KEY, set())
    if (workspace_id, customer_id) in pending:
        return
    tracked = session.scalar(
        select(Segment.id)
        .where(Segment.workspace_id == workspace_id, Segment.is_tracked.is_(True), Segment.archived_at.is_(None))
        .limit(1)
    )
    if tracked is None:
        return
    pending.add((workspace_id, customer_id))

    def send() -> None:
        pending.discard((workspace_id, customer_id))
        customer_changed_actor.send(workspace_id, customer_id)

    after_commit(session, send)
