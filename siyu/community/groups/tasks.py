"""Listeners and background jobs of community groups.

- `on_group_joined`: a join completes the workspace's active `join_group` loyalty task, if it has one
  (one indexed query otherwise), with `ref="group:{id}"` so a re-join of the same group pays once
  per task period.
- `community_groups_dismiss` (every 5 minutes): flash groups whose `ends_at` has come are dismissed.
- `community_groups_days` (hourly): yesterday's and today's `GroupDay` rows are recomputed from the
  stays, per workspace with groups (brand-local days). Both are safe to run twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from siyu.community.groups.days import snapshot_workspace
from siyu.community.groups.membership import dismiss_due
from siyu.customers.activity import on_group_joined
from siyu.db import Database, get_database
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.loyalty.member_tasks.periods import local_day
from siyu.loyalty.program import brand_zone
from siyu.models import CommunityGroup, TaskKind, Workspace
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
DISMISS_KIND = "community_groups_dismiss"
DAYS_KIND = "community_groups_days"


@on_group_joined
def complete_join_group_task(
    session: Session, workspace_id: int, customer_id: int, group_id: int, clock: Clock
) -> None:
    """Tick off the workspace's active join-group task for the member (never fails the join)."""
    from siyu.loyalty.member_tasks.service import complete_task_of_kind

    complete_task_of_kind(
        session,
        workspace_id=workspace_id,
        customer_id=customer_id,
        kind=TaskKind.JOIN_GROUP,
        ref=f"group:{group_id}",
        clock=clock,
    )


def _workspaces_with_groups(database: Database, workspace_id: int | None) -> list[int]:
    if workspace_id is not None:
        return [workspace_id]
    with database.transaction(read_only=True) as session:
        return list(
            session.scalars(
                select(Workspace.id)
                .where(exists().where(CommunityGroup.workspace_id == Workspace.id))
                .order_by(Workspace.id)
            )
        )


def dismiss_flash_groups(database: Database, clock: Clock, *, workspace_id: int | None = None) -> dict[str, int]:
    """Dismiss due flash groups, one transaction per workspace."""
    totals = {"workspaces": 0, "dismissed": 0}
    for ws in _workspaces_with_groups(database, workspace_id):
        try:
            with database.transaction() as session:
                bind_workspace(session, ws)
                totals["dismissed"] += len(dismiss_due(session, clock=clock, workspace_id=ws))
        except Exception:
            logger.exception("flash group dismissal failed", extra={"workspace_id": ws})
            continue
        totals["workspaces"] += 1
    return totals


def snapshot_days(database: Database, clock: Clock, *, workspace_id: int | None = None) -> dict[str, int]:
    """Recompute yesterday's and today's daily counts of every group (brand-local days)."""
    totals = {"workspaces": 0, "rows": 0}
    for ws in _workspaces_with_groups(database, workspace_id):
        try:
            with database.transaction() as session:
                bind_workspace(session, ws)
                today = local_day(clock.now(), brand_zone(session, ws))
                for day in (today - timedelta(days=1), today):
                    totals["rows"] += snapshot_workspace(session, workspace_id=ws, day=day)
        except Exception:
            logger.exception("group day snapshot failed", extra={"workspace_id": ws})
            continue
        totals["workspaces"] += 1
    return totals


@job_actor(DISMISS_KIND)
def dismiss_flash_groups_job(job: JobContext) -> dict[str, Any]:
    return dismiss_flash_groups(get_database(), system_clock, workspace_id=job.workspace_id)


@job_actor(DAYS_KIND)
def snapshot_days_job(job: JobContext) -> dict[str, Any]:
    return snapshot_days(get_database(), system_clock, workspace_id=job.workspace_id)


periodic(DISMISS_KIND, kind=DISMISS_KIND, every=lambda: timedelta(minutes=5))
periodic(DAYS_KIND, kind=DAYS_KIND, every=lambda: timedelta(hours=1))
