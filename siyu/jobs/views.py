"""Console pages for background jobs: the list, and one job with live progress and its report."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.jobs.service import get_job, list_jobs
from siyu.models import JobStatus
from siyu.web.deps import ConsoleCtx, IdPath
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


@router.get("/jobs")
def jobs_page(request: Request, ctx: ConsoleCtx, cursor: str | None = None) -> Response:
    ctx.actor.require(Scope.JOBS_READ)
    page = list_jobs(ctx.session, workspace_id=ctx.actor.workspace_id, cursor=cursor, limit=50)
    next_url = f"/jobs?cursor={page.next_cursor}" if page.next_cursor else None
    return render(request, "jobs/list.html", {"jobs": page.items, "next_url": next_url})


@router.get("/jobs/{job_id}")
def job_page(request: Request, ctx: ConsoleCtx, job_id: IdPath) -> Response:
    """One job; while it is queued or running the status card polls itself every second."""
    ctx.actor.require(Scope.JOBS_READ)
    job = get_job(ctx.session, workspace_id=ctx.actor.workspace_id, job_id=job_id)
    percent = None
    if job.progress_total:
        percent = min(100, round(job.progress_done * 100 / job.progress_total))
    elif job.status == JobStatus.SUCCEEDED:
        percent = 100
    context = {"job": job, "active": job.status in ACTIVE, "percent": percent, "result": job.result or {}}
    if request.headers.get("hx-request"):
        return render(request, "jobs/_status.html", context)
    return render(request, "jobs/detail.html", context)
