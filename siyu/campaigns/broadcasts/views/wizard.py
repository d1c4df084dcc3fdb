"""The broadcast wizard: new and edit (a draft), the forecast panel, save and submit."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.campaigns.broadcasts import forecast, service
from siyu.campaigns.broadcasts.views.forms import ACCOUNT_SLOTS, VARIANT_KEYS, BroadcastForm, error_field
from siyu.kit.errors import DomainError
from siyu.models import (
    AdapterKind,
    Broadcast,
    BroadcastStatus,
    ChannelAccount,
    ContentItem,
    CouponTemplate,
    CouponTemplateStatus,
    QuietHoursMode,
    Workspace,
)
from siyu.segments.service import crud as segments
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
FORM = "broadcasts/form.html"
GROUP_KINDS = {AdapterKind.WECOM_GROUP}
"""Group channels post to groups (calendars), not to a broadcast's customers."""


def brand_tz(ctx: Ctx) -> ZoneInfo:
    """The brand's time zone: schedule times are typed and shown in it."""
    workspace = ctx.session.get(Workspace, ctx.actor.workspace_id)
    return ZoneInfo(workspace.timezone if workspace else ctx.settings.timezone)


def _choices(ctx: Ctx, coupon_template_id: str = "") -> dict[str, Any]:
    """What the wizard's selects list: live segments, active person-to-person accounts, live content,
    active coupon templates (plus the one the broadcast names, even archived, so an edit shows it
    rather than silently dropping it — saving it is then refused by the service, by the field)."""
    ws = ctx.actor.workspace_id
    accounts = ctx.session.scalars(
        select(ChannelAccount)
        .where(ChannelAccount.workspace_id == ws, ChannelAccount.is_active.is_(True))
        .order_by(ChannelAccount.name)
    ).all()
    contents = ctx.session.scalars(
        select(ContentItem)
        .where(ContentItem.workspace_id == ws, ContentItem.archived_at.is_(None))
        .order_by(ContentItem.name)
    ).all()
    text = coupon_template_id
    chosen = int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else 0
    templates = ctx.session.scalars(
        select(CouponTemplate)
        .where(
            CouponTemplate.workspace_id == ws,
            (CouponTemplate.status == CouponTemplateStatus.ACTIVE) | (CouponTemplate.id == chosen),
        )
        .order_by(CouponTemplate.name)
    ).all()
    return {
        "segments": segments.list_segments(ctx.session, ctx.actor),
        "coupon_templates": templates,
        "accounts": [a for a in accounts if a.kind not in GROUP_KINDS],
        "contents": contents,
        "quiet_modes": [str(m) for m in QuietHoursMode],
        "goal_types": ["order", "click", "event"],
        "variant_keys": VARIANT_KEYS,
        "account_slots": ACCOUNT_SLOTS,
    }


def _form_page(
    request: Request,
    ctx: Ctx,
    values: BroadcastForm,
    broadcast: Broadcast | None,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    tz = brand_tz(ctx)
    context = {
        "broadcast": broadcast,
        "values": values,
        "errors": errors or {},
        "timezone": tz.key,
    } | _choices(ctx, values.coupon_template_id)
    return render(request, FORM, context, status_code=status_code)


SHOWN_FIELDS = (
    {"form", "name", "segment_id", "holdout_pct", "goal", "brief", "quiet_hours", "scheduled_at", "coupon_template_id"}
    | {f"channel_account_ids.{i}" for i in range(ACCOUNT_SLOTS)}
    | {f"variants.{i}.{k}" for i in range(len(VARIANT_KEYS)) for k in ("content_id", "weight")}
)
"""Fields the wizard shows a message next to; anything else goes to the top of the form."""


def _refused(request: Request, ctx: Ctx, exc: DomainError, values: BroadcastForm, broadcast_id: int | None) -> Response:
    """Undo what the refused save wrote and show the wizard again with the message by its field."""
    ctx.session.rollback()
    field = error_field(exc)
    broadcast = service.get_broadcast(ctx.session, ctx.actor, broadcast_id) if broadcast_id is not None else None
    status = exc.status_code if 400 <= exc.status_code < 500 else 400
    errors = {field if field in SHOWN_FIELDS else "form": error_text(request, exc)}
    return _form_page(request, ctx, values, broadcast, errors=errors, status_code=status)


@router.get("/broadcasts/new")
def new_broadcast_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    return _form_page(request, ctx, BroadcastForm(), None)


@router.post("/broadcasts")
def create_broadcast(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Save a draft, and submit it too when the operator pressed "保存并提交"."""
    ctx.actor.require(Scope.TOUCH_WRITE)
    values = BroadcastForm.from_form(form)
    _ = translator(request)
    try:
        data = values.to_input(brand_tz(ctx))
        broadcast = service.create_broadcast(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock)
        if form.get("action") == "submit":
            broadcast = service.submit_broadcast(
                ctx.session, actor=ctx.actor, broadcast_id=broadcast.id, clock=ctx.clock
            )
    except DomainError as exc:
        return _refused(request, ctx, exc, values, None)
    flash(request, submitted_message(request, broadcast) if form.get("action") == "submit" else _("草稿已保存"))
    return redirect(f"/broadcasts/{broadcast.id}")


@router.get("/broadcasts/{broadcast_id}/edit")
def edit_broadcast_page(request: Request, ctx: ConsoleCtx, broadcast_id: IdPath) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    broadcast = service.get_broadcast(ctx.session, ctx.actor, broadcast_id)
    if broadcast.status not in service.EDITABLE:
        return redirect(f"/broadcasts/{broadcast_id}")
    return _form_page(request, ctx, BroadcastForm.from_broadcast(broadcast, brand_tz(ctx)), broadcast)


@router.post("/broadcasts/{broadcast_id}/edit")
def update_broadcast(request: Request, ctx: ConsoleCtx, broadcast_id: IdPath, form: FormDep) -> Response:
    """Change a draft (one awaiting approval goes back to draft); submit it when asked."""
    ctx.actor.require(Scope.TOUCH_WRITE)
    values = BroadcastForm.from_form(form)
    _ = translator(request)
    try:
        data = values.to_input(brand_tz(ctx))
        broadcast = service.update_broadcast(
            ctx.session, actor=ctx.actor, broadcast_id=broadcast_id, data=data, clock=ctx.clock
        )
        if form.get("action") == "submit":
            broadcast = service.submit_broadcast(
                ctx.session, actor=ctx.actor, broadcast_id=broadcast.id, clock=ctx.clock
            )
    except DomainError as exc:
        return _refused(request, ctx, exc, values, broadcast_id)
    flash(request, submitted_message(request, broadcast) if form.get("action") == "submit" else _("草稿已保存"))
    return redirect(f"/broadcasts/{broadcast_id}")


def submitted_message(request: Request, broadcast: Broadcast) -> str:
    """What a submit tells the operator: it sends as planned, or it waits for an admin."""
    _ = translator(request)
    if broadcast.status == BroadcastStatus.PENDING_APPROVAL:
        return _("人数超过审批阈值，已提交管理员审批")
    return _("已提交，将按计划发送")


@router.post("/broadcasts/forecast")
def forecast_panel(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """The wizard's "预估" panel: audience size and what the delivery policy would suppress."""
    ctx.actor.require(Scope.TOUCH_READ)
    values = BroadcastForm.from_form(form)
    context: dict[str, Any] = {"forecast": None, "error": None}
    try:
        data = values.to_input(brand_tz(ctx))
        context["forecast"] = forecast.forecast(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock)
    except DomainError as exc:
        context["error"] = error_text(request, exc)
    # A forecast only reads: whatever it touched is let go, never committed.
    ctx.session.rollback()
    return render(request, "broadcasts/_forecast.html", context)
