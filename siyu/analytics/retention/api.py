"""JSON API of analytics: retention (cohort tables, saved cohort reports, cell drill-downs)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from siyu.analytics import saved
from siyu.analytics.drill import segment_from_ids
from siyu.analytics.retention import service
from siyu.analytics.retention.schemas import CellIn, ReportIn, ReportRead, RunIn, parse_config
from siyu.auth.permissions import Scope
from siyu.models import ReportKind, SavedReport
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])
Reader = Annotated[Ctx, Depends(require(Scope.ANALYTICS_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.ANALYTICS_WRITE))]
KIND = ReportKind.RETENTION


def _report_read(report: SavedReport) -> ReportRead:
    return ReportRead(
        id=report.id,
        name=report.name,
        config=report.config,
        created_by=report.created_by,
        created_at=report.created_at.isoformat(),
        updated_at=report.updated_at.isoformat(),
    )


def _compute(ctx: Ctx, body: RunIn) -> service.CohortResult:
    config = parse_config(body.config)
    period = service.resolve_period(
        ctx.session, actor=ctx.actor, clock=ctx.clock, config=config, date_from=body.date_from, date_to=body.date_to
    )
    return service.cohort_table(ctx.session, actor=ctx.actor, config=config, period=period, clock=ctx.clock)


@router.post("/retention/run")
def run_retention(body: RunIn, ctx: Reader) -> dict[str, Any]:
    """Cohorts entering within [from, to] with retained counts and rates per offset (None: not reached yet)."""
    return service.result_json(_compute(ctx, body))


@router.post("/retention/cell")
def retention_cell(body: CellIn, ctx: Writer) -> dict[str, int]:
    """Recompute one cell and make a static segment of its customers."""
    config = parse_config(body.config)
    period = service.resolve_period(
        ctx.session, actor=ctx.actor, clock=ctx.clock, config=config, date_from=body.date_from, date_to=body.date_to
    )
    ids = service.cell_members(
        ctx.session,
        actor=ctx.actor,
        config=config,
        period=period,
        clock=ctx.clock,
        cohort=body.cohort,
        offset=body.offset,
    )
    segment = segment_from_ids(
        ctx.session,
        actor=ctx.actor,
        name=body.name or service.cell_name(config, body.cohort, body.offset),
        customer_ids=ids,
        source=service.cell_source(body.cohort, body.offset),
        clock=ctx.clock,
    )
    return {"segment_id": segment.id, "members": len(ids)}


@router.get("/retention/reports", response_model=list[ReportRead])
def list_reports(ctx: Reader) -> list[ReportRead]:
    return [_report_read(r) for r in saved.list_reports(ctx.session, actor=ctx.actor, kind=KIND)]


@router.post("/retention/reports", response_model=ReportRead, status_code=201)
def create_report(body: ReportIn, ctx: Writer) -> ReportRead:
    config = parse_config(body.config).as_dict()
    report = saved.save_report(ctx.session, actor=ctx.actor, kind=KIND, name=body.name, config=config, clock=ctx.clock)
    return _report_read(report)


@router.get("/retention/reports/{report_id}", response_model=ReportRead)
def get_report(report_id: IdPath, ctx: Reader) -> ReportRead:
    return _report_read(saved.get_report(ctx.session, actor=ctx.actor, kind=KIND, report_id=report_id))


@router.put("/retention/reports/{report_id}", response_model=ReportRead)
def update_report(report_id: IdPath, body: ReportIn, ctx: Writer) -> ReportRead:
    config = parse_config(body.config).as_dict()
    report = saved.save_report(
        ctx.session, actor=ctx.actor, kind=KIND, name=body.name, config=config, clock=ctx.clock, report_id=report_id
    )
    return _report_read(report)


@router.delete("/retention/reports/{report_id}", status_code=204)
def delete_report(report_id: IdPath, ctx: Writer) -> Response:
    saved.delete_report(ctx.session, actor=ctx.actor, kind=KIND, report_id=report_id, clock=ctx.clock)
    return Response(status_code=204)
