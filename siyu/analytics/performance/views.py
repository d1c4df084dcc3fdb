"""Console pages of analytics: channel ROI, staff performance and campaign results (with exports and drills)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.analytics.drill import segment_from_ids
from siyu.analytics.performance import report
from siyu.analytics.performance.campaigns import campaign_results, parse_offset
from siyu.analytics.performance.common import period_from
from siyu.analytics.performance.roi import WINDOWS, acquired_customers, channel_roi
from siyu.analytics.performance.staff import SORT_KEYS, cell_customers, staff_performance
from siyu.analytics.scope import filter_choices
from siyu.analytics.tables import ReportTable, export_response
from siyu.auth.permissions import Scope
from siyu.kit.errors import InvalidInput
from siyu.kit.ids import parse_id
from siyu.models import Channel, Staff
from siyu.web.deps import ConsoleCtx, FormDep
from siyu.web.pages import error_text, redirect
from siyu.web.templating import render, translator

router = APIRouter(include_in_schema=False)


def _params(request: Request, *keys: str) -> dict[str, str]:
    """The report's query parameters as typed (blank ones dropped), for links and forms."""
    return {k: v for k in keys if (v := request.query_params.get(k, "").strip())}


def _id(text: str | None, field: str) -> int:
    value = parse_id(text)
    if value is None:
        raise InvalidInput(f"{field} must be a positive whole number", details={"field": field})
    return value


def _export_url(path: str, params: dict[str, str]) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def _page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    table: ReportTable | None,
    filename: str,
    error: InvalidInput | None,
) -> Response:
    """The page, its export (`?format=csv|xlsx`), or the page again with the error (422)."""
    fmt = request.query_params.get("format")
    if error is None and fmt and table is not None:
        return export_response(table, fmt, filename)
    context["error"] = error_text(request, error) if error else None
    context["error_field"] = (error.details or {}).get("field") if error else None
    return render(request, template, context, status_code=422 if error else 200)


@router.get("/analytics/roi")
def roi_page(request: Request, ctx: ConsoleCtx) -> Response:
    """Channel ROI with N-day GMV per acquired customer and payback."""
    ctx.actor.require(Scope.ANALYTICS_READ)
    _ = translator(request)
    params = _params(request, "from", "to")
    context: dict[str, Any] = {
        "params": params,
        "windows": WINDOWS,
        "table": None,
        "result": None,
        "can_drill": ctx.actor.can(Scope.ANALYTICS_WRITE),
    }
    error: InvalidInput | None = None
    table = None
    try:
        period = period_from(ctx.session, ctx.actor, ctx.clock, params.get("from"), params.get("to"))
        result = channel_roi(ctx.session, actor=ctx.actor, period=period, clock=ctx.clock)
        table = report.roi_table(result, _)
        chart = [{"channel": r["channel"], "cost_fen": r["cost_fen"], "gmv_fen": r["gmv_fen"]} for r in table.rows]
        context |= {"period": period, "result": result, "table": table, "chart": chart}
    except InvalidInput as exc:
        error = exc
    context["export_url"] = _export_url("/analytics/roi", params)
    return _page(request, "analytics/performance/roi.html", context, table=table, filename="channel-roi", error=error)


def _form_text(form: Any, key: str) -> str | None:
    value = form.get(key)
    return value if isinstance(value, str) else None


@router.post("/analytics/roi/drill")
def roi_drill(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """A channel's acquired customers (新获客户) → a static segment; recomputed from the report's parameters."""
    ctx.actor.require(Scope.ANALYTICS_WRITE)
    _ = translator(request)
    period = period_from(ctx.session, ctx.actor, ctx.clock, _form_text(form, "from"), _form_text(form, "to"))
    channel_id = _id(_form_text(form, "channel_id"), "channel_id")
    ids = acquired_customers(ctx.session, actor=ctx.actor, period=period, channel_id=channel_id)
    channel = ctx.session.get(Channel, channel_id)  # acquired_customers checked it is the workspace's
    what = channel.name if channel else channel_id
    name = f"{_('渠道 ROI')} · {what} · {_('新获客户')} {period.start}~{period.end}"
    segment = segment_from_ids(
        ctx.session, actor=ctx.actor, name=name, customer_ids=ids, source="analytics:roi:acquired", clock=ctx.clock
    )
    return redirect(f"/segments/{segment.id}")


@router.get("/analytics/staff")
def staff_page(request: Request, ctx: ConsoleCtx) -> Response:
    """Staff performance, ranked by a chosen column, with a store filter and drill-downs."""
    ctx.actor.require(Scope.ANALYTICS_READ)
    _ = translator(request)
    params = _params(request, "from", "to", "store_id", "sort")
    context: dict[str, Any] = {
        "params": params,
        "sort_keys": SORT_KEYS,
        "table": None,
        "result": None,
        "can_drill": ctx.actor.can(Scope.ANALYTICS_WRITE),
        "sort_labels": {
            "held": _("持有客户"),
            "adds": _("添加"),
            "deleted": _("删除合计"),
            "deleted_by_customer": _("被删"),
            "deleted_by_staff": _("主动删除"),
            "messages_assigned": _("应发消息"),
            "messages_sent": _("已发消息"),
            "send_rate": _("发送率"),
            "tasks_due": _("到期任务"),
            "tasks_done": _("完成任务"),
            "tasks_on_time": _("按时完成任务"),
            "on_time_rate": _("按时完成率"),
            "reply_rate": _("回复率（企业微信）"),
            "first_orders": _("首单"),
            "gmv_fen": _("GMV"),
            "chats": _("聊天客户数"),
            "wecom_messages": _("聊天消息数"),
        },
    }
    error: InvalidInput | None = None
    table = None
    try:
        store_id = _id(params["store_id"], "store_id") if "store_id" in params else None
        context["stores"] = filter_choices(ctx.session, ctx.actor.workspace_id, "store_id", store_id)
        period = period_from(ctx.session, ctx.actor, ctx.clock, params.get("from"), params.get("to"))
        result = staff_performance(
            ctx.session, actor=ctx.actor, period=period, clock=ctx.clock, store_id=store_id, sort=params.get("sort")
        )
        table = report.staff_table(result, _)
        chart = {
            "key": result.sort,
            "names": [r.name for r in result.rows],
            "values": [r.value(result.sort) for r in result.rows],
        }
        wecom = any(r.has_behavior for r in result.rows)
        context |= {"period": period, "result": result, "table": table, "chart": chart, "wecom_behavior": wecom}
    except InvalidInput as exc:
        error = exc
    if "stores" not in context:
        context["stores"] = filter_choices(ctx.session, ctx.actor.workspace_id, "store_id", None)
    context["export_url"] = _export_url("/analytics/staff", params)
    return _page(request, "analytics/performance/staff.html", context, table=table, filename="staff", error=error)


@router.post("/analytics/staff/drill")
def staff_drill(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """The customers behind one staff cell → a static segment; recomputed from the report's parameters."""
    ctx.actor.require(Scope.ANALYTICS_WRITE)
    _ = translator(request)
    period = period_from(ctx.session, ctx.actor, ctx.clock, _form_text(form, "from"), _form_text(form, "to"))
    staff_id = _id(_form_text(form, "staff_id"), "staff_id")
    cell = _form_text(form, "cell") or ""
    ids = cell_customers(ctx.session, actor=ctx.actor, period=period, staff_id=staff_id, cell=cell)
    labels = {"held": _("持有客户"), "adds": _("添加"), "first_orders": _("首单")}
    staff = ctx.session.get(Staff, staff_id)  # cell_customers checked it is the workspace's
    who = staff.name if staff else staff_id
    name = f"{_('员工绩效')} · {who} · {labels.get(cell, cell)} {period.start}~{period.end}"
    segment = segment_from_ids(
        ctx.session,
        actor=ctx.actor,
        name=name,
        customer_ids=ids,
        source=f"analytics:staff:{cell}",
        clock=ctx.clock,
    )
    return redirect(f"/segments/{segment.id}")


@router.get("/analytics/campaigns")
def campaigns_page(request: Request, ctx: ConsoleCtx) -> Response:
    """Broadcasts and SOPs in the range: treated vs holdout and uplift, each linked to its result page."""
    ctx.actor.require(Scope.ANALYTICS_READ)
    _ = translator(request)
    params = _params(request, "from", "to", "offset")
    context: dict[str, Any] = {"params": params, "table": None, "result": None, "more_url": None, "first_url": None}
    error: InvalidInput | None = None
    table = None
    try:
        period = period_from(ctx.session, ctx.actor, ctx.clock, params.get("from"), params.get("to"))
        offset = parse_offset(params.get("offset"))
        result = campaign_results(ctx.session, actor=ctx.actor, period=period, clock=ctx.clock, offset=offset)
        table = report.campaigns_table(result, _)
        chart = [{"name": r.name, "treated_rate": r.treated_rate, "holdout_rate": r.holdout_rate} for r in result.rows]
        context |= {"period": period, "result": result, "table": table, "chart": chart}
        if result.more:
            context["more_url"] = _export_url(
                "/analytics/campaigns", params | {"offset": str(result.offset + result.limit)}
            )
        if result.offset:
            context["first_url"] = _export_url(
                "/analytics/campaigns", {k: v for k, v in params.items() if k != "offset"}
            )
    except InvalidInput as exc:
        error = exc
    context["export_url"] = _export_url("/analytics/campaigns", params)
    return _page(
        request, "analytics/performance/campaigns.html", context, table=table, filename="campaigns", error=error
    )
