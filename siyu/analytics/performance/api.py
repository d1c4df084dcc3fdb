"""JSON API of analytics: channel ROI, staff performance and campaign results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select

from siyu.analytics.drill import segment_from_ids
from siyu.analytics.performance import report
from siyu.analytics.performance.campaigns import MAX_OFFSET, campaign_results
from siyu.analytics.performance.common import period_from
from siyu.analytics.performance.roi import acquired_customers, channel_roi
from siyu.analytics.performance.schemas import DrillOut, RoiCellIn, StaffCellIn
from siyu.analytics.performance.staff import cell_customers, staff_performance
from siyu.analytics.tables import table_json
from siyu.auth.permissions import Scope
from siyu.kit.ids import MAX_ID
from siyu.models import SegmentMember
from siyu.web.deps import Ctx, require

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

Reader = Annotated[Ctx, Depends(require(Scope.ANALYTICS_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.ANALYTICS_WRITE))]
From = Annotated[str | None, Query(alias="from", description="First brand-local day (YYYY-MM-DD).")]
To = Annotated[str | None, Query(alias="to", description="Last brand-local day; default today.")]


@router.get("/roi")
def roi(ctx: Reader, date_from: From = None, date_to: To = None) -> dict[str, Any]:
    """Per channel: adds, cost, CPA, attributed GMV, ROI, 30/90/365-day GMV per acquired customer, payback."""
    period = period_from(ctx.session, ctx.actor, ctx.clock, date_from, date_to)
    result = channel_roi(ctx.session, actor=ctx.actor, period=period, clock=ctx.clock)
    return {
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "gross_margin_bp": result.margin_bp,
        "table": table_json(report.roi_table(result)),
    }


@router.get("/staff")
def staff(
    ctx: Reader,
    date_from: From = None,
    date_to: To = None,
    store_id: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None,
    sort: str | None = None,
) -> dict[str, Any]:
    """Per staff member: held, adds, deletions, messages, tasks, first orders and GMV; ranked by `sort`."""
    period = period_from(ctx.session, ctx.actor, ctx.clock, date_from, date_to)
    result = staff_performance(
        ctx.session, actor=ctx.actor, period=period, clock=ctx.clock, store_id=store_id, sort=sort
    )
    return {
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "store_id": store_id,
        "sort": result.sort,
        "table": table_json(report.staff_table(result)),
    }


@router.post("/roi/acquired", response_model=DrillOut)
def roi_acquired(ctx: Writer, body: RoiCellIn) -> DrillOut:
    """A channel's acquired customers in the period as a static segment (analytics:write)."""
    period = period_from(ctx.session, ctx.actor, ctx.clock, body.date_from, body.date_to)
    ids = acquired_customers(ctx.session, actor=ctx.actor, period=period, channel_id=body.channel_id)
    segment = segment_from_ids(
        ctx.session,
        actor=ctx.actor,
        name=body.name or f"渠道 ROI 新获客户 #{body.channel_id} {period.start}~{period.end}",
        customer_ids=ids,
        source="analytics:roi:acquired",
        clock=ctx.clock,
    )
    return _drilled(ctx, segment.id)


@router.post("/staff/cell", response_model=DrillOut)
def staff_cell(ctx: Writer, body: StaffCellIn) -> DrillOut:
    """The customers behind one staff cell as a static segment (analytics:write)."""
    period = period_from(ctx.session, ctx.actor, ctx.clock, body.date_from, body.date_to)
    ids = cell_customers(ctx.session, actor=ctx.actor, period=period, staff_id=body.staff_id, cell=body.cell)
    segment = segment_from_ids(
        ctx.session,
        actor=ctx.actor,
        name=body.name or f"员工绩效 {body.cell} #{body.staff_id} {period.start}~{period.end}",
        customer_ids=ids,
        source=f"analytics:staff:{body.cell}",
        clock=ctx.clock,
    )
    return _drilled(ctx, segment.id)


def _drilled(ctx: Ctx, segment_id: int) -> DrillOut:
    members = ctx.session.scalar(
        select(func.count()).select_from(SegmentMember).where(SegmentMember.segment_id == segment_id)
    )
    return DrillOut(segment_id=segment_id, members=int(members or 0))


@router.get("/campaigns")
def campaigns(
    ctx: Reader,
    date_from: From = None,
    date_to: To = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Page offset (per kind).")] = 0,
) -> dict[str, Any]:
    """Broadcasts and journeys in the range: treated vs holdout conversion and uplift (50 of each per page)."""
    period = period_from(ctx.session, ctx.actor, ctx.clock, date_from, date_to)
    result = campaign_results(ctx.session, actor=ctx.actor, period=period, clock=ctx.clock, offset=offset)
    table = report.campaigns_table(result)
    body = table_json(table)
    for row, raw in zip(body["rows"], table.rows, strict=True):
        row["kind"], row["id"], row["url"] = raw["kind"], raw["id"], raw["url"]
    return {
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "offset": result.offset,
        "limit": result.limit,
        "more": result.more,
        "table": body,
    }
