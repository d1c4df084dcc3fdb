"""Console pages for channels: the metrics list with a trend chart, the form, and one channel with its costs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Form, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.auth.service import list_members
from siyu.channels import metrics, service
from siyu.channels.attribution import Attribution
from siyu.channels.metrics import ChannelReport
from siyu.channels.money import format_yuan, parse_percent, parse_yuan
from siyu.kit.errors import DomainError, InvalidInput
from siyu.kit.ids import parse_id
from siyu.models import Channel, ChannelType, CostModel
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
RANGE_KEYS = ("from", "to", "attribution", "window_days")
FORM_FIELDS = ("name", "type", "owner_user_id", "hook", "starts_on", "ends_on", "cost_model", "cpa_yuan", "cps_percent")


def percent(value: float | None) -> str:
    """0.4 → "40.0%"; None (no denominator) → "—"."""
    return "—" if value is None else f"{value * 100:.1f}%"


def ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


HELPERS = {"yuan": format_yuan, "percent": percent, "ratio": ratio}


@dataclass
class RangeForm:
    """The range controls of a metrics page, as typed, and what they resolved to."""

    date_from: date
    date_to: date
    attribution: Attribution
    window_days: int
    errors: dict[str, str]

    def query(self) -> str:
        return (
            f"from={self.date_from.isoformat()}&to={self.date_to.isoformat()}"
            f"&attribution={self.attribution}&window_days={self.window_days}"
        )


def _date(text: str | None, field: str) -> date | None:
    if not text or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{field} is not a date (YYYY-MM-DD)", details={"field": field}) from None


def _range_form(request: Request, ctx: Ctx, params: dict[str, str | None]) -> RangeForm:
    """Parse the range controls; on bad input fall back to the defaults and keep the message."""
    errors: dict[str, str] = {}
    try:
        start, end = metrics.resolve_range(
            ctx.session,
            workspace_id=ctx.actor.workspace_id,
            clock=ctx.clock,
            date_from=_date(params.get("from"), "from"),
            date_to=_date(params.get("to"), "to"),
        )
        model = metrics.parse_attribution(params.get("attribution") or Attribution.FIRST_TOUCH)
        window_text = (params.get("window_days") or "").strip() or str(metrics.DEFAULT_WINDOW_DAYS)
        window = int(window_text) if window_text.isascii() and window_text.isdigit() else 0
        metrics.check_range(start, end, window)
        return RangeForm(start, end, model, window, errors)
    except InvalidInput as exc:
        errors["range"] = error_text(request, exc)
    start, end = metrics.resolve_range(
        ctx.session, workspace_id=ctx.actor.workspace_id, clock=ctx.clock, date_from=None, date_to=None
    )
    return RangeForm(start, end, Attribution.FIRST_TOUCH, metrics.DEFAULT_WINDOW_DAYS, errors)


def _report(ctx: Ctx, form: RangeForm, channel_ids: list[int] | None = None) -> ChannelReport:
    return metrics.channel_report(
        ctx.session,
        actor=ctx.actor,
        date_from=form.date_from,
        date_to=form.date_to,
        clock=ctx.clock,
        attribution=form.attribution,
        window_days=form.window_days,
        channel_ids=channel_ids,
    )


def _chart(report: ChannelReport) -> dict[str, Any]:
    """Daily adds and cost (fen) per channel and in total, for the ECharts trend chart."""
    return {
        "days": [d.isoformat() for d in report.days],
        "channels": [
            {
                "name": row.channel.name,
                "adds": [d.metrics.adds for d in row.daily],
                "cost_fen": [d.metrics.cost_fen for d in row.daily],
                "scans": [d.metrics.scans for d in row.daily],
            }
            for row in report.channels
        ],
        "total": {
            "adds": [d.metrics.adds for d in report.daily],
            "cost_fen": [d.metrics.cost_fen for d in report.daily],
            "scans": [d.metrics.scans for d in report.daily],
        },
    }


def _status(form: RangeForm) -> int:
    return 422 if form.errors else 200


@router.get("/channels")
def channels_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.ACQUISITION_READ)
    form = _range_form(request, ctx, dict(request.query_params))
    report = _report(ctx, form)
    listed = {row.channel.id for row in report.channels}
    everything = service.list_channels(ctx.session, actor=ctx.actor, include_archived=True)
    idle = [c for c in everything if c.id not in listed]  # archived, with nothing in the range
    context = {"report": report, "form": form, "chart": _chart(report), "idle": idle} | HELPERS
    return render(request, "channels/list.html", context, status_code=_status(form))


# --- the channel form ---------------------------------------------------------------------------


def _form_context(ctx: Ctx, values: dict[str, str], errors: dict[str, str], channel: Channel | None) -> dict[str, Any]:
    members = list_members(ctx.session, workspace_id=ctx.actor.workspace_id)
    return {
        "channel": channel,
        "values": values,
        "errors": errors,
        "types": [str(t) for t in ChannelType],
        "cost_models": [str(m) for m in CostModel],
        "members": [(u.id, u.name, u.email) for _m, u in members],
    }


def _values_of(channel: Channel) -> dict[str, str]:
    return {
        "name": channel.name,
        "type": str(channel.type),
        "owner_user_id": str(channel.owner_user_id or ""),
        "hook": channel.hook or "",
        "starts_on": channel.starts_on.isoformat() if channel.starts_on else "",
        "ends_on": channel.ends_on.isoformat() if channel.ends_on else "",
        "cost_model": str(channel.cost_model),
        "cpa_yuan": format_yuan(channel.cpa_fen).removeprefix("¥").replace(",", "") if channel.cpa_fen else "",
        "cps_percent": f"{channel.cps_basis_points / 100:g}" if channel.cps_basis_points else "",
    }


def _fields(values: dict[str, str]) -> service.ChannelFields:
    """The service's fields from the form's text; money and percentages parsed exactly."""
    owner = values.get("owner_user_id", "").strip()
    owner_id = parse_id(owner) if owner else None
    if owner and owner_id is None:
        raise InvalidInput("unknown owner", details={"field": "owner_user_id"})
    model = values.get("cost_model", "")
    cpa = values.get("cpa_yuan", "").strip()
    cps = values.get("cps_percent", "").strip()
    return service.ChannelFields(
        name=values.get("name", ""),
        type=values.get("type", ""),
        owner_user_id=owner_id,
        hook=values.get("hook"),
        starts_on=_date(values.get("starts_on"), "starts_on"),
        ends_on=_date(values.get("ends_on"), "ends_on"),
        cost_model=model,
        cpa_fen=parse_yuan(cpa, field="cpa_fen") if model == CostModel.CPA and cpa else None,
        cps_basis_points=parse_percent(cps, field="cps_basis_points") if model == CostModel.CPS and cps else None,
    )


def _form_error(
    request: Request, ctx: Ctx, exc: DomainError, values: dict[str, str], channel_id: int | None
) -> Response:
    ctx.session.rollback()
    field = exc.details.get("field", "form") if isinstance(exc.details, dict) else "form"
    channel = service.get_channel(ctx.session, actor=ctx.actor, channel_id=channel_id) if channel_id else None
    context = _form_context(ctx, values, {str(field): error_text(request, exc)}, channel)
    return render(request, "channels/form.html", context, status_code=exc.status_code)


@router.get("/channels/new")
def new_channel_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    values = {"type": str(ChannelType.PACKAGE_CARD), "cost_model": str(CostModel.ENTRIES)}
    return render(request, "channels/form.html", _form_context(ctx, values, {}, None))


def _submitted(form: FormData) -> dict[str, str]:
    return {name: str(form.get(name) or "") for name in FORM_FIELDS}


@router.post("/channels")
def create_channel(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    values = _submitted(form)
    try:
        channel = service.create_channel(ctx.session, actor=ctx.actor, fields=_fields(values), clock=ctx.clock)
    except DomainError as exc:
        return _form_error(request, ctx, exc, values, None)
    _ = translator(request)
    flash(request, _("渠道已创建"))
    return redirect(f"/channels/{channel.id}")


@router.get("/channels/{channel_id}/edit")
def edit_channel_page(request: Request, ctx: ConsoleCtx, channel_id: IdPath) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    channel = service.get_channel(ctx.session, actor=ctx.actor, channel_id=channel_id)
    return render(request, "channels/form.html", _form_context(ctx, _values_of(channel), {}, channel))


@router.post("/channels/{channel_id}")
def update_channel(request: Request, ctx: ConsoleCtx, channel_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    values = _submitted(form)
    try:
        fields = _fields(values)
        service.update_channel(
            ctx.session, actor=ctx.actor, channel_id=channel_id, changes=vars(fields), clock=ctx.clock
        )
    except DomainError as exc:
        return _form_error(request, ctx, exc, values, channel_id)
    _ = translator(request)
    flash(request, _("渠道已保存"))
    return redirect(f"/channels/{channel_id}")


@router.post("/channels/{channel_id}/archive")
def archive_channel(request: Request, ctx: ConsoleCtx, channel_id: IdPath) -> Response:
    service.set_archived(ctx.session, actor=ctx.actor, channel_id=channel_id, archived=True, clock=ctx.clock)
    _ = translator(request)
    flash(request, _("渠道已归档"))
    return redirect(f"/channels/{channel_id}")


@router.post("/channels/{channel_id}/restore")
def restore_channel(request: Request, ctx: ConsoleCtx, channel_id: IdPath) -> Response:
    service.set_archived(ctx.session, actor=ctx.actor, channel_id=channel_id, archived=False, clock=ctx.clock)
    _ = translator(request)
    flash(request, _("渠道已恢复"))
    return redirect(f"/channels/{channel_id}")


# --- one channel: settings, daily metrics, costs -----------------------------------------------


def _detail_context(
    request: Request, ctx: Ctx, channel_id: int, params: dict[str, str | None], **extra: Any
) -> dict[str, Any]:
    channel = service.get_channel(ctx.session, actor=ctx.actor, channel_id=channel_id)
    form = _range_form(request, ctx, params)
    report = _report(ctx, form, [channel.id])
    members = {u.id: u.name for _m, u in list_members(ctx.session, workspace_id=ctx.actor.workspace_id)}
    entries = service.cost_entries(ctx.session, actor=ctx.actor, channel_id=channel.id, limit=200)
    return (
        {
            "channel": channel,
            "owner_name": members.get(channel.owner_user_id or 0),
            "form": form,
            "row": report.channels[0],
            "chart": _chart(report),
            "entries": entries.items,
            "more_entries": entries.next_cursor is not None,
            "errors": {},
            "values": {},
        }
        | HELPERS
        | extra
    )


@router.get("/channels/{channel_id}")
def channel_page(request: Request, ctx: ConsoleCtx, channel_id: IdPath) -> Response:
    ctx.actor.require(Scope.ACQUISITION_READ)
    context = _detail_context(request, ctx, channel_id, dict(request.query_params))
    return render(request, "channels/detail.html", context, status_code=_status(context["form"]))


def _range_params(text: str) -> dict[str, str | None]:
    """The range controls a form carried back (only those keys; anything else is dropped)."""
    return {k: v for k, v in parse_qsl(text) if k in RANGE_KEYS}


def _back_to(channel_id: int, range_text: str) -> str:
    """The detail page with the range the person was looking at."""
    query = urlencode({k: v for k, v in _range_params(range_text).items() if v})
    return f"/channels/{channel_id}{'?' + query if query else ''}#costs"


@router.post("/channels/{channel_id}/costs")
def add_cost(
    request: Request,
    ctx: ConsoleCtx,
    channel_id: IdPath,
    spent_on: Annotated[str, Form()] = "",
    amount: Annotated[str, Form()] = "",
    exposures: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    range_query: Annotated[str, Form(alias="range")] = "",
) -> Response:
    """Add a cost entry: the amount is typed in yuan and stored as exact fen."""
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    values = {"spent_on": spent_on, "amount": amount, "exposures": exposures, "note": note}
    try:
        day = _date(spent_on, "spent_on")
        if day is None:
            raise InvalidInput("spent_on is required", details={"field": "spent_on"})
        if not amount.strip():
            raise InvalidInput("amount is required", details={"field": "amount"})
        count = exposures.strip()
        if count and not (count.isascii() and count.isdigit()):
            raise InvalidInput("exposures must be a whole number, 0 or more", details={"field": "exposures"})
        service.add_cost_entry(
            ctx.session,
            actor=ctx.actor,
            channel_id=channel_id,
            spent_on=day,
            amount_fen=parse_yuan(amount, field="amount"),
            exposures=int(count) if count else None,
            note=note,
            clock=ctx.clock,
        )
    except DomainError as exc:
        if exc.status_code == 404 or exc.status_code == 403:
            raise
        ctx.session.rollback()
        context = _detail_context(
            request, ctx, channel_id, {}, values=values, errors={"cost": error_text(request, exc)}
        )
        return render(request, "channels/detail.html", context, status_code=exc.status_code)
    _ = translator(request)
    flash(request, _("花费已记录"))
    return redirect(_back_to(channel_id, range_query))


@router.post("/channels/{channel_id}/costs/{entry_id}/delete")
def delete_cost(
    request: Request,
    ctx: ConsoleCtx,
    channel_id: IdPath,
    entry_id: IdPath,
    range_query: Annotated[str, Form(alias="range")] = "",
) -> Response:
    service.delete_cost_entry(ctx.session, actor=ctx.actor, channel_id=channel_id, entry_id=entry_id, clock=ctx.clock)
    _ = translator(request)
    flash(request, _("花费已删除"))
    return redirect(_back_to(channel_id, range_query))
