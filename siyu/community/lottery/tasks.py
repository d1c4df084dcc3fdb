"""Background work of community lottery: draw every open draw whose `closes_at` has passed.

A periodic job (every five minutes) finds due draws per workspace and draws each in its own
transaction as the system actor; drawing is idempotent (a drawn draw is returned as it is), so the
job is safe to run twice or in two processes at once (the draw's row lock serialises them).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from siyu.auth.permissions import Actor
from siyu.community.lottery.drawing import due_draw_ids, run_draw
from siyu.db import Database, get_database
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.models import DrawStatus, LotteryDraw
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
DRAW_KIND = "lottery_draw_due"


def draw_due(database: Database, clock: Clock, *, workspace_id: int | None = None) -> dict[str, int]:
    """Draw every due draw; one failure is logged and the others go on."""
    with database.transaction(read_only=True) as session:
        query = select(LotteryDraw.workspace_id).where(LotteryDraw.status == DrawStatus.OPEN).distinct()
        if workspace_id is not None:
            query = query.where(LotteryDraw.workspace_id == workspace_id)
        workspaces = sorted(session.scalars(query))
    totals = {"drawn": 0, "failed": 0}
    for ws in workspaces:
        with database.transaction(read_only=True) as session:
            bind_workspace(session, ws)
            ids = due_draw_ids(session, workspace_id=ws, clock=clock)
        for draw_id in ids:
            try:
                with database.transaction() as session:
                    bind_workspace(session, ws)
                    run_draw(session, actor=Actor.system(ws, "lottery"), draw_id=draw_id, clock=clock)
                totals["drawn"] += 1
            except Exception:
                logger.exception("lottery draw failed", extra={"workspace_id": ws, "draw_id": draw_id})
                totals["failed"] += 1
    return totals


@job_actor(DRAW_KIND)
def draw_due_job(job: JobContext) -> dict[str, Any]:
    return draw_due(get_database(), system_clock, workspace_id=job.workspace_id)


periodic(DRAW_KIND, kind=DRAW_KIND, every=lambda: timedelta(minutes=5))
