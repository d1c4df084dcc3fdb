"""The rewards mall: list, create and edit rewards (points price, stock, limits, visibility)."""

from __future__ import annotations

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
from siyu.loyalty.rewards import catalog
from siyu.loyalty.rewards.schemas import RewardIn
from siyu.loyalty.views import queries
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)


def _(message: str) -> str:
    return message


KINDS = (
    ("gift", _("实物礼品")),
    ("coupon", _("优惠券")),
    ("privilege", _("特权")),
    ("lottery_entry", _("抽奖机会")),
)
FIELDS = (
    FormField("name", _("奖品名称"), required=True),
    FormField("kind", _("类型"), kind="select", choices=KINDS, required=True),
    FormField("points_price", _("所需积分"), kind="int", required=True),
    FormField("stock", _("库存"), kind="int", hint=_("留空为不限")),
    FormField("per_member_limit", _("每人限兑"), kind="int", hint=_("留空为不限")),
    FormField("coupon_template_id", _("优惠券模板 ID"), kind="int", hint=_("优惠券类奖品必填")),
    FormField("lottery_draw_id", _("抽奖 ID"), kind="int", hint=_("抽奖机会类奖品：兑换即参与该抽奖")),
    FormField("visible_tier_ids", _("可见等级 ID"), kind="ids", hint=_("逗号分隔；留空为所有等级可见")),
    FormField("visible_segment_id", _("可见人群 ID"), kind="int"),
    FormField("image_url", _("图片地址")),
    FormField("sort_order", _("排序"), kind="int"),
    FormField("is_active", _("上架"), kind="bool"),
    FormField("description", _("说明"), kind="textarea"),
)


def reward_input(values: dict[str, str], ctx: Ctx) -> RewardIn:
    data = parse(values, FIELDS, brand_tz(ctx.session, ctx.actor.workspace_id))
    data["sort_order"] = data["sort_order"] or 0
    return validated(RewardIn, data)


@router.get("/loyalty/rewards")
def rewards_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.LOYALTY_READ)
    ws = ctx.actor.workspace_id
    context = {
        "rows": catalog.list_rewards(ctx.session, workspace_id=ws),
        "kinds": dict(KINDS),
        "tier_names": queries.tier_names(ctx.session, ws),
    }
    return render(request, "loyalty/rewards.html", context)


def _form(
    request: Request, ctx: Ctx, values: dict[str, str], reward_id: int | None, errors: dict[str, str] | None = None
) -> Response:
    _ = translator(request)
    return form_page(
        request,
        title=_("编辑奖品") if reward_id else _("新建奖品"),
        back="/loyalty/rewards",
        action=f"/loyalty/rewards/{reward_id}/edit" if reward_id else "/loyalty/rewards",
        spec=FIELDS,
        values=values,
        errors=errors,
    )


@router.get("/loyalty/rewards/new")
def new_reward_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.LOYALTY_WRITE)
    return _form(request, ctx, {"kind": "gift", "is_active": "on", "sort_order": "0"}, None)


@router.post("/loyalty/rewards")
def create_reward(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.LOYALTY_WRITE)
    values = text_values(form, FIELDS)
    try:
        reward = catalog.create_reward(ctx.session, actor=ctx.actor, data=reward_input(values, ctx), clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        return _form(request, ctx, values, None, {error_field(exc, FIELDS): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("奖品已保存") + f": {reward.name}")
    return redirect("/loyalty/rewards")


@router.get("/loyalty/rewards/{reward_id}/edit")
def edit_reward_page(request: Request, ctx: ConsoleCtx, reward_id: IdPath) -> Response:
    ctx.actor.require(Scope.LOYALTY_WRITE)
    reward = catalog.get_reward(ctx.session, workspace_id=ctx.actor.workspace_id, reward_id=reward_id)
    return _form(request, ctx, object_values(reward, FIELDS, brand_tz(ctx.session, ctx.actor.workspace_id)), reward_id)


@router.post("/loyalty/rewards/{reward_id}/edit")
def update_reward(request: Request, ctx: ConsoleCtx, reward_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.LOYALTY_WRITE)
    values = text_values(form, FIELDS)
    try:
        data = reward_input(values, ctx)
        reward = catalog.update_reward(ctx.session, actor=ctx.actor, reward_id=reward_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        return _form(request, ctx, values, reward_id, {error_field(exc, FIELDS): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("奖品已保存") + f": {reward.name}")
    return redirect("/loyalty/rewards")
