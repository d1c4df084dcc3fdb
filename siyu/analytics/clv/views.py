"""Console page of analytics: super users, Pareto and CLV (`/analytics/clv`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.analytics.clv import service
from siyu.analytics.clv.pareto import MAX_WINDOW_DAYS, pareto_table
from siyu.analytics.clv.report import customers_report, pareto_report, validation_report
from siyu.analytics.clv.tasks import queue_fit
from siyu.analytics.tables import export_response
from siyu.auth.permissions import Scope
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import ClvFitStatus
from siyu.web.deps import ConsoleCtx, Ctx
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
TOP_CUSTOMERS = 20
EXPORT_LIMIT = 200


def _window(text: str | None) -> int | None:
    """`window_days` from the query string: None when blank, `InvalidInput` naming it when bad."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_WINDOW_DAYS:
        raise InvalidInput(
            f"window_days must be a whole number from 1 to {MAX_WINDOW_DAYS}", details={"field": "window_days"}
        )
    return int(value)


def _page_data(request: Request, ctx: Ctx, window_days: int | None) -> dict[str, Any]:
    _ = translator(request)
    pareto = pareto_table(ctx.session, actor=ctx.actor, clock=ctx.clock, window_days=window_days)
    fit = service.latest_fit(ctx.session, actor=ctx.actor)
    done = service.latest_done_fit(ctx.session, actor=ctx.actor)
    top = service.customer_values(ctx.session, actor=ctx.actor, limit=TOP_CUSTOMERS).items
    return {
        "pareto": pareto,
        "pareto_table": pareto_report(pareto, _),
        "fit": fit,
        "done": done,
        "validation_table": validation_report(done, _),
        "customers_table": customers_report(top, _),
        "supers": service.super_users(
            ctx.session, actor=ctx.actor, start=pareto.start, end=pareto.end, total_fen=pareto.revenue_fen
        ),
        "window_days": pareto.window_days,
    }


@router.get("/analytics/clv")
def clv_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.ANALYTICS_READ)
    errors: dict[str, str] = {}
    try:
        window = _window(request.query_params.get("window_days"))
    except InvalidInput as exc:
        errors["window_days"], window = error_text(request, exc), None
    context = _page_data(request, ctx, window) | {"errors": errors, "ClvFitStatus": ClvFitStatus}
    return render(request, "analytics/clv/index.html", context, status_code=422 if errors else 200)


@router.get("/analytics/clv/export")
def clv_export(request: Request, ctx: ConsoleCtx) -> Response:
    """`?table=pareto|validation|customers&format=csv|xlsx[&window_days=N]`."""
    ctx.actor.require(Scope.ANALYTICS_READ)
    _ = translator(request)
    which = request.query_params.get("table", "pareto")
    fmt = request.query_params.get("format", "csv")
    if which == "pareto":
        result = pareto_table(
            ctx.session, actor=ctx.actor, clock=ctx.clock, window_days=_window(request.query_params.get("window_days"))
        )
        return export_response(pareto_report(result, _), fmt, f"pareto-{result.end.isoformat()}")
    if which == "validation":
        return export_response(
            validation_report(service.latest_done_fit(ctx.session, actor=ctx.actor), _), fmt, "clv-validation"
        )
    if which == "customers":
        rows = service.customer_values(ctx.session, actor=ctx.actor, limit=EXPORT_LIMIT).items
        return export_response(customers_report(rows, _), fmt, "clv-customers")
    raise InvalidInput("table must be pareto, validation or customers", details={"field": "table"})


@router.post("/analytics/clv/fit")
def clv_fit(request: Request, ctx: ConsoleCtx) -> Response:
    """ "重新拟合": queue a fit and come back to the page."""
    _ = translator(request)
    queue_fit(ctx.session, actor=ctx.actor, clock=ctx.clock)
    flash(request, _("已开始重新拟合，完成后刷新本页查看结果。"))
    return redirect("/analytics/clv")


@router.post("/analytics/clv/super-users")
def clv_super_users(request: Request, ctx: ConsoleCtx) -> Response:
    """Create (or open) the tracked "超级用户" segment (creating it also needs segments:write)."""
    ctx.actor.require(Scope.ANALYTICS_WRITE)
    try:
        segment = service.ensure_super_user_segment(ctx.session, actor=ctx.actor, clock=ctx.clock)
    except PermissionDenied as exc:
        ctx.session.rollback()
        flash(request, error_text(request, exc), kind="danger")
        return redirect("/analytics/clv")
    return redirect(f"/segments/{segment.id}")
