"""JSON API of analytics: planning (history, fit check, KPI plans)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from siyu.analytics.planning import kpi
from siyu.analytics.planning.fit import FitInputs, fit_check, fit_json
from siyu.analytics.planning.history import history_json, measure_history
from siyu.analytics.planning.kpi import MAX_FEN
from siyu.analytics.planning.schemas import KpiPlanCreate
from siyu.analytics.planning.service import plan_input
from siyu.auth.permissions import Scope
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])
Reader = Annotated[Ctx, Depends(require(Scope.ANALYTICS_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.ANALYTICS_WRITE))]


@router.get("/history")
def get_history(ctx: Reader) -> dict[str, Any]:
    """Measured history over the last complete months (up to 12): every rate with its numbers."""
    return history_json(measure_history(ctx.session, actor=ctx.actor, clock=ctx.clock))


@router.get("/fit")
def get_fit(
    ctx: Reader,
    margin_bp: Annotated[
        int | None, Query(le=10_000, description="Overrides the settings' gross margin (4500 = 45 %).")
    ] = None,
    operating_cost_fen: Annotated[int | None, Query(le=MAX_FEN, description="Per member per month.")] = None,
    acquisition_cost_fen: Annotated[
        int | None, Query(le=MAX_FEN, description="Per member; default: measured CAC.")
    ] = None,
) -> dict[str, Any]:
    """The private-domain fit check (私域适配度) with its verdict."""
    inputs = FitInputs(margin_bp, operating_cost_fen, acquisition_cost_fen)
    return fit_json(fit_check(ctx.session, actor=ctx.actor, clock=ctx.clock, inputs=inputs))


@router.get("/kpi-plans")
def list_kpi_plans(ctx: Reader) -> dict[str, Any]:
    return {"items": [kpi.plan_json(p) for p in kpi.list_plans(ctx.session, actor=ctx.actor)]}


@router.post("/kpi-plans", status_code=201)
def create_kpi_plan(body: KpiPlanCreate, ctx: Writer) -> dict[str, Any]:
    """Save a plan; missing assumptions are filled from the measured history."""
    plan = plan_input(ctx.session, actor=ctx.actor, clock=ctx.clock, values=body.model_dump())
    return kpi.plan_json(kpi.create_plan(ctx.session, actor=ctx.actor, plan=plan, clock=ctx.clock))


@router.get("/kpi-plans/{plan_id}")
def get_kpi_plan(plan_id: IdPath, ctx: Reader) -> dict[str, Any]:
    """The plan with actuals per month, the months behind, and the current month's pace."""
    return kpi.progress_json(kpi.plan_progress(ctx.session, actor=ctx.actor, plan_id=plan_id, clock=ctx.clock))


@router.delete("/kpi-plans/{plan_id}", status_code=204)
def delete_kpi_plan(plan_id: IdPath, ctx: Writer) -> Response:
    kpi.delete_plan(ctx.session, actor=ctx.actor, plan_id=plan_id, clock=ctx.clock)
    return Response(status_code=204)
