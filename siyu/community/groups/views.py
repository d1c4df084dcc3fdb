"""Console pages of community groups: list, create/edit, detail (members, roles, chart), import."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.datastructures import UploadFile
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
from siyu.community.groups import days, importer, membership, queries, service
from siyu.community.groups.schemas import GroupCreate, GroupPatch
from siyu.kit.errors import DomainError, InvalidInput
from siyu.kit.ids import parse_id
from siyu.loyalty.member_tasks.periods import local_day
from siyu.models import Staff, Tag
from siyu.models.group import GroupKind, GroupMemberRole
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)


def _(message: str) -> str:
    return message


KINDS = ((str(GroupKind.LONG_TERM), _("长期群")), (str(GroupKind.FLASH), _("闪群")))
ROLES = (
    (str(GroupMemberRole.OWNER), _("群主")),
    (str(GroupMemberRole.ADMIN), _("管理员")),
    (str(GroupMemberRole.KOC), _("KOC")),
    (str(GroupMemberRole.MEMBER), _("成员")),
)
LEFT_REASONS = {"left": _("主动退群"), "removed": _("被移出"), "dismissed": _("群解散")}
CHART_DAYS = 30


def _fields(ctx: Ctx) -> tuple[FormField, ...]:
    staff = ctx.session.execute(
        select(Staff.id, Staff.name).where(Staff.workspace_id == ctx.actor.workspace_id).order_by(Staff.id)
    ).all()
    return (
        FormField("name", _("群名称"), required=True),
        FormField("kind", _("群类型"), kind="select", choices=KINDS, required=True),
        FormField("ends_at", _("解散时间"), kind="datetime", hint=_("闪群必填：到时所有成员自动退群")),
        FormField("member_limit", _("人数上限"), kind="int", required=True, hint=_("1–500")),
        FormField("owner_staff_id", _("群主（员工）"), kind="select", choices=tuple((str(i), n) for i, n in staff)),
        FormField("tag_ids", _("群标签 ID"), kind="ids", hint=_("逗号分隔；使用已有标签")),
        FormField("join_url", _("入群链接")),
        FormField("wecom_chat_id", _("企业微信群 ID")),
        FormField("is_active", _("启用"), kind="bool"),
        FormField("description", _("群介绍"), kind="textarea"),
    )


def _data(values: dict[str, str], ctx: Ctx, fields: tuple[FormField, ...]) -> dict[str, Any]:
    data = parse(values, fields, brand_tz(ctx.session, ctx.actor.workspace_id))
    if data["owner_staff_id"] is not None:
        data["owner_staff_id"] = parse_id(data["owner_staff_id"])
    return data


def _form(
    request: Request,
    ctx: Ctx,
    values: dict[str, str],
    group_id: int | None,
    errors: dict[str, str] | None = None,
) -> Response:
    _ = translator(request)
    return form_page(
        request,
        title=_("编辑社群") if group_id else _("新建社群"),
        back=f"/community/groups/{group_id}" if group_id else "/community/groups",
        action=f"/community/groups/{group_id}/edit" if group_id else "/community/groups",
        spec=_fields(ctx),
        values=values,
        errors=errors,
    )


@router.get("/community/groups")
def groups_page(request: Request, ctx: ConsoleCtx, kind: str = "") -> Response:
    ctx.actor.require(Scope.COMMUNITY_READ)
    chosen = GroupKind(kind) if kind in {k for k, _l in KINDS} else None
    rows = service.list_groups(ctx.session, actor=ctx.actor, kind=chosen)
    return render(request, "community/groups/list.html", {"rows": rows, "kinds": dict(KINDS), "kind": kind})


@router.get("/community/groups/new")
def new_group_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    return _form(request, ctx, {"kind": "long_term", "member_limit": "200", "is_active": "on"}, None)


@router.post("/community/groups")
def create_group(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    fields = _fields(ctx)
    values = text_values(form, fields)
    try:
        data = _data(values, ctx, fields)
        data.pop("is_active")
        data["tag_ids"] = data["tag_ids"] or []
        group = service.create_group(ctx.session, actor=ctx.actor, data=validated(GroupCreate, data), clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        return _form(request, ctx, values, None, {error_field(exc, fields): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("社群已保存") + f": {group.name}")
    return redirect(f"/community/groups/{group.id}")


@router.get("/community/groups/{group_id}/edit")
def edit_group_page(request: Request, ctx: ConsoleCtx, group_id: IdPath) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    group = service.get_group(ctx.session, actor=ctx.actor, group_id=group_id)
    fields = _fields(ctx)
    values = object_values(group, fields, brand_tz(ctx.session, ctx.actor.workspace_id))
    values["tag_ids"] = ",".join(str(t) for t in service.tag_ids_of(ctx.session, group.id))
    return _form(request, ctx, values, group_id)


@router.post("/community/groups/{group_id}/edit")
def update_group(request: Request, ctx: ConsoleCtx, group_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    fields = _fields(ctx)
    values = text_values(form, fields)
    try:
        data = _data(values, ctx, fields)
        data["tag_ids"] = data["tag_ids"] or []
        patch = validated(GroupPatch, data)
        group = service.update_group(ctx.session, actor=ctx.actor, group_id=group_id, data=patch, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        return _form(request, ctx, values, group_id, {error_field(exc, fields): error_text(request, exc)})
    _ = translator(request)
    flash(request, _("社群已保存") + f": {group.name}")
    return redirect(f"/community/groups/{group.id}")


def _detail(request: Request, ctx: Ctx, group_id: int, errors: dict[str, Any] | None = None) -> Response:
    group = service.get_group(ctx.session, actor=ctx.actor, group_id=group_id)
    tz = brand_tz(ctx.session, ctx.actor.workspace_id)
    today = local_day(ctx.clock.now(), tz)
    points = days.counts(ctx.session, group=group, start=today - timedelta(days=CHART_DAYS - 1), end=today)
    tag_ids = service.tag_ids_of(ctx.session, group.id)
    tags = list(ctx.session.scalars(select(Tag).where(Tag.id.in_(tag_ids)).order_by(Tag.id))) if tag_ids else []
    owner = ctx.session.get(Staff, group.owner_staff_id) if group.owner_staff_id else None
    context = {
        "group": group,
        "owner": owner,
        "tags": tags,
        "members": queries.members(ctx.session, actor=ctx.actor, group_id=group.id, include_left=True),
        "roles": ROLES,
        "role_names": dict(ROLES),
        "kinds": dict(KINDS),
        "left_reasons": LEFT_REASONS,
        "tz": tz,
        "chart": {
            "days": [p.day.isoformat() for p in points],
            "members": [p.member_count for p in points],
            "joined": [p.joined for p in points],
            "left": [p.left for p in points],
        },
        "errors": errors or {},
    }
    return render(request, "community/groups/detail.html", context, status_code=422 if errors else 200)


@router.get("/community/groups/{group_id}")
def group_page(request: Request, ctx: ConsoleCtx, group_id: IdPath) -> Response:
    ctx.actor.require(Scope.COMMUNITY_READ)
    return _detail(request, ctx, group_id)


def _field_id(form: Any, name: str) -> int:
    value = form.get(name)
    parsed = parse_id(value.strip()) if isinstance(value, str) else None
    if parsed is None:
        raise InvalidInput(f"{name}: expected an id", details={"field": name})
    return parsed


@router.post("/community/groups/{group_id}/members")
def add_member(request: Request, ctx: ConsoleCtx, group_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    _ = translator(request)
    try:
        role = str(form.get("role") or "member")
        if role not in dict(ROLES):
            raise InvalidInput("unknown role", details={"field": "role"})
        if str(form.get("staff_id") or "").strip():
            membership.add_staff(
                ctx.session,
                actor=ctx.actor,
                group_id=group_id,
                staff_id=_field_id(form, "staff_id"),
                clock=ctx.clock,
                role=GroupMemberRole(role),
            )
        else:
            from siyu.customers.repository import get_visible

            customer_id = _field_id(form, "customer_id")
            get_visible(ctx.session, ctx.actor, customer_id)
            membership.add_customer(
                ctx.session,
                actor=ctx.actor,
                group_id=group_id,
                customer_id=customer_id,
                clock=ctx.clock,
                role=GroupMemberRole(role),
            )
    except DomainError as exc:
        if exc.status_code == 404 and (exc.details or {}).get("field") == "group_id":
            raise
        ctx.session.rollback()
        return _detail(request, ctx, group_id, {"add": error_text(request, exc)})
    flash(request, _("成员已加入"))
    return redirect(f"/community/groups/{group_id}")


@router.post("/community/groups/{group_id}/members/{member_id}/role")
def change_role(request: Request, ctx: ConsoleCtx, group_id: IdPath, member_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    stay = queries.stay_in(ctx.session, actor=ctx.actor, group_id=group_id, member_id=member_id)
    try:
        membership.set_role(
            ctx.session,
            actor=ctx.actor,
            group_id=group_id,
            customer_id=stay.customer_id,
            staff_id=stay.staff_id if stay.customer_id is None else None,
            role=str(form.get("role") or ""),
            clock=ctx.clock,
        )
    except DomainError as exc:
        ctx.session.rollback()
        return _detail(request, ctx, group_id, {"members": error_text(request, exc)})
    _ = translator(request)
    flash(request, _("角色已更新"))
    return redirect(f"/community/groups/{group_id}")


@router.post("/community/groups/{group_id}/members/{member_id}/remove")
def remove_member(request: Request, ctx: ConsoleCtx, group_id: IdPath, member_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    stay = queries.stay_in(ctx.session, actor=ctx.actor, group_id=group_id, member_id=member_id)
    if stay.left_at is None:
        membership.remove_member(
            ctx.session,
            actor=ctx.actor,
            group_id=group_id,
            clock=ctx.clock,
            customer_id=stay.customer_id,
            staff_id=stay.staff_id if stay.customer_id is None else None,
        )
    _ = translator(request)
    flash(request, _("成员已移出"))
    return redirect(f"/community/groups/{group_id}")


@router.post("/community/groups/{group_id}/import")
def import_members(request: Request, ctx: ConsoleCtx, group_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    _ = translator(request)
    upload = form.get("file")
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise InvalidInput("choose a CSV file", details={"field": "file"})
        try:
            data = upload.file.read(importer.MAX_BYTES + 1)
        finally:
            upload.file.close()
        result = importer.import_members(ctx.session, actor=ctx.actor, group_id=group_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        rows = (exc.details or {}).get("rows", []) if isinstance(exc.details, dict) else []
        return _detail(request, ctx, group_id, {"import": error_text(request, exc), "import_rows": rows})
    flash(request, _("导入完成") + f": +{result.joined} / {result.already}")
    return redirect(f"/community/groups/{group_id}")


@router.post("/community/groups/{group_id}/tags")
def add_tag(request: Request, ctx: ConsoleCtx, group_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    try:
        service.assign_tag(
            ctx.session, actor=ctx.actor, group_id=group_id, tag_id=_field_id(form, "tag_id"), clock=ctx.clock
        )
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        return _detail(request, ctx, group_id, {"tags": error_text(request, exc)})
    return redirect(f"/community/groups/{group_id}")


@router.post("/community/groups/{group_id}/tags/{tag_id}/remove")
def remove_tag(request: Request, ctx: ConsoleCtx, group_id: IdPath, tag_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    service.remove_tag(ctx.session, actor=ctx.actor, group_id=group_id, tag_id=tag_id, clock=ctx.clock)
    return redirect(f"/community/groups/{group_id}")
