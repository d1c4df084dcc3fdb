"""Background work of broadcasts and sending: plan a broadcast, and the dispatch sweep that starts
scheduled broadcasts, sends what is due, recovers stale sends and closes finished broadcasts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import exists, select

from siyu.campaigns.broadcasts.planner import run_planning
from siyu.db import Database, get_database
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, enqueue, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.messaging.planning import PlanCounts
from siyu.messaging.sending import SendStats, requeue_stale, send_due
from siyu.models import Broadcast, BroadcastStatus, Delivery, DeliveryStatus

logger = logging.getLogger(__name__)
PLAN_KIND = "plan_broadcast"
DISPATCH_KIND = "dispatch_deliveries"


@dataclass
class DispatchResult:
    planned: PlanCounts = field(default_factory=PlanCounts)
    sent: SendStats = field(default_factory=SendStats)
    requeued: int = 0
    finished: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "planned": dict(self.planned.by_status),
            "suppressed": dict(self.planned.by_reason),
            "claimed": self.sent.claimed,
            "sent": self.sent.sent,
            "retried": self.sent.retried,
            "failed": self.sent.failed,
            "rejected": self.sent.rejected,
            "requeued": self.requeued,
            "finished": self.finished,
        }


def queue_planning(broadcast: Broadcast, clock: Clock) -> None:
    """Plan (and then send) a scheduled broadcast once the current transaction commits."""
    from sqlalchemy.orm import object_session

    session = object_session(broadcast)
    assert session is not None
    session.flush()
    enqueue(
        session,
        kind=PLAN_KIND,
        args={"broadcast_id": broadcast.id},
        workspace_id=broadcast.workspace_id,
        clock=clock,
        created_by="broadcast",
    )


@job_actor(PLAN_KIND)
def plan_broadcast_job(job: JobContext) -> dict[str, Any]:
    """Plan one broadcast, then dispatch what it queued."""
    assert job.workspace_id is not None
    counts = run_planning(
        get_database(), job.workspace_id, int(job.args["broadcast_id"]), system_clock, progress=job.progress
    )
    result = dispatch(get_database(), system_clock, plan=False)
    return {"planned": dict(counts.by_status), "suppressed": dict(counts.by_reason)} | {"dispatch": result.as_dict()}


@job_actor(DISPATCH_KIND)
def dispatch_job(job: JobContext) -> dict[str, Any]:
    return dispatch(get_database(), system_clock).as_dict()


def dispatch(database: Database, clock: Clock, *, plan: bool = True, max_rounds: int = 10_000) -> DispatchResult:
    """One sweep: plan due broadcasts (resuming interrupted ones), send everything due, close
    drained broadcasts. Safe to run in several processes at once."""
    result = DispatchResult()
    with database.transaction() as session:
        result.requeued = requeue_stale(session, clock)
    if plan:
        with database.transaction(read_only=True) as session:
            due = session.execute(
                select(Broadcast.id, Broadcast.workspace_id).where(
                    Broadcast.status.in_([BroadcastStatus.SCHEDULED, BroadcastStatus.PLANNING]),
                    (Broadcast.scheduled_at.is_(None)) | (Broadcast.scheduled_at <= clock.now()),
                )
            ).all()
        for broadcast_id, workspace_id in due:
            result.planned.add(run_planning(database, workspace_id, broadcast_id, clock))
    for _ in range(max_rounds):
        stats = send_due(database, clock)
        result.sent.add(stats)
        if stats.claimed == 0:
            break
    result.finished = finish_drained(database, clock)
    return result


def finish_drained(database: Database, clock: Clock) -> int:
    """Mark sending broadcasts with nothing left queued or in flight as done."""
    with database.transaction() as session:
        pending = exists().where(
            Delivery.source == "broadcast",
            Delivery.source_id == Broadcast.id,
            Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]),
        )
        rows = session.scalars(
            select(Broadcast).where(Broadcast.status == BroadcastStatus.SENDING, ~pending).with_for_update()
        ).all()
        for broadcast in rows:
            broadcast.status, broadcast.finished_at = BroadcastStatus.DONE, clock.now()
        return len(rows)


periodic(DISPATCH_KIND, kind=DISPATCH_KIND, every=lambda: timedelta(minutes=1))
