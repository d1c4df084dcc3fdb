"""Listeners and background jobs of community koc.

- `koc.score`: the daily KOC scoring of every workspace with KOC activity (runs hourly; a rerun on
  the same brand-local day overwrites that day's rows, so it is safe to run twice).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import exists, or_, select

from siyu.community.koc.scoring import score_workspace
from siyu.db import Database, get_database
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.models import Workspace
from siyu.models.challenge import Post
from siyu.models.koc import KocProfile
from siyu.models.referral import Referral
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)

SCORE_KIND = "koc.score"


def _workspaces(database: Database, workspace_id: int | None) -> list[int]:
    if workspace_id is not None:
        return [workspace_id]
    with database.transaction(read_only=True) as session:
        return list(
            session.scalars(
                select(Workspace.id)
                .where(
                    or_(
                        exists().where(KocProfile.workspace_id == Workspace.id),
                        exists().where(Referral.workspace_id == Workspace.id),
                        exists().where(Post.workspace_id == Workspace.id),
                    )
                )
                .order_by(Workspace.id)
            )
        )


def score_all(database: Database, clock: Clock, *, workspace_id: int | None = None) -> dict[str, int]:
    """Score every workspace, one transaction each (a failing workspace doesn't stop the others)."""
    totals = {"workspaces": 0, "profiles": 0}
    for ws in _workspaces(database, workspace_id):
        try:
            with database.transaction() as session:
                bind_workspace(session, ws)
                totals["profiles"] += score_workspace(session, workspace_id=ws, clock=clock)
        except Exception:
            logger.exception("KOC scoring failed", extra={"workspace_id": ws})
            continue
        totals["workspaces"] += 1
    return totals


@job_actor(SCORE_KIND)
def score_job(job: JobContext) -> dict[str, Any]:
    return score_all(get_database(), system_clock, workspace_id=job.workspace_id)


periodic(SCORE_KIND, kind=SCORE_KIND, every=lambda: timedelta(hours=1))
