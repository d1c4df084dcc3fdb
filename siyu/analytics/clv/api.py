"""JSON API of analytics: the Pareto table, CLV fits, customer values and the super-user segment."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from siyu.analytics.clv import service
from siyu.analytics.clv.pareto import MAX_WINDOW_DAYS, drill_name, pareto_table, top_buyers
from siyu.analytics.clv.tasks import queue_fit
from siyu.analytics.drill import MAX_NAME, segment_from_ids
from siyu.analytics.tables import clean
from siyu.auth.permissions import Scope
from siyu.models import ClvFit
from siyu.web.deps import Ctx, require

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])
Reader = Annotated[Ctx, Depends(require(Scope.ANALYTICS_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.ANALYTICS_WRITE))]


class FitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calibration_end: date | None = Field(None, description="Fit orders up to this brand-local day (default today).")
    holdout_days: int | None = Field(None, ge=0, le=service.MAX_HOLDOUT_DAYS, description="Validation hold-out (90).")


class ParetoDrillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    top_pct: int = Field(..., ge=1, le=100, description="The top p % of buyers (the Pareto rows: 1, 5, 10, 20).")
    window_days: int | None = Field(None, ge=1, le=MAX_WINDOW_DAYS, description="Default: the RFM window.")
    name: str | None = Field(None, max_length=MAX_NAME, description="Segment name (default: one naming the window).")


def _floats(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {k: clean(v) if isinstance(v, float) else v for k, v in doc.items()}


def fit_json(fit: ClvFit | None) -> dict[str, Any] | None:
    """A fit for the API (None when there is none); floats never NaN."""
    if fit is None:
        return None
    return {
        "id": fit.id,
        "status": str(fit.status),
        "calibration_end": fit.calibration_end.isoformat(),
        "time_unit": fit.time_unit,
        "horizon_days": fit.horizon_days,
        "customers": fit.customers,
        "params": _floats(fit.params),
        "validation": fit.validation,
        "error": fit.error,
        "started_at": fit.started_at.isoformat(),
        "finished_at": fit.finished_at.isoformat() if fit.finished_at else None,
    }


@router.get("/pareto", summary="Share of revenue from the top 1/5/10/20 % of customers")
def get_pareto(
    ctx: Reader, window_days: Annotated[int | None, Query(ge=1, le=MAX_WINDOW_DAYS)] = None
) -> dict[str, Any]:
    result = pareto_table(ctx.session, actor=ctx.actor, clock=ctx.clock, window_days=window_days)
    out = asdict(result)
    out["start"], out["end"] = result.start.isoformat(), result.end.isoformat()
    return out


@router.post("/pareto/drill", summary="A static segment of the top p % of buyers in the Pareto window")
def post_pareto_drill(body: ParetoDrillIn, ctx: Writer) -> dict[str, Any]:
    period, ids = top_buyers(
        ctx.session, actor=ctx.actor, clock=ctx.clock, top_pct=body.top_pct, window_days=body.window_days
    )
    segment = segment_from_ids(
        ctx.session,
        actor=ctx.actor,
        name=body.name or drill_name(period, body.top_pct),
        customer_ids=ids,
        source=f"analytics:clv:pareto:top{body.top_pct}",
        clock=ctx.clock,
    )
    return {"segment_id": segment.id, "members": segment.member_count}


@router.post("/clv/fits", status_code=202, summary="Queue a CLV fit (BG/NBD + Gamma-Gamma)")
def post_fit(ctx: Writer, body: FitRequest | None = None) -> dict[str, Any]:
    body = body or FitRequest.model_validate({})
    job = queue_fit(
        ctx.session,
        actor=ctx.actor,
        clock=ctx.clock,
        calibration_end=body.calibration_end,
        holdout_days=body.holdout_days,
    )
    return {"job_id": job.id, "status": str(job.status)}


@router.get("/clv/fits/latest", summary="The latest CLV fit and the super users it flagged")
def get_latest_fit(ctx: Reader) -> dict[str, Any]:
    fit = service.latest_fit(ctx.session, actor=ctx.actor)
    done = service.latest_done_fit(ctx.session, actor=ctx.actor)
    return {"fit": fit_json(fit), "values_from": fit_json(done) if done is not fit else None}


@router.get("/clv/customers", summary="Customers by predicted value, highest first")
def get_customers(
    ctx: Reader, limit: Annotated[int, Query(ge=1, le=200)] = 50, cursor: str | None = None
) -> dict[str, Any]:
    page = service.customer_values(ctx.session, actor=ctx.actor, limit=limit, cursor=cursor)
    return {
        "items": [
            {
                "customer_id": row.value.customer_id,
                "name": row.name,
                "rank": row.value.value_rank,
                "frequency": row.value.frequency,
                "recency": row.value.recency,
                "age": row.value.age,
                "average_spend_fen": row.value.average_spend_fen,
                "expected_purchases": clean(row.value.expected_purchases),
                "p_alive": clean(row.value.p_alive),
                "expected_spend_fen": row.value.expected_spend_fen,
                "expected_value_fen": row.value.expected_value_fen,
                "is_super_user": row.value.is_super_user,
            }
            for row in page.items
        ],
        "next_cursor": page.next_cursor,
    }


@router.post("/clv/super-user-segment", summary="Create (or find) the tracked 超级用户 segment")
def post_super_user_segment(ctx: Writer) -> dict[str, Any]:
    segment = service.ensure_super_user_segment(ctx.session, actor=ctx.actor, clock=ctx.clock)
    return {"segment_id": segment.id, "name": segment.name}
