"""JSON API of broadcasts: CRUD, submit, approve, cancel, forecast, results."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from siyu.auth.permissions import Scope
from siyu.campaigns.broadcasts import service
from siyu.campaigns.broadcasts.forecast import forecast
from siyu.campaigns.broadcasts.schemas import BroadcastIn
from siyu.models import Broadcast, BroadcastStatus
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["broadcasts"])
Reader = Annotated[Ctx, Depends(require(Scope.TOUCH_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.TOUCH_WRITE))]
Approver = Annotated[Ctx, Depends(require(Scope.TOUCH_APPROVE))]


class BroadcastRead(BaseModel):
    id: int
    name: str
    status: str
    segment_id: int
    channel_account_ids: list[int]
    variants: list[dict[str, Any]]
    holdout_pct: int
    goal: dict[str, Any]
    brief: dict[str, Any]
    priority: int
    quiet_hours: str
    scheduled_at: datetime | None
    audience_size: int | None
    requested_by: str | None
    approved_by: str | None
    approved_at: datetime | None
    started_at: datetime | None
    planned_at: datetime | None
    finished_at: datetime | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime


def broadcast_read(row: Broadcast) -> BroadcastRead:
    return BroadcastRead(
        id=row.id,
        name=row.name,
        status=str(row.status),
        segment_id=row.segment_id,
        channel_account_ids=list(row.channel_account_ids or []),
        variants=list(row.variants or []),
        holdout_pct=row.holdout_pct,
        goal=dict(row.goal or {}),
        brief=dict(row.brief or {}),
        priority=row.priority,
        quiet_hours=str(row.quiet_hours),
        scheduled_at=row.scheduled_at,
        audience_size=row.audience_size,
        requested_by=row.requested_by,
        approved_by=row.approved_by,
        approved_at=row.approved_at,
        started_at=row.started_at,
        planned_at=row.planned_at,
        finished_at=row.finished_at,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class ForecastRead(BaseModel):
    audience: int
    sampled: int
    by_outcome: dict[str, int]
    sendable: int
    needs_approval: bool


@router.get("/broadcasts", response_model=list[BroadcastRead])
def list_broadcasts(ctx: Reader, status: BroadcastStatus | None = None) -> list[BroadcastRead]:
    """Newest first (at most 500), optionally of one status."""
    return [broadcast_read(b) for b in service.list_broadcasts(ctx.session, ctx.actor, status=status)]


@router.post("/broadcasts", status_code=201, response_model=BroadcastRead)
def create_broadcast(body: BroadcastIn, ctx: Writer) -> BroadcastRead:
    """Save a draft (nothing is sent until it is submitted)."""
    return broadcast_read(service.create_broadcast(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.post("/broadcasts/forecast", response_model=ForecastRead)
def forecast_broadcast(body: BroadcastIn, ctx: Reader) -> ForecastRead:
    """A dry run: the audience and how many would be held out, suppressed (by reason) or queued.
    Nothing is written."""
    result = forecast(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock)
    return ForecastRead(**dataclasses.asdict(result))


@router.get("/broadcasts/{broadcast_id}", response_model=BroadcastRead)
def get_broadcast(broadcast_id: IdPath, ctx: Reader) -> BroadcastRead:
    return broadcast_read(service.get_broadcast(ctx.session, ctx.actor, broadcast_id))


@router.put("/broadcasts/{broadcast_id}", response_model=BroadcastRead)
def update_broadcast(broadcast_id: IdPath, body: BroadcastIn, ctx: Writer) -> BroadcastRead:
    """Change a draft (one awaiting approval goes back to draft); 409 once it is scheduled."""
    row = service.update_broadcast(ctx.session, actor=ctx.actor, broadcast_id=broadcast_id, data=body, clock=ctx.clock)
    return broadcast_read(row)


@router.post("/broadcasts/{broadcast_id}/submit", response_model=BroadcastRead)
def submit_broadcast(broadcast_id: IdPath, ctx: Writer) -> BroadcastRead:
    """Schedule it, or (over the approval threshold, without touch:approve) wait for an admin."""
    return broadcast_read(
        service.submit_broadcast(ctx.session, actor=ctx.actor, broadcast_id=broadcast_id, clock=ctx.clock)
    )


@router.post("/broadcasts/{broadcast_id}/approve", response_model=BroadcastRead)
def approve_broadcast(broadcast_id: IdPath, ctx: Approver) -> BroadcastRead:
    return broadcast_read(
        service.approve_broadcast(ctx.session, actor=ctx.actor, broadcast_id=broadcast_id, clock=ctx.clock)
    )


@router.post("/broadcasts/{broadcast_id}/cancel", response_model=BroadcastRead)
def cancel_broadcast(broadcast_id: IdPath, ctx: Writer) -> BroadcastRead:
    """Stop it: deliveries not sent yet are suppressed and their cap slots given back."""
    return broadcast_read(
        service.cancel_broadcast(ctx.session, actor=ctx.actor, broadcast_id=broadcast_id, clock=ctx.clock)
    )


@router.get("/broadcasts/{broadcast_id}/results")
def broadcast_results(broadcast_id: IdPath, ctx: Reader) -> dict[str, Any]:
    """Delivery numbers, suppressions by reason, variants, goal conversions and the uplift over
    the holdout (docs/touch-results.md defines them)."""
    from siyu.campaigns.results import broadcast_results as compute  # the heavier results module loads on use

    results = compute(ctx.session, actor=ctx.actor, broadcast_id=broadcast_id, clock=ctx.clock)
    body: dict[str, Any] = {"broadcast": broadcast_read(results.broadcast).model_dump(mode="json")}
    for field in dataclasses.fields(results):
        if field.name == "broadcast":
            continue
        value = getattr(results, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        elif isinstance(value, list):
            value = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]  # type: ignore[arg-type]
        body[field.name] = value
    if results.treated is not None:
        body["treated"]["rate"] = results.treated.rate
    if results.holdout is not None:
        body["holdout"]["rate"] = results.holdout.rate
    return body
