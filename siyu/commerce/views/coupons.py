"""Coupons: templates (list, create, edit, archive) and issued coupons (list, issue to a customer, void)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.commerce.coupons import service
from siyu.commerce.coupons.schemas import CouponTemplateIn
from siyu.commerce.views.kit import (
    FormField,
    brand_tz,
    customer_names,
    error_field,
    form_page,
    object_values,
    parse,
    parse_int,
    text_values,
    validated,
    yuan_text,
)
from siyu.kit.errors import DomainError, InvalidInput
from siyu.kit.ids import parse_id, random_token
from siyu.models import CouponKind, CouponState, CouponTemplate, CouponTemplateStatus
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)


def _(message: str) -> str:
    return message


KINDS = (
    ("amount_off", _("满减券")),
    ("percent_off", _("折扣券")),
    ("free_shipping", _("包邮券")),
    ("gift", _("赠品券")),
)
OFFERS = (
    ("none", _("无（手动、SOP 或群发发放）")),
    ("first_order", _("新客首单券")),
    ("birthday", _("生日礼")),
    ("member_day", _("会员日")),
    ("tier_welcome", _("等级礼包")),
)
OFFER_KEYS = ("valid_days", "days_before", "weekday", "month_day", "tier_id")
FIELDS = (
    FormField("name", _("名称"), required=True),
    FormField("kind", _("类型"), kind="select", choices=KINDS, required=True),
    FormField("amount", _("减免金额（元）"), kind="yuan", hint=_("满减券：每张减多少元")),
    FormField("percent", _("折扣百分比"), kind="int", hint=_("折扣券：15 表示减 15%，即八五折")),
    FormField("max_discount_fen", _("最多优惠（元）"), kind="yuan"),
    FormField("gift_name", _("赠品名称")),
    FormField("threshold_fen", _("使用门槛（元）"), kind="yuan", hint=_("满多少元可用；留空为无门槛")),
    FormField("valid_days", _("领取后有效天数"), kind="int", hint=_("与固定有效期二选一")),
    FormField("valid_from", _("有效期开始"), kind="datetime"),
    FormField("valid_until", _("有效期结束"), kind="datetime"),
    FormField("per_customer_limit", _("每人限领"), kind="int", required=True),
    FormField("total_stock", _("总库存"), kind="int", hint=_("留空为不限")),
    FormField(
        "channels",
        _("可用平台"),
        kind="list",
        hint=_("逗号分隔的平台，留空为全部"),
    ),
    FormField("offer", _("自动发放"), kind="select", choices=OFFERS, required=True),
    FormField("offer_valid_days", _("首单券：加好友后有效天数"), kind="int"),
    FormField("offer_days_before", _("生日礼：提前天数"), kind="int"),
    FormField("offer_weekday", _("会员日：星期几（1 为周一）"), kind="int"),
    FormField("offer_month_day", _("会员日：每月几号"), kind="int"),
    FormField("offer_tier_id", _("等级礼包：等级 ID"), kind="int"),
    FormField("description", _("说明"), kind="textarea"),
)
STATES = tuple(str(s) for s in CouponState)


def template_input(values: dict[str, str], tz: Any) -> CouponTemplateIn:
    """The form as the service's schema; the value field follows the kind."""
    data = parse(values, FIELDS, tz)
    kind = data["kind"]
    value = 0
    if kind == CouponKind.AMOUNT_OFF:
        if data["amount"] is None:
            raise InvalidInput("amount: required for an amount-off coupon", details={"field": "amount"})
        value = data["amount"]
    elif kind == CouponKind.PERCENT_OFF:
        if data["percent"] is None:
            raise InvalidInput("percent: required for a percent-off coupon", details={"field": "percent"})
        value = data["percent"]
    settings = {key: data[f"offer_{key}"] for key in OFFER_KEYS if data[f"offer_{key}"] is not None}
    payload = {
        "name": data["name"],
        "kind": kind,
        "value": value,
        "max_discount_fen": data["max_discount_fen"],
        "gift_name": data["gift_name"],
        "threshold_fen": data["threshold_fen"] or 0,
        "valid_from": data["valid_from"],
        "valid_until": data["valid_until"],
        "valid_days": data["valid_days"],
        "per_customer_limit": data["per_customer_limit"],
        "total_stock": data["total_stock"],
        "channels": data["channels"],
        "offer": data["offer"],
        "offer_settings": settings,
        "description": data["description"],
    }
    return validated(CouponTemplateIn, payload)


def template_values(template: CouponTemplate, tz: Any) -> dict[str, str]:
    values = object_values(template, FIELDS, tz)
    values["amount"] = yuan_text(template.value) if template.kind == CouponKind.AMOUNT_OFF else ""
    values["percent"] = str(template.value) if template.kind == CouponKind.PERCENT_OFF else ""
    for key in OFFER_KEYS:
        setting = (template.offer_settings or {}).get(key)
        values[f"offer_{key}"] = "" if setting is None else str(setting)
    return values


def _error_field(exc: DomainError, values: dict[str, str]) -> str:
    """The form field of a refused save: the service's `value` is the form's amount or percent."""
    details = exc.details if isinstance(exc.details, dict) else {}
    if details.get("field") == "value":
        return {"amount_off": "amount", "percent_off": "percent"}.get(values.get("kind", ""), "form")
    return error_field(exc, FIELDS)


@router.get("/coupons")
def templates_page(request: Request, ctx: ConsoleCtx, status: str | None = None) -> Response:
    ctx.actor.require(Scope.COMMERCE_READ)
    chosen = CouponTemplateStatus(status) if status in {str(s) for s in CouponTemplateStatus} else None
    rows = service.list_templates(ctx.session, ctx.actor, status=chosen)
    context = {"rows": rows, "status": str(chosen) if chosen else "", "kinds": dict(KINDS), "offers": dict(OFFERS)}
    return render(request, "commerce/coupon_templates.html", context)


def _form(
    request: Request, ctx: Ctx, values: dict[str, str], template_id: int | None, errors: dict[str, str] | None = None
) -> Response:
    _ = translator(request)
    return form_page(
        request,
        title=_("编辑优惠券模板") if template_id else _("新建优惠券模板"),
        back="/coupons",
        action=f"/coupons/templates/{template_id}/edit" if template_id else "/coupons/templates",
        spec=FIELDS,
        values=values,
        errors=errors,
    )


@router.get("/coupons/templates/new")
def new_template_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.COMMERCE_WRITE)
    return _form(request, ctx, {"kind": "amount_off", "offer": "none", "per_customer_limit": "1"}, None)


@router.post("/coupons/templates")
def create_template(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMERCE_WRITE)
    values = text_values(form, FIELDS)
    try:
        data = template_input(values, brand_tz(ctx.session, ctx.actor.workspace_id))
        template = service.create_template(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        return _form(request, ctx, values, None, {error_field(exc, FIELDS): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("优惠券模板已保存") + f": {template.name}")
    return redirect("/coupons")


@router.get("/coupons/templates/{template_id}/edit")
def edit_template_page(request: Request, ctx: ConsoleCtx, template_id: IdPath) -> Response:
    ctx.actor.require(Scope.COMMERCE_WRITE)
    template = service.get_template(ctx.session, ctx.actor, template_id)
    return _form(request, ctx, template_values(template, brand_tz(ctx.session, ctx.actor.workspace_id)), template_id)


@router.post("/coupons/templates/{template_id}/edit")
def update_template(request: Request, ctx: ConsoleCtx, template_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMERCE_WRITE)
    values = text_values(form, FIELDS)
    try:
        data = template_input(values, brand_tz(ctx.session, ctx.actor.workspace_id))
        service.update_template(ctx.session, actor=ctx.actor, template_id=template_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        return _form(request, ctx, values, template_id, {_error_field(exc, values): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("优惠券模板已保存") + f": {values['name']}")
    return redirect("/coupons")


@router.post("/coupons/templates/{template_id}/archive")
def archive_template(request: Request, ctx: ConsoleCtx, template_id: IdPath) -> Response:
    ctx.actor.require(Scope.COMMERCE_WRITE)
    template = service.archive_template(ctx.session, actor=ctx.actor, template_id=template_id, clock=ctx.clock)
    _ = translator(request)
    flash(request, _("模板已归档，已发出的券仍可使用") + f": {template.name}")
    return redirect("/coupons")


# --- issued coupons -------------------------------------------------------------------------------


def _issued_context(ctx: Ctx, customer: str, state: str, template: str, cursor: str | None) -> dict[str, Any]:
    flt = service.CouponFilter(
        customer_id=parse_id(customer),
        state=CouponState(state) if state in STATES else None,
        template_id=parse_id(template),
    )
    page = service.list_coupons(ctx.session, ctx.actor, flt, cursor=cursor)
    templates = service.list_templates(ctx.session, ctx.actor)
    query = f"customer={customer}&state={state}&template={template}"
    return {
        "rows": page.items,
        "next_url": f"/coupons/issued?{query}&cursor={page.next_cursor}" if page.next_cursor else None,
        "filters": {"customer": customer, "state": state, "template": template},
        "states": STATES,
        "templates": templates,
        "template_names": {t.id: t.name for t in templates},
        "customer_names": customer_names(ctx.session, ctx.actor.workspace_id, (c.customer_id for c in page.items)),
        "issue_key": random_token(12),
        "issue_values": {},
        "errors": {},
    }


@router.get("/coupons/issued")
def coupons_page(
    request: Request,
    ctx: ConsoleCtx,
    customer: str = "",
    state: str = "",
    template: str = "",
    cursor: str | None = None,
) -> Response:
    ctx.actor.require(Scope.COMMERCE_READ)
    return render(request, "commerce/coupons.html", _issued_context(ctx, customer, state, template, cursor))


@router.post("/coupons/issue")
def issue_coupon(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Issue one coupon to a customer; the form's one-time key makes a double submit issue once."""
    ctx.actor.require(Scope.COMMERCE_WRITE)
    values = {k: v.strip() if isinstance(v := form.get(k), str) else "" for k in ("template_id", "customer_id", "key")}
    try:
        template_id = parse_int(values["template_id"], "template_id")
        customer_id = parse_int(values["customer_id"], "customer_id")
        if not values["key"]:
            raise InvalidInput("reload the page and try again", details={"field": "form"})
        coupon, _created = service.issue_to_customer(
            ctx.session,
            actor=ctx.actor,
            template_id=template_id,
            customer_id=customer_id,
            idempotency_key=f"console:{values['key']}",
            clock=ctx.clock,
        )
    except DomainError as exc:
        ctx.session.rollback()
        context = _issued_context(ctx, "", "", "", None)
        context["issue_values"] = values
        context["errors"] = {"issue": error_text(request, exc)}
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        return render(request, "commerce/coupons.html", context, status_code=status)
    _ = translator(request)
    flash(request, _("优惠券已发放") + f": {coupon.code}")
    return redirect(f"/coupons/issued?customer={coupon.customer_id}")


@router.post("/coupons/{coupon_id}/void")
def void_coupon(request: Request, ctx: ConsoleCtx, coupon_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMERCE_WRITE)
    reason = form.get("reason")
    _ = translator(request)
    try:
        coupon = service.void_coupon(
            ctx.session,
            actor=ctx.actor,
            coupon_id=coupon_id,
            reason=reason if isinstance(reason, str) else "",
            clock=ctx.clock,
        )
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        flash(request, error_text(request, exc), kind="error")
        return redirect("/coupons/issued")
    flash(request, _("优惠券已作废") + f": {coupon.code}")
    return redirect(f"/coupons/issued?customer={coupon.customer_id}")
