"""Console pages of analytics: RFM (`/analytics/rfm`), its exports and drill-downs; includes the settings page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.analytics.drill import segment_from_ids
from siyu.analytics.periods import parse_whole
from siyu.analytics.rfm import reports
from siyu.analytics.rfm.service import MAX_WINDOW_DAYS, RfmResult, compute_rfm, summary
from siyu.analytics.settings_views import router as settings_router
from siyu.analytics.tables import EXPORT_FORMATS, ReportTable, export_response, stream_csv
from siyu.auth.permissions import Scope
from siyu.kit.errors import InvalidInput
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, database
from siyu.web.pages import error_text, redirect
from siyu.web.templating import render, request_locale, translator
from siyu.workspaces.scope import bind_workspace

router = APIRouter(include_in_schema=False)
EXPORT_TABLES = ("grid", "segments", "customers")


def _window_days(text: str | None) -> int | None:
    """The typed window (1–1095 days), or None when blank (the settings' window)."""
    if not (text or "").strip():
        return None
    return parse_whole(text, "window_days", low=1, high=MAX_WINDOW_DAYS)


def _english(request: Request) -> bool:
    return request_locale(request).startswith("en")


def _compute(request: Request, ctx: Ctx) -> tuple[RfmResult, dict[str, str]]:
    """The RFM for the page's window; a bad window falls back to the settings' and keeps the message."""
    try:
        days = _window_days(request.query_params.get("window_days"))
        return compute_rfm(ctx.session, actor=ctx.actor, clock=ctx.clock, window_days=days), {}
    except InvalidInput as exc:
        errors = {"window_days": error_text(request, exc)}
    return compute_rfm(ctx.session, actor=ctx.actor, clock=ctx.clock), errors


def _chart(result: RfmResult) -> dict[str, Any]:
    counts, revenue = reports.grid_cells(result)
    return {
        "cells": [
            [f - 1, r - 1, int(counts[r - 1, f - 1]), int(revenue[r - 1, f - 1])]
            for r in range(1, 6)
            for f in range(1, 6)
        ],
        "max": int(counts.max()) if result.scored else 0,
    }


@router.get("/analytics/rfm")
def rfm_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.ANALYTICS_READ)
    result, errors = _compute(request, ctx)
    _ = translator(request)
    english = _english(request)
    context = {
        "summary": summary(result),
        "grid": reports.grid_table(result, _),
        "segments": reports.segments_table(result, _, english=english),
        "chart": _chart(result),
        "errors": errors,
        "window_days": request.query_params.get("window_days", "") if errors else str(result.window.days),
    }
    return render(request, "analytics/rfm/page.html", context, status_code=422 if errors else 200)


@router.get("/analytics/rfm/export")
def rfm_export(request: Request, ctx: ConsoleCtx) -> Response:
    """`?table=grid|segments|customers&format=csv|xlsx[&window_days=N]`; `customers` as CSV is streamed."""
    ctx.actor.require(Scope.ANALYTICS_READ)
    which = request.query_params.get("table", "segments")
    if which not in EXPORT_TABLES:
        raise InvalidInput("table must be grid, segments or customers", details={"field": "table"})
    fmt = request.query_params.get("format", "csv")
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput("format must be csv or xlsx", details={"field": "format"})
    days = _window_days(request.query_params.get("window_days"))
    result = compute_rfm(ctx.session, actor=ctx.actor, clock=ctx.clock, window_days=days)
    _ = translator(request)
    filename = f"rfm-{which}-{result.as_of.isoformat()}"
    table: ReportTable
    if which == "grid":
        table = reports.grid_table(result, _)
    elif which == "segments":
        table = reports.segments_table(result, _, english=_english(request))
    elif fmt == "csv":
        return _stream_customers(request, ctx, result, filename)
    else:
        table = reports.customers_table(ctx.session, actor=ctx.actor, result=result, _=_, english=_english(request))
    return export_response(table, fmt, filename)


def _stream_customers(request: Request, ctx: Ctx, result: RfmResult, filename: str) -> Response:
    """The per-customer CSV, streamed: names are read chunk by chunk from a session of its own
    (the request's transaction ends before the body is sent); only the numpy arrays stay in memory."""
    actor, db, english = ctx.actor, database(request), _english(request)

    def rows() -> Iterator[dict[str, Any]]:
        with db.transaction(read_only=True) as session:
            bind_workspace(session, actor.workspace_id)
            yield from reports.customer_rows(session, actor=actor, result=result, english=english)

    return stream_csv(reports.customer_columns(translator(request)), rows(), filename)


@router.post("/analytics/rfm/cell")
def rfm_drill(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Recompute the RFM for the posted window and make a static segment of the chosen cell or group."""
    ctx.actor.require(Scope.ANALYTICS_WRITE)
    result = compute_rfm(
        ctx.session, actor=ctx.actor, clock=ctx.clock, window_days=_window_days(str(form.get("window_days") or ""))
    )
    name, source, ids = reports.drill_target(
        ctx.session,
        actor=ctx.actor,
        result=result,
        r=form.get("r"),
        f=form.get("f"),
        segment=str(form.get("segment") or "") or None,
        no_recent_orders=form.get("no_recent_orders") == "1",
        english=_english(request),
    )
    segment = segment_from_ids(
        ctx.session, actor=ctx.actor, name=name, customer_ids=ids, source=source, clock=ctx.clock
    )
    return redirect(f"/segments/{segment.id}")


router.include_router(settings_router)
