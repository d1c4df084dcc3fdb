"""Console page of analytics: super users, Pareto and CLV (`/analytics/clv`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.analytics.clv import service
from siyu.analytics.clv.pareto import MAX_WINDOW_DAYS, drill_name, pareto_table, top_buyers
from siyu.analytics.clv.report import (
    customer_row,
    customers_columns,
    customers_report,
    pareto_report,
    validation_report,
)
from siyu.analytics.clv.tasks import queue_fit
from siyu.analytics.drill import segment_from_ids
from siyu.analytics.periods import parse_whole
from siyu.analytics.tables import MAX_XLSX_ROWS, export_response, stream_csv
from siyu.auth.permissions import Scope
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import ClvFitStatus
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, database
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator
from siyu.workspaces.scope import bind_workspace

router = APIRouter(include_in_schema=False)
TOP_CUSTOMERS = 20


def _window(text: str | None) -> int | None:
    """`window_days` from the query string or form: None when blank, `InvalidInput` naming it when bad."""
    if text is None or not text.strip():
        return None
    return parse_whole(text, "window_days", low=1, high=MAX_WINDOW_DAYS)


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
        return _customers_export(request, ctx, fmt)
    raise InvalidInput("table must be pareto, validation or customers", details={"field": "table"})


def _customers_export(request: Request, ctx: Ctx, fmt: str) -> Response:
    """Every customer with a predicted value, by rank: CSV streamed from a session of its own (the
    request's transaction ends before the body is sent); XLSX while it fits in one sheet."""
    _ = translator(request)
    if fmt not in ("csv", "xlsx"):
        raise InvalidInput("format must be csv or xlsx", details={"field": "format"})
    if fmt == "csv":
        ctx.actor.require(Scope.ANALYTICS_READ)
        actor, db = ctx.actor, database(request)

        def rows() -> Iterator[dict[str, Any]]:
            with db.transaction(read_only=True) as session:
                bind_workspace(session, actor.workspace_id)
                for row in service.every_customer_value(session, actor=actor):
                    yield customer_row(row)

        return stream_csv(customers_columns(_), rows(), "clv-customers")
    count = service.count_customer_values(ctx.session, actor=ctx.actor)
    if count > MAX_XLSX_ROWS:
        raise InvalidInput(
            f"{count:,} rows do not fit in one XLSX sheet; export CSV instead", details={"field": "format"}
        )
    values = service.every_customer_value(ctx.session, actor=ctx.actor)
    return export_response(customers_report(values, _), fmt, "clv-customers")


@router.post("/analytics/clv/pareto-drill")
def clv_pareto_drill(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """One Pareto row → a static segment of its buyers, recomputed from the posted window and top %."""
    ctx.actor.require(Scope.ANALYTICS_WRITE)
    window = _window(str(form.get("window_days") or ""))
    pct = parse_whole(str(form.get("top_pct") or ""), "top_pct", low=1, high=100)
    period, ids = top_buyers(ctx.session, actor=ctx.actor, clock=ctx.clock, top_pct=pct, window_days=window)
    segment = segment_from_ids(
        ctx.session,
        actor=ctx.actor,
        name=drill_name(period, pct),
        customer_ids=ids,
        source=f"analytics:clv:pareto:top{pct}",
        clock=ctx.clock,
    )
    return redirect(f"/segments/{segment.id}")


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
