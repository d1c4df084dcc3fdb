"""Background jobs of WeCom message and moment tasks: the reconciliation every 10 minutes (all
workspaces with an active integration, or one workspace for "refresh now")."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from siyu.db import Database, get_database
from siyu.integrations.wecom.config import load_config
from siyu.integrations.wecom.errors import NotConfigured
from siyu.integrations.wecom.messages.moments import sync_moments
from siyu.integrations.wecom.messages.service import sync_message_tasks
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.models import WecomIntegration
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
SYNC_KIND = "wecom_message_tasks"
SYNC_EVERY = timedelta(minutes=10)


def sync_workspace(workspace_id: int, clock: Clock, database: Database | None = None) -> dict[str, Any]:
    """Reconcile one workspace's message tasks, then its moment tasks. Each side commits as it goes
    (short transactions after every WeCom call with side effects), and a failure of one does not
    undo or stop the other."""
    database = database or get_database()
    with database.transaction(read_only=True) as session:
        bind_workspace(session, workspace_id)
        try:
            config = load_config(session, workspace_id)
        except NotConfigured:
            return {"skipped": "not configured"}
    result: dict[str, Any] = {}
    for name, step in (("messages", sync_message_tasks), ("moments", sync_moments)):
        try:
            result[name] = step(database, config, clock)
        except Exception:
            logger.exception("wecom %s sync failed", name, extra={"workspace_id": workspace_id})
            result[name] = {"failed": 1}
    return result


def sync_all(clock: Clock) -> dict[str, Any]:
    """Every workspace with an active integration; one workspace's failure does not stop the rest."""
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
            sync_workspace(workspace_id, clock)
        except Exception:
            logger.exception("wecom message task sync failed", extra={"workspace_id": workspace_id})
            totals["failed_workspaces"] += 1
            continue
        totals["workspaces"] += 1
    return totals


@job_actor(SYNC_KIND)
def sync_job(job: JobContext) -> dict[str, Any]:
    """With a workspace ("refresh now"): that workspace; else all of them."""
    if job.workspace_id is None:
        return sync_all(system_clock)
    return sync_workspace(job.workspace_id, system_clock)


periodic(SYNC_KIND, kind=SYNC_KIND, every=lambda: SYNC_EVERY)
