"""The loyalty program's settings form and the tier ladder (list, create, edit with benefits)."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.commerce.views.kit import (
    FormField,
    brand_tz,
    error_field,
    form_page,
    object_values,
    parse,
    text_values,
    validated,
)
from siyu.kit.errors import DomainError
from siyu.loyalty.tiers import catalogue
from siyu.loyalty.tiers.schemas import ProgramIn, TierIn
from siyu.loyalty.views import queries
from siyu.models import Tier, TierBasis
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)


def _(message: str) -> str:
    return message


PROGRAM_FIELDS = (
    FormField("points_per_yuan", _("每消费 1 元得积分"), kind="int", required=True),
    FormField(
        "expiry_policy",
        _("积分有效期"),
        kind="select",
        required=True,
        choices=(
            ("never", _("永不过期")),
            ("days", _("获得后 N 天")),
            ("month_end", _("N 个月后的月底")),
            ("year_end", _("N 年后的年底")),
        ),
    ),
    FormField("expiry_n", _("N"), kind="int", required=True, hint=_("年底过期：1 表示次年 12 月 31 日")),
    FormField("expiring_notice_days", _("即将过期提醒（天）"), kind="int", required=True),
    FormField(
        "tier_basis",
        _("定级依据"),
        kind="select",
        required=True,
        choices=(("spend", _("消费金额")), ("points", _("获得积分"))),
    ),
    FormField(
        "tier_window",
        _("定级周期"),
        kind="select",
        required=True,
        choices=(("rolling", _("滚动 N 天")), ("calendar_year", _("自然年"))),
    ),
    FormField("tier_window_days", _("滚动周期天数"), kind="int", required=True),
    FormField(
        "review_period",
        _("降级复核"),
        kind="select",
        required=True,
        choices=(("monthly", _("每月 1 日")), ("quarterly", _("每季度首日")), ("yearly", _("每年 1 月 1 日"))),
    ),
    FormField("grace_days", _("保级宽限（天）"), kind="int", required=True),
)
TIER_FIELDS = (
    FormField("name", _("等级名称"), required=True),
    FormField("rank", _("级别"), kind="int", required=True, hint=_("0 为基础等级，数字越大等级越高")),
    FormField("threshold", _("升级门槛"), kind="int"),
    FormField("points_multiplier_pct", _("积分倍率（%）"), kind="int", required=True, hint=_("150 表示 1.5 倍积分")),
    FormField("is_paid", _("付费等级"), kind="bool"),
    FormField("price_fen", _("价格（元）"), kind="yuan"),
    FormField("validity_days", _("有效天数"), kind="int"),
    FormField("color", _("颜色")),
    FormField("member_price_pct", _("会员价（% 原价）"), kind="int"),
    FormField("free_shipping", _("包邮"), kind="bool"),
    FormField("priority_service", _("优先客服"), kind="bool"),
    FormField("birthday_coupon_template_id", _("生日券模板 ID"), kind="int"),
    FormField("welcome_coupon_template_ids", _("升级礼包券模板 ID"), kind="ids", hint=_("逗号分隔")),
)
BENEFITS = (
    "member_price_pct",
    "free_shipping",
    "priority_service",
    "birthday_coupon_template_id",
    "welcome_coupon_template_ids",
)


def tier_fields(basis: str) -> tuple[FormField, ...]:
    """The threshold is typed in yuan when tiers qualify on spend, in points otherwise."""
    if basis == TierBasis.SPEND:
        return tuple(
            replace(f, kind="yuan", label=_("升级门槛（元）")) if f.name == "threshold" else f for f in TIER_FIELDS
        )
    return tuple(replace(f, label=_("升级门槛（积分）")) if f.name == "threshold" else f for f in TIER_FIELDS)


def _basis(ctx: Ctx) -> str:
    program = queries.program(ctx.session, ctx.actor.workspace_id)
    return str(program.tier_basis) if program else str(TierBasis.SPEND)


# --- program ----------------------------------------------------------------------------------


def _program_values(ctx: Ctx) -> dict[str, str]:
    program = queries.program(ctx.session, ctx.actor.workspace_id)
    if program is None:
        defaults = ProgramIn(
            points_per_yuan=1,
            expiry_policy="year_end",  # type: ignore[arg-type]
            expiry_n=1,
            tier_basis="spend",  # type: ignore[arg-type]
            tier_window="rolling",  # type: ignore[arg-type]
            review_period="quarterly",  # type: ignore[arg-type]
        )
        return {k: str(v) for k, v in defaults.model_dump().items()}
    return object_values(program, PROGRAM_FIELDS, brand_tz(ctx.session, ctx.actor.workspace_id))


def _program_page(request: Request, ctx: Ctx, values: dict[str, str], errors: dict[str, str] | None = None) -> Response:
    context = {"spec": PROGRAM_FIELDS, "values": values, "errors": errors or {}}
    return render(request, "loyalty/program.html", context, status_code=422 if errors else 200)


@router.get("/loyalty/program")
def program_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.LOYALTY_READ)
    return _program_page(request, ctx, _program_values(ctx))


@router.post("/loyalty/program")
def save_program(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.LOYALTY_WRITE)
    values = text_values(form, PROGRAM_FIELDS)
    try:
        data = validated(ProgramIn, parse(values, PROGRAM_FIELDS, brand_tz(ctx.session, ctx.actor.workspace_id)))
        catalogue.update_program(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        return _program_page(request, ctx, values, {error_field(exc, PROGRAM_FIELDS): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("会员规则已保存"))
    return redirect("/loyalty/program")


# --- tiers ------------------------------------------------------------------------------------


@router.get("/loyalty/tiers")
def tiers_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.LOYALTY_READ)
    ws = ctx.actor.workspace_id
    context = {
        "rows": catalogue.list_tiers(ctx.session, workspace_id=ws),
        "members": queries.members_per_tier(ctx.session, ws),
        "program": queries.program(ctx.session, ws),
        "basis": _basis(ctx),
    }
    return render(request, "loyalty/tiers.html", context)


def tier_input(values: dict[str, str], spec: tuple[FormField, ...], ctx: Ctx) -> TierIn:
    data = parse(values, spec, brand_tz(ctx.session, ctx.actor.workspace_id))
    benefits = {k: data.pop(k) for k in BENEFITS}
    benefits = {k: v for k, v in benefits.items() if v not in (None, False, [])}
    data["threshold"] = data["threshold"] or 0
    data["benefits"] = benefits
    return validated(TierIn, data)


def tier_values(tier: Tier, spec: tuple[FormField, ...], ctx: Ctx) -> dict[str, str]:
    values = object_values(tier, spec, brand_tz(ctx.session, ctx.actor.workspace_id))
    benefits = tier.benefits or {}
    for key in BENEFITS:
        value = benefits.get(key)
        if isinstance(value, bool):
            values[key] = "on" if value else ""
        elif isinstance(value, list):
            values[key] = ",".join(str(v) for v in value)
        else:
            values[key] = "" if value is None else str(value)
    return values


def _tier_form(
    request: Request, ctx: Ctx, values: dict[str, str], tier_id: int | None, errors: dict[str, str] | None = None
) -> Response:
    _ = translator(request)
    return form_page(
        request,
        title=_("编辑会员等级") if tier_id else _("新建会员等级"),
        back="/loyalty/tiers",
        action=f"/loyalty/tiers/{tier_id}/edit" if tier_id else "/loyalty/tiers",
        spec=tier_fields(_basis(ctx)),
        values=values,
        errors=errors,
    )


@router.get("/loyalty/tiers/new")
def new_tier_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.LOYALTY_WRITE)
    return _tier_form(request, ctx, {"points_multiplier_pct": "100"}, None)


@router.post("/loyalty/tiers")
def create_tier(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.LOYALTY_WRITE)
    spec = tier_fields(_basis(ctx))
    values = text_values(form, spec)
    try:
        tier = catalogue.create_tier(ctx.session, actor=ctx.actor, data=tier_input(values, spec, ctx), clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        return _tier_form(request, ctx, values, None, {error_field(exc, spec): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("会员等级已保存") + f": {tier.name}")
    return redirect("/loyalty/tiers")


@router.get("/loyalty/tiers/{tier_id}/edit")
def edit_tier_page(request: Request, ctx: ConsoleCtx, tier_id: IdPath) -> Response:
    ctx.actor.require(Scope.LOYALTY_WRITE)
    tier = catalogue.get_tier(ctx.session, workspace_id=ctx.actor.workspace_id, tier_id=tier_id)
    return _tier_form(request, ctx, tier_values(tier, tier_fields(_basis(ctx)), ctx), tier_id)


@router.post("/loyalty/tiers/{tier_id}/edit")
def update_tier(request: Request, ctx: ConsoleCtx, tier_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.LOYALTY_WRITE)
    spec = tier_fields(_basis(ctx))
    values = text_values(form, spec)
    try:
        data = tier_input(values, spec, ctx)
        tier = catalogue.update_tier(ctx.session, actor=ctx.actor, tier_id=tier_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        return _tier_form(request, ctx, values, tier_id, {error_field(exc, spec): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("会员等级已保存") + f": {tier.name}")
    return redirect("/loyalty/tiers")
