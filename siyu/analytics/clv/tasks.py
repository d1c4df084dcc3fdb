"""Background jobs of CLV: the fit (queued from the console or the API) and its weekly refit.

`analytics.clv_fit` with a workspace fits that workspace; without one (the weekly schedule) it fits
every workspace that has orders, one transaction each (a failing workspace doesn't stop the others).
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from siyu.analytics.periods import brand_today
from siyu.analytics.settings import current_settings
from siyu.auth.permissions import Actor
from siyu.db import Database, get_database
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, enqueue, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.kit.errors import InvalidInput
from siyu.models import ClvFit, ClvFitStatus, Job, Order, Workspace
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
FIT_KIND = "analytics.clv_fit"


def queue_fit(
    session: Session,
    *,
    actor: Actor,
    clock: Clock,
    calibration_end: date | None = None,
    holdout_days: int | None = None,
) -> Job:
    """Queue a fit of the actor's workspace (sent after this transaction commits)."""
    from siyu.analytics.clv.service import MAX_HOLDOUT_DAYS
    from siyu.auth.permissions import Scope

    actor.require(Scope.ANALYTICS_WRITE)
    if calibration_end is not None and calibration_end > brand_today(session, actor.workspace_id, clock):
        raise InvalidInput("calibration_end cannot be after today", details={"field": "calibration_end"})
    if holdout_days is not None and not 0 <= holdout_days <= MAX_HOLDOUT_DAYS:
        raise InvalidInput(f"holdout_days must be 0 to {MAX_HOLDOUT_DAYS}", details={"field": "holdout_days"})
    args: dict[str, Any] = {"created_by": actor.label}
    if calibration_end is not None:
        args["calibration_end"] = calibration_end.isoformat()
    if holdout_days is not None:
        args["holdout_days"] = holdout_days
    return enqueue(
        session, kind=FIT_KIND, args=args, workspace_id=actor.workspace_id, clock=clock, created_by=actor.label
    )


def fit_all(database: Database, clock: Clock, *, workspace_id: int | None, args: dict[str, Any]) -> dict[str, Any]:
    """Fit one workspace (or every workspace with orders); returns the fits' ids and statuses."""
    # Imported here, not at the top: the fit needs scipy, and every worker and CLI process imports
    # this module to register the job; scipy's import alone is most of a second of their start-up.
    from siyu.analytics.clv.service import run_fit

    if workspace_id is not None:
        targets = [workspace_id]
    else:
        with database.transaction(read_only=True) as session:
            targets = list(
                session.scalars(
                    select(Workspace.id)
                    .where(exists().where(Order.workspace_id == Workspace.id))
                    .order_by(Workspace.id)
                )
            )
    end = date.fromisoformat(args["calibration_end"]) if args.get("calibration_end") else None
    fits: list[dict[str, Any]] = []
    for ws in targets:
        try:
            with database.transaction() as session:
                bind_workspace(session, ws)
                actor = Actor.system(ws, label=str(args.get("created_by") or "scheduler"))
                fit = run_fit(
                    session, actor=actor, clock=clock, calibration_end=end, holdout_days=args.get("holdout_days")
                )
                fits.append({"workspace_id": ws, "fit_id": fit.id, "status": str(fit.status)})
        except Exception as exc:
            logger.exception("CLV fit failed", extra={"workspace_id": ws})
            fit_id = _record_failure(database, clock, ws, args, end, exc)
            fits.append({"workspace_id": ws, "fit_id": fit_id, "status": "error"})
    return {"fits": fits}


def _record_failure(
    database: Database, clock: Clock, ws: int, args: dict[str, Any], end: date | None, exc: Exception
) -> int | None:
    """The fit's transaction was rolled back (its RUNNING row with it): store a FAILED fit with the
    error in a new transaction, so the page says what happened. The previous values are untouched."""
    try:
        with database.transaction() as session:
            bind_workspace(session, ws)
            settings = current_settings(session, ws, clock)
            fit = ClvFit(
                workspace_id=ws,
                status=ClvFitStatus.FAILED,
                calibration_end=end or brand_today(session, ws, clock),
                holdout_end=None,
                time_unit=settings.clv_time_unit if settings.clv_time_unit in ("day", "week") else "week",
                horizon_days=settings.clv_horizon_days,
                customers=0,
                params={},
                error=f"{type(exc).__name__}: {exc}"[:2000],
                created_by=str(args.get("created_by") or "scheduler"),
                started_at=clock.now(),
                finished_at=clock.now(),
            )
            session.add(fit)
            session.flush()
            return int(fit.id)
    except Exception:
        logger.exception("could not record the failed CLV fit", extra={"workspace_id": ws})
        return None


@job_actor(FIT_KIND)
def fit_job(job: JobContext) -> dict[str, Any]:
    return fit_all(get_database(), system_clock, workspace_id=job.workspace_id, args=job.args)


periodic(FIT_KIND, kind=FIT_KIND, every=lambda: timedelta(days=7))
