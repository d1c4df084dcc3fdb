"""Console pages of analytics: overview."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.analytics.overview.drill import drill_segment, parse_metric
from siyu.analytics.overview.report import (
    FILTER_FIELDS,
    TABLES,
    parse_params,
    pool_table,
    rate_labels,
    rates_table,
    table_of,
    trend_table,
)
from siyu.analytics.overview.schemas import Filters, Metric
from siyu.analytics.overview.service import overview
from siyu.analytics.scope import filter_choices
from siyu.analytics.tables import export_response
from siyu.auth.permissions import Scope
from siyu.kit.errors import InvalidInput
from siyu.web.deps import ConsoleCtx, Ctx, FormDep
from siyu.web.pages import error_text, redirect
from siyu.web.templating import render, translator

router = APIRouter(include_in_schema=False)


def _choices(ctx: Ctx, selected: Filters) -> dict[str, list[tuple[int, str]]]:
    """The filter drop-downs (`scope.filter_choices`: the first 500 by name plus the selected one;
    archived segments are not offered, the overview refuses them)."""
    ws = ctx.actor.workspace_id
    return {key: filter_choices(ctx.session, ws, key, getattr(selected, key)) for key in FILTER_FIELDS}


def _chart(o: Any) -> dict[str, Any]:
    return {
        "buckets": [r.start.isoformat() for r in o.trend],
        "pool": [r.pool for r in o.trend],
        "adds": [r.adds for r in o.trend],
        "deleted": [r.deleted_by_customer + r.deleted_by_staff for r in o.trend],
        "net": [r.net_growth for r in o.trend],
        "first_orders": [r.first_orders for r in o.trend],
        "repurchases": [r.repurchases for r in o.trend],
        "gmv_yuan": [r.gmv_fen / 100 for r in o.trend],
        "active": [r.active for r in o.trend],
        "deletion_rate": [None if r.deletion_rate is None else round(r.deletion_rate * 100, 2) for r in o.trend],
    }


@router.get("/analytics")
def overview_page(request: Request, ctx: ConsoleCtx) -> Response:
    """The dashboard; `?format=csv|xlsx&table=trend|pool|rates` downloads a table instead."""
    ctx.actor.require(Scope.ANALYTICS_READ)
    _ = translator(request)
    values = dict(request.query_params)
    error: str | None = None
    try:
        params = parse_params(ctx.session, workspace_id=ctx.actor.workspace_id, clock=ctx.clock, values=values)
        o = overview(
            ctx.session,
            actor=ctx.actor,
            period=params.period,
            grain=params.grain,
            filters=params.filters,
            clock=ctx.clock,
        )
    except InvalidInput as exc:
        if values.get("format"):
            raise
        error = error_text(request, exc)
        params = parse_params(ctx.session, workspace_id=ctx.actor.workspace_id, clock=ctx.clock, values={})
        o = overview(
            ctx.session,
            actor=ctx.actor,
            period=params.period,
            grain=params.grain,
            filters=params.filters,
            clock=ctx.clock,
        )
    fmt = values.get("format")
    if fmt:
        table = table_of(values.get("table") or "trend", o, _)
        return export_response(table, fmt, f"overview-{values.get('table') or 'trend'}-{o.period.start}-{o.period.end}")
    query = params.query()
    context = {
        "o": o,
        "params": params,
        "values": values if error else query,
        "error": error,
        "choices": _choices(ctx, params.filters),
        "chart": _chart(o),
        "trend": trend_table(o, _),
        "pool_tbl": pool_table(o, _),
        "rates_tbl": rates_table(o, _),
        "rate_labels": rate_labels(_),
        "export_base": {t: "/analytics?" + urlencode(query | {"table": t}) for t in TABLES},
        "drill_fields": {str(m): query | {"metric": str(m)} for m in Metric},
    }
    return render(request, "analytics/overview/index.html", context, status_code=422 if error else 200)


@router.post("/analytics/overview/drill")
def overview_drill(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Recompute the customers behind a stat card and open them as a static segment."""
    ctx.actor.require(Scope.ANALYTICS_WRITE)
    values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    params = parse_params(ctx.session, workspace_id=ctx.actor.workspace_id, clock=ctx.clock, values=values)
    segment, _members = drill_segment(
        ctx.session,
        actor=ctx.actor,
        metric=parse_metric(values.get("metric")),
        period=params.period,
        filters=params.filters,
        clock=ctx.clock,
    )
    return redirect(f"/segments/{segment.id}")
