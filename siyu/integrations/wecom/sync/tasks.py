"""Background jobs of sync, transfers and behaviour data.

- `wecom_sync` (per workspace; args {"scope"}): run or resume the workspace's sync (`service.run_sync`).
- `wecom_sync_daily` (periodic, daily): a `wecom_sync` job for every active integration (a failed
  run is resumed rather than started again).
- `wecom_transfers_poll` (periodic, every 30 min; or per workspace): resubmit / poll transfers.
- `wecom_behavior` (periodic, daily; or per workspace with {"start", "end"}): staff behaviour data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import Database, get_database
from siyu.integrations.wecom import status
from siyu.integrations.wecom.config import WecomConfig, load_config
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, enqueue, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.models import WecomIntegration
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)

SYNC_KIND = "wecom_sync"
SYNC_DAILY_KIND = "wecom_sync_daily"
TRANSFERS_KIND = "wecom_transfers_poll"
BEHAVIOR_KIND = "wecom_behavior"
SKIPPED = {"skipped": "not configured"}


def _workspaces(database: Database) -> list[int]:
    with database.transaction(read_only=True) as session:
        return list(session.scalars(select(WecomIntegration.workspace_id).where(WecomIntegration.is_active.is_(True))))


def _each(
    database: Database,
    clock: Clock,
    workspace_id: int | None,
    work: Callable[[Session, WecomConfig], dict[str, Any]],
) -> dict[str, Any]:
    """Run `work` in its own transaction for one workspace (or every configured one)."""
    results: dict[str, Any] = {}
    for ws in [workspace_id] if workspace_id is not None else _workspaces(database):
        try:
            with database.transaction() as session:
                bind_workspace(session, ws)
                results[str(ws)] = work(session, load_config(session, ws))
        except NotConfigured:
            results[str(ws)] = dict(SKIPPED)
        except WecomError as exc:  # retryable: the work rolled back; the next run tries again
            with database.transaction() as session:
                status.note_error(session, ws, exc, clock)
            results[str(ws)] = {"error": str(exc), "retryable": exc.retryable}
    return results


@job_actor(SYNC_KIND)
def sync_job(job: JobContext) -> dict[str, Any]:
    """Run (or resume) one workspace's full sync."""
    from siyu.integrations.wecom.sync.service import run_sync

    if job.workspace_id is None:
        return {"skipped": "no workspace"}
    database = get_database()
    with database.transaction(read_only=True) as session:
        try:
            load_config(session, job.workspace_id)
        except NotConfigured:
            return dict(SKIPPED)
    outcome = run_sync(
        database, job.workspace_id, system_clock, scope=str(job.args.get("scope") or "full"), job_id=job.job_id
    )
    return {"run_id": outcome.run_id, "status": outcome.status, "counts": outcome.counts, "error": outcome.error}


def enqueue_sync(
    session: Session, workspace_id: int, clock: Clock, *, scope: str = "full", by: str | None = None
) -> int:
    """Queue a sync ("sync now"); returns the job id."""
    return enqueue(
        session, kind=SYNC_KIND, args={"scope": scope}, workspace_id=workspace_id, clock=clock, created_by=by
    ).id


@job_actor(SYNC_DAILY_KIND)
def sync_daily_job(job: JobContext) -> dict[str, Any]:
    """Queue a `wecom_sync` for every active integration."""
    database = get_database()
    queued = []
    for ws in _workspaces(database):
        with database.transaction() as session:
            queued.append(enqueue_sync(session, ws, system_clock, by="scheduler"))
    return {"queued": len(queued)}


def poll_all_transfers(database: Database, clock: Clock, workspace_id: int | None = None) -> dict[str, Any]:
    """Resubmit and poll the transfers of one or every configured workspace."""
    from siyu.integrations.wecom.sync.transfers import poll_transfers

    return _each(database, clock, workspace_id, lambda s, c: poll_transfers(s, c, clock))


@job_actor(TRANSFERS_KIND)
def transfers_job(job: JobContext) -> dict[str, Any]:
    """Poll transfer results (every workspace when periodic)."""
    return poll_all_transfers(get_database(), system_clock, job.workspace_id)


def fetch_all_behavior(
    database: Database,
    clock: Clock,
    workspace_id: int | None = None,
    *,
    start: date | None = None,
    end: date | None = None,
) -> dict[str, Any]:
    """Fetch staff behaviour data for one or every configured workspace."""
    from siyu.integrations.wecom.sync.behavior import fetch_behavior

    return _each(database, clock, workspace_id, lambda s, c: fetch_behavior(s, c, clock, start=start, end=end))


@job_actor(BEHAVIOR_KIND)
def behavior_job(job: JobContext) -> dict[str, Any]:
    """Fetch staff behaviour data (the last three days by default)."""
    start = date.fromisoformat(job.args["start"]) if job.args.get("start") else None
    end = date.fromisoformat(job.args["end"]) if job.args.get("end") else None
    return fetch_all_behavior(get_database(), system_clock, job.workspace_id, start=start, end=end)


periodic(SYNC_DAILY_KIND, kind=SYNC_DAILY_KIND, every=lambda: timedelta(days=1))
periodic(TRANSFERS_KIND, kind=TRANSFERS_KIND, every=lambda: timedelta(minutes=30))
periodic(BEHAVIOR_KIND, kind=BEHAVIOR_KIND, every=lambda: timedelta(days=1))
