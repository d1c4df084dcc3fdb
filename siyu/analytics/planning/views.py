"""Console pages of analytics: planning — the fit check (/analytics/fit) and the KPI planner (/analytics/kpi)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.analytics.planning import kpi
from siyu.analytics.planning.fit import FitInputs, fit_check
from siyu.analytics.planning.history import History, measure_history, months_table
from siyu.analytics.planning.kpi import MAX_FEN
from siyu.analytics.planning.service import MAX_TEXT, plan_defaults, plan_input
from siyu.analytics.tables import export_response
from siyu.auth.permissions import Scope
from siyu.kit.errors import DomainError, InvalidInput
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
FIT_FIELDS = ("margin_pct", "operating_cost_yuan", "acquisition_cost_yuan")
PLAN_FIELDS = (
    "name",
    "first_month",
    "last_month",
    "start_pool",
    "start_buyers",
    "target_pool",
    "target_gmv_yuan",
    "monthly_deletion_rate",
    "first_order_rate",
    "repurchase_rate",
    "aov_yuan",
)


def _decimal(text: str | None, field: str, scale: int) -> int | None:
    """ "45.5" → 4550 with scale 100; blank → None; `InvalidInput` naming `field` otherwise."""
    value = (text or "").strip().replace(",", "")
    if not value:
        return None
    try:
        if len(value) > MAX_TEXT:
            raise InvalidOperation(value)
        number = Decimal(value)
        if not number.is_finite():
            raise InvalidOperation(value)
        result = int((number * scale).to_integral_value())
    except ArithmeticError:  # InvalidOperation, Overflow ("1e999999")
        raise InvalidInput(f"{field} must be a number", details={"field": field}) from None
    return result


def _fit_inputs(params: dict[str, str]) -> FitInputs:
    errors = []
    values: list[int | None] = []
    for field, scale in zip(FIT_FIELDS, (100, 100, 100), strict=True):
        try:
            values.append(_decimal(params.get(field), field, scale))
        except InvalidInput as exc:
            errors.append(exc)
            values.append(None)
    if errors:
        raise errors[0]
    margin, operating, acquisition = values
    if margin is not None and not 0 <= margin <= 10_000:
        raise InvalidInput("margin must be between 0 and 100 %", details={"field": "margin_pct"})
    for field, value in (("operating_cost_yuan", operating), ("acquisition_cost_yuan", acquisition)):
        if value is not None and value < 0:
            raise InvalidInput(f"{field} cannot be negative", details={"field": field})
        if value is not None and value > MAX_FEN:
            raise InvalidInput(f"{field} must be at most {MAX_FEN // 100} yuan", details={"field": field})
    return FitInputs(margin, operating, acquisition)


@router.get("/analytics/fit")
def fit_page(request: Request, ctx: ConsoleCtx) -> Response:
    """History, the entered economics and the verdict; `?format=csv|xlsx` exports the monthly history."""
    ctx.actor.require(Scope.ANALYTICS_READ)
    params = dict(request.query_params)
    errors: dict[str, str] = {}
    try:
        inputs = _fit_inputs(params)
    except InvalidInput as exc:
        errors[str(exc.details.get("field", "form"))] = error_text(request, exc)
        inputs = FitInputs()
    check = fit_check(ctx.session, actor=ctx.actor, clock=ctx.clock, inputs=inputs)
    table = months_table(check.history)
    if params.get("format"):
        return export_response(table, params["format"], "private-domain-history")
    chart = {
        "months": [m.month.isoformat()[:7] for m in check.history.months],
        "adds": [m.adds for m in check.history.months],
        "deletions": [m.deletions for m in check.history.months],
        "pool": [m.pool_end for m in check.history.months],
        "gmv_yuan": [round(m.gmv_fen / 100, 2) for m in check.history.months],
    }
    values = {field: params.get(field, "") for field in FIT_FIELDS}
    context = {
        "check": check,
        "history": check.history,
        "table": table,
        "chart": chart,
        "values": values,
        "errors": errors,
    }
    return render(request, "analytics/planning/fit.html", context, status_code=422 if errors else 200)


def _list_context(
    ctx: Ctx, values: dict[str, str] | None, errors: dict[str, str], history: History | None = None
) -> dict[str, Any]:
    if history is None:
        history = measure_history(ctx.session, actor=ctx.actor, clock=ctx.clock)
    return {
        "plans": kpi.list_plans(ctx.session, actor=ctx.actor),
        "history": history,
        "values": values or plan_defaults(history),
        "errors": errors,
    }


@router.get("/analytics/kpi")
def kpi_page(request: Request, ctx: ConsoleCtx) -> Response:
    """Saved plans and the new-plan form pre-filled from the measured history."""
    ctx.actor.require(Scope.ANALYTICS_READ)
    return render(request, "analytics/planning/kpi_list.html", _list_context(ctx, None, {}))


@router.post("/analytics/kpi")
def create_kpi_plan(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Save a plan and open it; field errors re-render the form (422) and save nothing."""
    ctx.actor.require(Scope.ANALYTICS_WRITE)
    values = {field: str(form.get(field) or "") for field in PLAN_FIELDS}
    history = measure_history(ctx.session, actor=ctx.actor, clock=ctx.clock)
    try:
        plan = plan_input(ctx.session, actor=ctx.actor, clock=ctx.clock, values=values, history=history)
        row = kpi.create_plan(ctx.session, actor=ctx.actor, plan=plan, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code not in (409, 422):
            raise
        ctx.session.rollback()
        field = str(exc.details.get("field", "form")) if isinstance(exc.details, dict) else "form"
        errors = {field: error_text(request, exc)}
        return render(
            request, "analytics/planning/kpi_list.html", _list_context(ctx, values, errors, history), status_code=422
        )
    flash(request, translator(request)("目标已保存"))
    return redirect(f"/analytics/kpi/{row.id}")


@router.get("/analytics/kpi/{plan_id}")
def kpi_detail(request: Request, plan_id: IdPath, ctx: ConsoleCtx) -> Response:
    """Plan vs actual per month, months behind and the current month's pace; `?format=` exports."""
    progress = kpi.plan_progress(ctx.session, actor=ctx.actor, plan_id=plan_id, clock=ctx.clock)
    table = kpi.progress_table(progress)
    fmt = request.query_params.get("format")
    if fmt:
        return export_response(table, fmt, f"kpi-plan-{plan_id}")
    chart = {
        "months": [m.month.isoformat()[:7] for m in progress.months],
        "plan_gmv": [round(m.plan["gmv_fen"] / 100, 2) for m in progress.months],
        "gmv": [None if m.actual["gmv_fen"] is None else round(m.actual["gmv_fen"] / 100, 2) for m in progress.months],
        "plan_pool": [m.plan["pool"] for m in progress.months],
        "pool": [m.actual["pool"] for m in progress.months],
    }
    return render(request, "analytics/planning/kpi_detail.html", {"progress": progress, "table": table, "chart": chart})


@router.post("/analytics/kpi/{plan_id}/delete")
def delete_kpi_plan(request: Request, plan_id: IdPath, ctx: ConsoleCtx) -> Response:
    kpi.delete_plan(ctx.session, actor=ctx.actor, plan_id=plan_id, clock=ctx.clock)
    flash(request, translator(request)("目标已删除"))
    return redirect("/analytics/kpi")
