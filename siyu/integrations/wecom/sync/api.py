"""REST API of sync runs, transfers and behaviour data (`/api/v1/integrations/wecom/...`).

- `GET /sync/runs`, `POST /sync` {"scope"} (queues a `wecom_sync` job; 202)
- `POST /transfers/check`, `POST /transfers` (submit; 422 naming the field when WeCom's limits block it),
  `GET /transfers`, `GET /transfers/unassigned?cursor=` (customers of members who left)
- `POST /behavior` {"start", "end"} (queues a `wecom_behavior` job; 202)
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from siyu.auth.permissions import Scope
from siyu.integrations.wecom.config import client_for, load_config
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.integrations.wecom.sync import transfers as service
from siyu.integrations.wecom.sync.service import SCOPES
from siyu.integrations.wecom.sync.tasks import BEHAVIOR_KIND, enqueue_sync
from siyu.jobs.service import enqueue
from siyu.kit.errors import Conflict, InvalidInput
from siyu.models import WecomSyncRun, WecomTransfer
from siyu.web.deps import Ctx, require

router = APIRouter(prefix="/api/v1/integrations/wecom", tags=["integrations"])
Reader = Annotated[Ctx, Depends(require(Scope.INTEGRATIONS_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.INTEGRATIONS_WRITE))]
MAX_IDS = 1000


class SyncIn(BaseModel):
    scope: str = "full"


class TransferIn(BaseModel):
    kind: str
    handover_staff_id: int = Field(gt=0)
    takeover_staff_id: int = Field(gt=0)
    customer_ids: list[int] = Field(default_factory=list, max_length=MAX_IDS)
    group_ids: list[int] = Field(default_factory=list, max_length=MAX_IDS)


class BehaviorIn(BaseModel):
    start: date | None = None
    end: date | None = None


def run_json(run: WecomSyncRun) -> dict[str, Any]:
    """A sync run as the API and page show it."""
    return {
        "id": run.id,
        "scope": run.scope,
        "status": str(run.status),
        "step": run.step,
        "counts": run.counts or {},
        "error": run.error,
        "job_id": run.job_id,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def transfer_json(row: WecomTransfer) -> dict[str, Any]:
    """A transfer row with its WeCom outcome."""
    return {
        "id": row.id,
        "kind": str(row.kind),
        "handover_staff_id": row.handover_staff_id,
        "takeover_staff_id": row.takeover_staff_id,
        "customer_id": row.customer_id,
        "group_id": row.group_id,
        "external_id": row.external_id,
        "status": str(row.status),
        "errcode": row.errcode,
        "error": row.error,
        "submitted_at": row.submitted_at.isoformat(),
        "takeover_at": row.takeover_at.isoformat() if row.takeover_at else None,
    }


def _config(ctx: Ctx) -> Any:
    try:
        return load_config(ctx.session, ctx.actor.workspace_id)
    except NotConfigured as exc:
        raise Conflict(str(exc), details={"field": "integration"}) from None


def _wecom(exc: WecomError) -> JSONResponse:
    code = 503 if exc.retryable else 502
    return JSONResponse(
        {"error": {"code": exc.reason, "message": str(exc), "details": {"errcode": exc.code}}}, status_code=code
    )


@router.get("/sync/runs")
def sync_runs(ctx: Reader) -> dict[str, Any]:
    """The latest 20 sync runs, newest first."""
    runs = ctx.session.scalars(
        select(WecomSyncRun)
        .where(WecomSyncRun.workspace_id == ctx.actor.workspace_id)
        .order_by(WecomSyncRun.started_at.desc(), WecomSyncRun.id.desc())
        .limit(20)
    )
    return {"items": [run_json(r) for r in runs]}


@router.post("/sync", status_code=202)
def sync_now(ctx: Writer, body: SyncIn) -> dict[str, Any]:
    """Queue a sync (resumes an unfinished run)."""
    if body.scope not in SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}", details={"field": "scope"})
    _config(ctx)
    return {
        "job_id": enqueue_sync(ctx.session, ctx.actor.workspace_id, ctx.clock, scope=body.scope, by=ctx.actor.label)
    }


@router.post("/transfers/check")
def transfers_check(ctx: Reader, body: TransferIn) -> dict[str, Any]:
    """WeCom's limits applied to a planned transfer (nothing is sent)."""
    check = service.check_transfer(
        ctx.session,
        ctx.actor.workspace_id,
        kind=body.kind,
        handover_staff_id=body.handover_staff_id,
        takeover_staff_id=body.takeover_staff_id,
        customer_ids=body.customer_ids,
        group_ids=body.group_ids,
        clock=ctx.clock,
    )
    return {
        "kind": str(check.kind),
        "ok": check.ok,
        "blocked": dict(check.blocked),
        "errors": check.errors,
        "notes": check.notes,
        "calls": check.calls,
    }


@router.post("/transfers", status_code=201, response_model=None)
def transfers_submit(ctx: Writer, body: TransferIn) -> dict[str, Any] | JSONResponse:
    """Submit a transfer; one row per customer/group with WeCom's per-row outcome."""
    config = _config(ctx)
    try:
        rows = service.submit_transfer(
            ctx.session,
            config,
            kind=body.kind,
            handover_staff_id=body.handover_staff_id,
            takeover_staff_id=body.takeover_staff_id,
            customer_ids=body.customer_ids,
            group_ids=body.group_ids,
            submitted_by=ctx.actor.label,
            clock=ctx.clock,
        )
    except NotConfigured as exc:
        raise Conflict(str(exc), details={"field": "integration"}) from None
    return {"items": [transfer_json(r) for r in rows]}


@router.get("/transfers")
def transfers_list(ctx: Reader) -> dict[str, Any]:
    """The latest 200 transfers, newest first."""
    return {"items": [transfer_json(r) for r in service.transfers_of(ctx.session, ctx.actor.workspace_id)]}


@router.get("/transfers/unassigned", response_model=None)
def transfers_unassigned(ctx: Reader, cursor: str = "") -> dict[str, Any] | JSONResponse:
    """One page of customers of members who left (`get_unassigned_list`)."""
    config = _config(ctx)
    try:
        info, next_cursor = service.unassigned(client_for(config), cursor=cursor[:200])
    except WecomError as exc:
        return _wecom(exc)
    return {"items": info, "next_cursor": next_cursor}


@router.post("/behavior", status_code=202)
def behavior_fetch(ctx: Writer, body: BehaviorIn) -> dict[str, Any]:
    """Queue a fetch of staff behaviour data for [start, end] (default: the last three days)."""
    if body.start and body.end and body.start > body.end:
        raise InvalidInput("start must not be after end", details={"field": "start"})
    if body.start and body.end and (body.end - body.start).days > 180:
        raise InvalidInput("at most 180 days at once", details={"field": "end"})
    _config(ctx)
    args = {k: v.isoformat() for k, v in (("start", body.start), ("end", body.end)) if v}
    job = enqueue(
        ctx.session,
        kind=BEHAVIOR_KIND,
        args=args,
        workspace_id=ctx.actor.workspace_id,
        clock=ctx.clock,
        created_by=ctx.actor.label,
    )
    return {"job_id": job.id}
