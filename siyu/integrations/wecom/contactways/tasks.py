"""Background jobs of contact ways: the scheduled routing push (every 10 minutes, all workspaces)
and "sync now" (one workspace, optionally one code)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import Database, get_database
from siyu.integrations.wecom.client import WecomClient, redact
from siyu.integrations.wecom.config import WecomConfig, client_for, load_config
from siyu.integrations.wecom.contactways.service import (
    SWEEP_MAX_DELETES,
    SyncReport,
    codes_to_sync,
    delete_orphan,
    held_config_ids,
    list_orphan_candidates,
    lock_code,
    record_run,
    sync_code,
)
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, enqueue, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.livecodes.scan import snapshots
from siyu.models import WecomIntegration
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
PUSH_KIND = "wecom_contactways_push"
PUSH_EVERY = timedelta(minutes=10)


def push_workspace(
    workspace_id: int, clock: Clock, *, live_code_id: int | None = None, database: Database | None = None
) -> dict[str, Any]:
    """Push one workspace's ways (or one code's): one short transaction per code (its row locked, its
    ways saved as soon as WeCom returns their config_ids), then, for a whole-workspace push, the
    orphan sweep, then the run record. `{"skipped": "not configured"}` without WeCom."""
    database = database or get_database()
    with database.transaction(read_only=True) as session:
        bind_workspace(session, workspace_id)
        try:
            config = load_config(session, workspace_id)
        except NotConfigured:
            return {"skipped": "not configured"}
        code_ids = [c.id for c in codes_to_sync(session, workspace_id, live_code_id)]
    started = clock.now()
    client = client_for(config, secret="contact")
    report = SyncReport()
    for code_id in code_ids:
        try:
            with database.transaction() as session:
                bind_workspace(session, workspace_id)
                code = lock_code(session, code_id)
                if code is not None:
                    sync_code(session, config, code, clock, client=client, report=report)
        except Exception as exc:  # one code's failure (a bug, a lost connection) does not stop the others
            logger.exception("contact way push of a code failed", extra={"live_code_id": code_id})
            report.failures.append(
                {"live_code_id": code_id, "route_id": None, "variant": None, "error": redact(type(exc).__name__)}
            )
    sweep = sweep_workspace(database, config, clock, client=client, report=report) if live_code_id is None else None
    if report.created or report.updated or report.deleted:
        snapshots.clear()  # landing pages in this process show the new QRs at once
    with database.transaction() as session:
        bind_workspace(session, workspace_id)
        run = record_run(
            session, workspace_id, report, clock, started_at=started, live_code_id=live_code_id, sweep=sweep
        )
        return dict(run.counts) | {"run_id": run.id}


def sweep_workspace(
    database: Database, config: WecomConfig, clock: Clock, *, client: WecomClient, report: SyncReport
) -> dict[str, int]:
    """Delete contact ways left on WeCom that siyu does not know (see `service.list_orphan_candidates`);
    each deletion in its own short transaction with the code locked. Bounded per run."""
    workspace_id = config.workspace_id
    with database.transaction(read_only=True) as session:
        bind_workspace(session, workspace_id)
        held = held_config_ids(session, workspace_id)
    try:
        candidates = list_orphan_candidates(client, held, clock)
    except WecomError as exc:
        report.failures.append(
            {
                "live_code_id": None,
                "route_id": None,
                "variant": None,
                "error": redact(str(exc)),
                "retryable": exc.retryable,
            }
        )
        return {"found": 0, "deleted": 0}
    deleted = 0
    for config_id, live_code_id in candidates[:SWEEP_MAX_DELETES]:
        try:
            with database.transaction() as session:
                bind_workspace(session, workspace_id)
                if delete_orphan(
                    session, client, workspace_id=workspace_id, config_id=config_id, live_code_id=live_code_id
                ):
                    deleted += 1
        except WecomError as exc:
            report.failures.append(
                {
                    "live_code_id": live_code_id,
                    "route_id": None,
                    "variant": None,
                    "error": redact(str(exc)),
                    "retryable": exc.retryable,
                }
            )
    return {"found": len(candidates), "deleted": deleted}


def push_all(clock: Clock) -> dict[str, Any]:
    """Push every workspace with an active integration; one workspace's failure does not stop the rest."""
    with get_database().transaction(read_only=True) as session:
        workspace_ids = list(
            session.scalars(
                select(WecomIntegration.workspace_id)
                .where(WecomIntegration.is_active.is_(True))
                .order_by(WecomIntegration.workspace_id)
                .execution_options(siyu_unscoped=True)
            )
        )
    totals: dict[str, Any] = {"workspaces": 0, "failed_workspaces": 0}
    for workspace_id in workspace_ids:
        try:
            counts = push_workspace(workspace_id, clock)
        except Exception:  # e.g. the secrets cannot be opened; logged, the others go on
            logger.exception("contact way push failed", extra={"workspace_id": workspace_id})
            totals["failed_workspaces"] += 1
            continue
        totals["workspaces"] += 1
        for key, value in counts.items():
            if isinstance(value, int) and key != "run_id":
                totals[key] = totals.get(key, 0) + value
    return totals


def queue_code_push(session: Session, *, workspace_id: int, live_code_id: int, clock: Clock) -> bool:
    """After a live code is created, edited or deleted: queue a push of its ways when the workspace
    has an active WeCom integration (sent once the caller's transaction commits). True if queued."""
    active = session.scalar(
        select(WecomIntegration.id).where(
            WecomIntegration.workspace_id == workspace_id, WecomIntegration.is_active.is_(True)
        )
    )
    if active is None:
        return False
    enqueue(
        session,
        kind=PUSH_KIND,
        args={"live_code_id": live_code_id},
        workspace_id=workspace_id,
        clock=clock,
        created_by="live_code",
    )
    return True


@job_actor(PUSH_KIND)
def push_job(job: JobContext) -> dict[str, Any]:
    """With a workspace (sync now): that workspace, optionally `args["live_code_id"]`; else all."""
    if job.workspace_id is None:
        return push_all(system_clock)
    code = job.args.get("live_code_id")
    return push_workspace(job.workspace_id, system_clock, live_code_id=int(code) if code else None)


periodic(PUSH_KIND, kind=PUSH_KIND, every=lambda: PUSH_EVERY)
