"""Member tasks: list, create and edit (check-in with streak bonuses, post, share, profile, …)."""

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
    parse_int,
    text_values,
    validated,
)
from siyu.kit.errors import DomainError, InvalidInput
from siyu.loyalty.member_tasks import definitions
from siyu.loyalty.member_tasks.schemas import TaskIn
from siyu.models import LoyaltyTask
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)


def _(message: str) -> str:
    return message


KINDS = (
    ("check_in", _("每日签到")),
    ("post", _("晒单发帖")),
    ("share", _("分享")),
    ("profile", _("完善资料")),
    ("join_group", _("加入社群")),
    ("invite", _("邀请好友")),
    ("custom", _("自定义")),
)
PERIODS = (("day", _("每天")), ("week", _("每周")), ("month", _("每月")), ("lifetime", _("终身")))
FIELDS = (
    FormField("key", _("任务标识"), required=True, hint=_("小写字母、数字、_ 或 -；每日签到固定为 check_in")),
    FormField("kind", _("类型"), kind="select", choices=KINDS, required=True),
    FormField("name", _("任务名称"), required=True),
    FormField("points", _("奖励积分"), kind="int", required=True),
    FormField("limit_period", _("限制周期"), kind="select", choices=PERIODS, required=True),
    FormField("limit_count", _("每周期次数"), kind="int", required=True),
    FormField("streak_bonuses", _("连续签到奖励"), hint=_("天数:积分，逗号分隔，如 3:10, 7:50")),
    FormField(
        "required_fields", _("需完善的资料字段"), kind="list", hint=_("完善资料任务：如 name, gender, birthday, city")
    ),
    FormField("sort_order", _("排序"), kind="int"),
    FormField("is_active", _("启用"), kind="bool"),
    FormField("description", _("说明"), kind="textarea"),
)


def _bonuses(text: str) -> dict[str, int]:
    bonuses: dict[str, int] = {}
    for part in text.replace("，", ",").split(","):
        if not part.strip():
            continue
        length, sep, points = part.replace("：", ":").partition(":")
        if not sep:
            raise InvalidInput("streak_bonuses: write days:points, e.g. 3:10", details={"field": "streak_bonuses"})
        bonuses[length.strip()] = parse_int(points, "streak_bonuses")
    return bonuses


def task_input(values: dict[str, str], ctx: Ctx) -> TaskIn:
    data = parse(values, FIELDS, brand_tz(ctx.session, ctx.actor.workspace_id))
    required = data.pop("required_fields")
    data["streak_bonuses"] = _bonuses(data["streak_bonuses"] or "")
    data["settings"] = {"required_fields": required} if required else {}
    data["sort_order"] = data["sort_order"] or 0
    return validated(TaskIn, data)


def task_values(task: LoyaltyTask, ctx: Ctx) -> dict[str, str]:
    values = object_values(task, FIELDS, brand_tz(ctx.session, ctx.actor.workspace_id))
    values["streak_bonuses"] = ", ".join(f"{k}:{v}" for k, v in (task.streak_bonuses or {}).items())
    values["required_fields"] = ", ".join((task.settings or {}).get("required_fields") or [])
    return values


@router.get("/loyalty/tasks")
def tasks_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.LOYALTY_READ)
    rows = definitions.list_tasks(ctx.session, workspace_id=ctx.actor.workspace_id)
    return render(request, "loyalty/tasks.html", {"rows": rows, "kinds": dict(KINDS), "periods": dict(PERIODS)})


def _form(
    request: Request, ctx: Ctx, values: dict[str, str], task_id: int | None, errors: dict[str, str] | None = None
) -> Response:
    _ = translator(request)
    return form_page(
        request,
        title=_("编辑会员任务") if task_id else _("新建会员任务"),
        back="/loyalty/tasks",
        action=f"/loyalty/tasks/{task_id}/edit" if task_id else "/loyalty/tasks",
        spec=FIELDS,
        values=values,
        errors=errors,
    )


@router.get("/loyalty/tasks/new")
def new_task_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.LOYALTY_WRITE)
    defaults = {"kind": "custom", "limit_period": "day", "limit_count": "1", "is_active": "on", "sort_order": "0"}
    return _form(request, ctx, defaults, None)


@router.post("/loyalty/tasks")
def create_task(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.LOYALTY_WRITE)
    values = text_values(form, FIELDS)
    try:
        task = definitions.create_task(ctx.session, actor=ctx.actor, data=task_input(values, ctx), clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        return _form(request, ctx, values, None, {error_field(exc, FIELDS): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("会员任务已保存") + f": {task.name}")
    return redirect("/loyalty/tasks")


@router.get("/loyalty/tasks/{task_id}/edit")
def edit_task_page(request: Request, ctx: ConsoleCtx, task_id: IdPath) -> Response:
    ctx.actor.require(Scope.LOYALTY_WRITE)
    task = definitions.get_task(ctx.session, workspace_id=ctx.actor.workspace_id, task_id=task_id)
    return _form(request, ctx, task_values(task, ctx), task_id)


@router.post("/loyalty/tasks/{task_id}/edit")
def update_task(request: Request, ctx: ConsoleCtx, task_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.LOYALTY_WRITE)
    values = text_values(form, FIELDS)
    try:
        data = task_input(values, ctx)
        task = definitions.update_task(ctx.session, actor=ctx.actor, task_id=task_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        return _form(request, ctx, values, task_id, {error_field(exc, FIELDS): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("会员任务已保存") + f": {task.name}")
    return redirect("/loyalty/tasks")
