"""JSON API of analytics: RFM (figures and drill-downs) and, included here, the analytics settings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from siyu.analytics.drill import segment_from_ids
from siyu.analytics.rfm import reports
from siyu.analytics.rfm.schemas import RfmCellIn
from siyu.analytics.rfm.service import MAX_WINDOW_DAYS, compute_rfm, summary
from siyu.analytics.settings_views import api_router as settings_api_router
from siyu.analytics.tables import table_json
from siyu.auth.permissions import Scope
from siyu.kit.errors import InvalidInput
from siyu.web.deps import Ctx, require

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])
Reader = Annotated[Ctx, Depends(require(Scope.ANALYTICS_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.ANALYTICS_WRITE))]
WindowDays = Annotated[
    int | None, Query(ge=1, le=MAX_WINDOW_DAYS, description="Days of orders to look at; default from the settings.")
]


def _chinese(text: str) -> str:
    return text


@router.get("/rfm")
def get_rfm(ctx: Reader, window_days: WindowDays = None) -> dict[str, Any]:
    """Headline figures, the R × F grid (25 cells) and the named segments."""
    result = compute_rfm(ctx.session, actor=ctx.actor, clock=ctx.clock, window_days=window_days)
    return summary(result) | {
        "grid": table_json(reports.grid_table(result, _chinese)),
        "segments": table_json(reports.segments_table(result, _chinese)),
        "naming": [rule.as_dict() for rule in result.rules],
    }


@router.post("/rfm/cell")
def drill_rfm_cell(body: RfmCellIn, ctx: Writer) -> dict[str, Any]:
    """A static segment of one grid cell, one named segment or the "no recent orders" group."""
    if not body.no_recent_orders and not body.segment and (body.r is None or body.f is None):
        raise InvalidInput("give r and f, segment, or no_recent_orders", details={"field": "r"})
    result = compute_rfm(ctx.session, actor=ctx.actor, clock=ctx.clock, window_days=body.window_days)
    name, source, ids = reports.drill_target(
        ctx.session,
        actor=ctx.actor,
        result=result,
        r=body.r,
        f=body.f,
        segment=body.segment,
        no_recent_orders=body.no_recent_orders,
    )
    segment = segment_from_ids(
        ctx.session, actor=ctx.actor, name=body.name or name, customer_ids=ids, source=source, clock=ctx.clock
    )
    return {"segment_id": segment.id, "members": len(ids)}


router.include_router(settings_api_router)
