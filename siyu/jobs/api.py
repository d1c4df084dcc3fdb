"""HTTP API for background jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from siyu.auth.permissions import Scope
from siyu.jobs.service import get_job, list_jobs
from siyu.models import Job
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["jobs"])
Reader = Annotated[Ctx, Depends(require(Scope.JOBS_READ))]


def job_read(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress_done": job.progress_done,
        "progress_total": job.progress_total,
        "result": job.result,
        "error": job.error,
        "attempts": job.attempts,
        "created_by": job.created_by,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


@router.get("/jobs")
def jobs(ctx: Reader, cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    page = list_jobs(ctx.session, workspace_id=ctx.actor.workspace_id, cursor=cursor, limit=limit)
    return {"items": [job_read(j) for j in page.items], "next_cursor": page.next_cursor}


@router.get("/jobs/{job_id}")
def job(job_id: IdPath, ctx: Reader) -> dict[str, Any]:
    return job_read(get_job(ctx.session, workspace_id=ctx.actor.workspace_id, job_id=job_id))
