"""Background work of loyalty: points expiry, tier reviews and paid-tier expiry for every workspace.

Each is a periodic job that runs hourly and is cheap when there is nothing to do: points expire at
the brand's midnight, so an hourly sweep keeps balances right within the hour; a review date's
review runs once (the program's `last_review_on`), and grace periods end on the first sweep after
they are over. Every sweep is safe to run twice or in two processes at once: members are locked and
each batch commits on its own, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import exists, select

import siyu.loyalty.merge
import siyu.loyalty.variables  # noqa: F401 - registers the {{tier}} and {{points}} message variables
from siyu.db import Database, get_database
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.loyalty.h5 import variables as h5_variables
from siyu.loyalty.points.service import EXPIRY_BATCH, expire_all_due
from siyu.loyalty.tiers.review import run_review
from siyu.loyalty.tiers.service import expire_paid_tiers
from siyu.models import Member, Workspace
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
EXPIRE_KIND = "loyalty_expire_points"
REVIEW_KIND = "loyalty_review_tiers"
PAID_KIND = "loyalty_paid_tier_expiry"
MAX_ROUNDS = 100_000


def _workspaces(database: Database, workspace_id: int | None) -> list[int]:
    """Workspaces with members (or just the one asked for)."""
    if workspace_id is not None:
        return [workspace_id]
    with database.transaction(read_only=True) as session:
        return list(
            session.scalars(
                select(Workspace.id).where(exists().where(Member.workspace_id == Workspace.id)).order_by(Workspace.id)
            )
        )


def expire_points(
    database: Database, clock: Clock, *, workspace_id: int | None = None, batch: int = EXPIRY_BATCH
) -> dict[str, int]:
    """Expire every member's due points, `batch` members per transaction."""
    totals = {"workspaces": 0, "entries": 0}
    for ws in _workspaces(database, workspace_id):
        try:
            for _ in range(MAX_ROUNDS):
                with database.transaction() as session:
                    bind_workspace(session, ws)
                    written = expire_all_due(session, workspace_id=ws, clock=clock, limit=batch)
                totals["entries"] += written
                if written == 0:
                    break
        except Exception:
            # One workspace's failure must not stop the others' expiry; batches done stay done and
            # the next sweep retries the rest.
            logger.exception("points expiry failed", extra={"workspace_id": ws})
            continue
        totals["workspaces"] += 1
    return totals


def review_tiers(database: Database, clock: Clock, *, workspace_id: int | None = None) -> dict[str, int]:
    """Run due tier reviews and end grace periods that are over, one transaction per workspace."""
    totals = {"workspaces": 0, "reviewed": 0, "graced": 0, "downgraded": 0, "cleared": 0}
    for ws in _workspaces(database, workspace_id):
        try:
            with database.transaction() as session:
                bind_workspace(session, ws)
                result = run_review(session, workspace_id=ws, clock=clock)
        except Exception:
            # One workspace's failure must not stop the others' reviews; the next sweep retries it.
            logger.exception("tier review failed", extra={"workspace_id": ws})
            continue
        totals["workspaces"] += 1
        totals["reviewed"] += int(result.reviewed)
        totals["graced"] += result.graced
        totals["downgraded"] += result.downgraded
        totals["cleared"] += result.cleared
    return totals


def expire_paid(database: Database, clock: Clock, *, workspace_id: int | None = None) -> dict[str, int]:
    """End paid tiers past their validity."""
    totals = {"workspaces": 0, "ended": 0}
    for ws in _workspaces(database, workspace_id):
        try:
            for _ in range(MAX_ROUNDS):
                with database.transaction() as session:
                    bind_workspace(session, ws)
                    ended = expire_paid_tiers(session, workspace_id=ws, clock=clock)
                totals["ended"] += ended
                if ended == 0:
                    break
        except Exception:
            # As for points: one workspace's failure is logged and the sweep goes on to the others.
            logger.exception("paid tier expiry failed", extra={"workspace_id": ws})
            continue
        totals["workspaces"] += 1
    return totals


@job_actor(EXPIRE_KIND)
def expire_points_job(job: JobContext) -> dict[str, Any]:
    return expire_points(get_database(), system_clock, workspace_id=job.workspace_id)


@job_actor(REVIEW_KIND)
def review_tiers_job(job: JobContext) -> dict[str, Any]:
    return review_tiers(get_database(), system_clock, workspace_id=job.workspace_id)


@job_actor(PAID_KIND)
def paid_expiry_job(job: JobContext) -> dict[str, Any]:
    return expire_paid(get_database(), system_clock, workspace_id=job.workspace_id)


periodic(EXPIRE_KIND, kind=EXPIRE_KIND, every=lambda: timedelta(hours=1))
periodic(REVIEW_KIND, kind=REVIEW_KIND, every=lambda: timedelta(hours=1))
periodic(PAID_KIND, kind=PAID_KIND, every=lambda: timedelta(hours=1))

h5_variables.register()  # {{member_url}}: a signed link to the member's H5 center
