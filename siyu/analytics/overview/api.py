"""JSON API of analytics: overview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from siyu.analytics.overview.drill import drill_segment, parse_metric
from siyu.analytics.overview.report import parse_params
from siyu.analytics.overview.service import overview
from siyu.analytics.tables import clean
from siyu.auth.permissions import Scope
from siyu.web.deps import Ctx, require

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])
Reader = Annotated[Ctx, Depends(require(Scope.ANALYTICS_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.ANALYTICS_WRITE))]
IdQuery = Annotated[str | None, Query()]


def _num(value: Any) -> Any:
    return clean(value) if isinstance(value, float) else value


@router.get("/overview")
def get_overview(
    ctx: Reader,
    date_from: Annotated[str | None, Query(alias="from", description="First brand-local day (YYYY-MM-DD).")] = None,
    date_to: Annotated[str | None, Query(alias="to", description="Last brand-local day, default today.")] = None,
    grain: Annotated[str | None, Query(description="day | week | month")] = None,
    channel_id: IdQuery = None,
    store_id: IdQuery = None,
    staff_id: IdQuery = None,
    tag_id: IdQuery = None,
    segment_id: IdQuery = None,
) -> dict[str, Any]:
    """Pool, growth, orders, activity and the three rates for a period, with the previous period and trends."""
    values = {
        "from": date_from,
        "to": date_to,
        "grain": grain,
        "channel_id": channel_id,
        "store_id": store_id,
        "staff_id": staff_id,
        "tag_id": tag_id,
        "segment_id": segment_id,
    }
    p = parse_params(ctx.session, workspace_id=ctx.actor.workspace_id, clock=ctx.clock, values=values)
    o = overview(ctx.session, actor=ctx.actor, period=p.period, grain=p.grain, filters=p.filters, clock=ctx.clock)
    return {
        "from": o.period.start.isoformat(),
        "to": o.period.end.isoformat(),
        "grain": str(o.grain),
        "filters": vars(o.filters),
        "pool": vars(o.pool),
        "previous_pool": vars(o.previous_pool),
        "stats": {
            k: {"value": _num(s.value), "previous": _num(s.previous), "change": clean(s.change), "kind": s.kind}
            for k, s in o.stats.items()
        },
        "trend": [
            {k: _num(v) for k, v in vars(r).items()}
            | {"bucket": r.bucket.isoformat(), "start": r.start.isoformat(), "end": r.end.isoformat()}
            for r in o.trend
        ],
        "rates": [{k: _num(v) for k, v in vars(r).items()} for r in o.rates],
    }


class DrillIn(BaseModel):
    metric: str = Field(description="pool, wecom, group, official_account, sms, adds, deleted_by_customer, …")
    date_from: str | None = Field(default=None, alias="from")
    date_to: str | None = Field(default=None, alias="to")
    channel_id: int | None = None
    store_id: int | None = None
    staff_id: int | None = None
    tag_id: int | None = None
    segment_id: int | None = None


@router.post("/overview/drill", status_code=201)
def drill(body: DrillIn, ctx: Writer) -> dict[str, int]:
    """A static segment of the customers behind one stat card (recomputed here)."""
    values = {k: None if v is None else str(v) for k, v in body.model_dump(by_alias=True).items()}
    p = parse_params(ctx.session, workspace_id=ctx.actor.workspace_id, clock=ctx.clock, values=values)
    segment, members = drill_segment(
        ctx.session,
        actor=ctx.actor,
        metric=parse_metric(body.metric),
        period=p.period,
        filters=p.filters,
        clock=ctx.clock,
    )
    return {"segment_id": segment.id, "members": members}
