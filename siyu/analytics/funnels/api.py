"""JSON API of analytics: funnels (run, saved funnels, drop-off and reached drills)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from siyu.analytics.funnels import service
from siyu.analytics.funnels.report import result_json
from siyu.analytics.funnels.schemas import FunnelDropOff, FunnelReached, FunnelRun, FunnelSave
from siyu.auth.permissions import Scope
from siyu.models import SavedReport, Segment
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

Reader = Annotated[Ctx, Depends(require(Scope.ANALYTICS_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.ANALYTICS_WRITE))]


class SavedFunnelRead(BaseModel):
    id: int
    name: str
    definition: dict[str, Any]
    created_by: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, report: SavedReport) -> SavedFunnelRead:
        return cls(
            id=report.id,
            name=report.name,
            definition=report.config,
            created_by=report.created_by,
            created_at=report.created_at,
            updated_at=report.updated_at,
        )


class DropOffRead(BaseModel):
    """A drill's segment and its member count."""

    segment_id: int
    members: int


@router.post("/funnels/run")
def run_funnel(body: FunnelRun, ctx: Reader) -> dict[str, Any]:
    """Per-step counts, conversions and median hours, in total and per breakdown value."""
    period = service.resolve_period(
        ctx.session, actor=ctx.actor, clock=ctx.clock, date_from=body.date_from, date_to=body.date_to
    )
    definition = service.resolve_definition(
        ctx.session, actor=ctx.actor, definition=body.definition, report_id=body.report_id
    )
    result = service.run_funnel(ctx.session, actor=ctx.actor, definition=definition, period=period, clock=ctx.clock)
    return result_json(result)


def _drill(body: FunnelDropOff | FunnelReached, ctx: Ctx, make: Callable[..., tuple[Segment, int]]) -> DropOffRead:
    """Recompute the funnel the body describes and save the customers `make` picks as a segment."""
    period = service.resolve_period(
        ctx.session, actor=ctx.actor, clock=ctx.clock, date_from=body.date_from, date_to=body.date_to
    )
    definition = service.resolve_definition(
        ctx.session, actor=ctx.actor, definition=body.definition, report_id=body.report_id
    )
    segment, members = make(
        ctx.session,
        actor=ctx.actor,
        definition=definition,
        period=period,
        step=body.step,
        clock=ctx.clock,
        breakdown_value=body.breakdown_value,
        name=body.name,
    )
    return DropOffRead(segment_id=segment.id, members=members)


@router.post("/funnels/drop-off")
def drop_off(body: FunnelDropOff, ctx: Writer) -> DropOffRead:
    """The customers who reached `step` and not the next one, as a new static segment."""
    return _drill(body, ctx, service.drop_off_segment)


@router.post("/funnels/reached")
def reached(body: FunnelReached, ctx: Writer) -> DropOffRead:
    """The customers who reached `step` (in total or in `breakdown_value`'s group), as a new static segment."""
    return _drill(body, ctx, service.reached_segment)


@router.get("/funnels")
def list_funnels(ctx: Reader) -> list[SavedFunnelRead]:
    return [SavedFunnelRead.of(r) for r in service.list_funnels(ctx.session, actor=ctx.actor)]


@router.post("/funnels", status_code=201)
def create_funnel(body: FunnelSave, ctx: Writer) -> SavedFunnelRead:
    report = service.save_funnel(
        ctx.session, actor=ctx.actor, name=body.name, definition=body.definition, clock=ctx.clock
    )
    return SavedFunnelRead.of(report)


@router.get("/funnels/{report_id}")
def get_funnel(report_id: IdPath, ctx: Reader) -> SavedFunnelRead:
    return SavedFunnelRead.of(service.get_funnel(ctx.session, actor=ctx.actor, report_id=report_id))


@router.put("/funnels/{report_id}")
def update_funnel(report_id: IdPath, body: FunnelSave, ctx: Writer) -> SavedFunnelRead:
    report = service.save_funnel(
        ctx.session, actor=ctx.actor, name=body.name, definition=body.definition, clock=ctx.clock, report_id=report_id
    )
    return SavedFunnelRead.of(report)


@router.delete("/funnels/{report_id}", status_code=204)
def delete_funnel(report_id: IdPath, ctx: Writer) -> None:
    service.delete_funnel(ctx.session, actor=ctx.actor, report_id=report_id, clock=ctx.clock)
