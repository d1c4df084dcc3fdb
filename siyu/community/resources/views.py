"""Console pages of community resources: the library with its counts, create/edit with upload,
publish and archive (`/community/resources`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.commerce.views.kit import FormField, brand_tz, error_field, object_values, parse, text_values, validated
from siyu.community.resources import service
from siyu.community.resources.api import file_response
from siyu.community.resources.files import MAX_FILE_BYTES, CheckedFile, check_upload
from siyu.community.resources.schemas import ResourceIn, ResourcePatch
from siyu.kit.errors import DomainError
from siyu.models.resource import ResourceKind, ResourceStatus
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
BASE = "/community/resources"


def _(message: str) -> str:
    return message


KINDS = (("guide", _("攻略")), ("file", _("文件")), ("news", _("一手信息")))
STATUSES = (("draft", _("草稿")), ("published", _("已发布")), ("archived", _("已归档")))
FIELDS = (
    FormField("kind", _("类型"), kind="select", choices=KINDS, required=True),
    FormField("title", _("标题"), required=True),
    FormField("summary", _("摘要")),
    FormField("visible_tier_ids", _("可见等级 ID"), kind="ids", hint=_("逗号分隔；留空为所有等级可见")),
    FormField("visible_segment_id", _("可见人群 ID"), kind="int"),
    FormField("is_pinned", _("置顶"), kind="bool"),
    FormField("body", _("正文"), kind="textarea", hint=_("纯文本，保留换行")),
)
EDIT_FIELDS = tuple(f for f in FIELDS if f.name != "kind")
FILE_FIELD = FormField("file", _("文件"))
"""Only for naming upload errors; the template draws the file input itself."""


def _upload(form: FormData) -> CheckedFile | None:
    """The chosen file, checked; None when no file was chosen."""
    value = form.get("file")
    if not isinstance(value, UploadFile) or not value.filename:
        return None
    return check_upload(value.filename, value.file.read(MAX_FILE_BYTES + 1))


def _close_uploads(form: FormData) -> None:
    # The form was parsed by hand (FormDep), so its spooled files are closed here.
    for _key, value in form.multi_items():
        if isinstance(value, UploadFile):
            value.file.close()


@router.get(BASE)
def resources_page(request: Request, ctx: ConsoleCtx, status: str = "", kind: str = "") -> Response:
    """Every resource with its reads, downloads and unique readers; filter by status and kind."""
    ctx.actor.require(Scope.COMMUNITY_READ)
    chosen_status = ResourceStatus(status) if status in {v for v, _l in STATUSES} else None
    chosen_kind = ResourceKind(kind) if kind in {v for v, _l in KINDS} else None
    rows = service.list_resources(
        ctx.session, workspace_id=ctx.actor.workspace_id, status=chosen_status, kind=chosen_kind
    )
    context = {
        "rows": rows,
        "kinds": dict(KINDS),
        "statuses": dict(STATUSES),
        "status": str(chosen_status or ""),
        "kind": str(chosen_kind or ""),
    }
    return render(request, "community/resources/list.html", context)


def _form(
    request: Request,
    values: dict[str, str],
    resource_id: int | None,
    errors: dict[str, str] | None = None,
    *,
    file_name: str | None = None,
    kind: str = "",
) -> Response:
    _ = translator(request)
    context: dict[str, Any] = {
        "title": _("编辑资料") if resource_id else _("新建资料"),
        "back": BASE,
        "action": f"{BASE}/{resource_id}/edit" if resource_id else BASE,
        "spec": EDIT_FIELDS if resource_id else FIELDS,
        "values": values,
        "errors": errors or {},
        "file_name": file_name,
        "show_file": not resource_id or kind == ResourceKind.FILE,
    }
    return render(request, "community/resources/form.html", context, status_code=422 if errors else 200)


def _error(request: Request, exc: DomainError, fields: tuple[FormField, ...]) -> dict[str, str]:
    return {error_field(exc, (*fields, FILE_FIELD)): error_text(request, exc)}


def _data(values: dict[str, str], ctx: Ctx, fields: tuple[FormField, ...]) -> dict[str, Any]:
    data = parse(values, fields, brand_tz(ctx.session, ctx.actor.workspace_id))
    data["summary"] = data["summary"] or ""
    data["body"] = data["body"] or ""
    return data


@router.get(f"{BASE}/new")
def new_resource_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    return _form(request, {"kind": "guide"}, None)


@router.post(BASE)
def create_resource(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Save a new draft (a file resource may carry its upload); refused fields come back named."""
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    values = text_values(form, FIELDS)
    try:
        data = validated(ResourceIn, _data(values, ctx, FIELDS))
        upload = _upload(form)
        resource = service.create_resource(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock, file=upload)
    except DomainError as exc:
        ctx.session.rollback()
        return _form(request, values, None, _error(request, exc, FIELDS))
    finally:
        _close_uploads(form)
    _ = translator(request)
    flash(request, _("已保存资料") + f": {resource.title}")
    return redirect(BASE)


@router.get(f"{BASE}/{{resource_id}}/edit")
def edit_resource_page(request: Request, ctx: ConsoleCtx, resource_id: IdPath) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    resource = service.get_resource(ctx.session, workspace_id=ctx.actor.workspace_id, resource_id=resource_id)
    values = object_values(resource, EDIT_FIELDS, brand_tz(ctx.session, ctx.actor.workspace_id))
    return _form(request, values, resource_id, file_name=resource.file_name, kind=str(resource.kind))


@router.post(f"{BASE}/{{resource_id}}/edit")
def update_resource(request: Request, ctx: ConsoleCtx, resource_id: IdPath, form: FormDep) -> Response:
    """Save changes (and a replacement file, if one was chosen)."""
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    resource = service.get_resource(ctx.session, workspace_id=ctx.actor.workspace_id, resource_id=resource_id)
    file_name, kind = resource.file_name, str(resource.kind)
    values = text_values(form, EDIT_FIELDS)
    try:
        data = validated(ResourcePatch, _data(values, ctx, EDIT_FIELDS))
        upload = _upload(form)
        resource = service.update_resource(
            ctx.session, actor=ctx.actor, resource_id=resource_id, data=data, clock=ctx.clock, file=upload
        )
    except DomainError as exc:
        ctx.session.rollback()
        errors = _error(request, exc, EDIT_FIELDS)
        return _form(request, values, resource_id, errors, file_name=file_name, kind=kind)
    finally:
        _close_uploads(form)
    _ = translator(request)
    flash(request, _("已保存资料") + f": {resource.title}")
    return redirect(BASE)


def _change_status(request: Request, ctx: Ctx, resource_id: int, *, publish: bool) -> Response:
    ctx.actor.require(Scope.COMMUNITY_WRITE)
    _ = translator(request)
    change = service.publish if publish else service.archive
    try:
        resource = change(ctx.session, actor=ctx.actor, resource_id=resource_id, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        ctx.session.rollback()
        flash(request, error_text(request, exc), kind="danger")
        return redirect(BASE)
    flash(request, (_("资料已发布") if publish else _("资料已归档")) + f": {resource.title}")
    return redirect(BASE)


@router.post(f"{BASE}/{{resource_id}}/publish")
def publish_resource(request: Request, ctx: ConsoleCtx, resource_id: IdPath) -> Response:
    return _change_status(request, ctx, resource_id, publish=True)


@router.post(f"{BASE}/{{resource_id}}/archive")
def archive_resource(request: Request, ctx: ConsoleCtx, resource_id: IdPath) -> Response:
    return _change_status(request, ctx, resource_id, publish=False)


@router.get(f"{BASE}/{{resource_id}}/file")
def resource_file(request: Request, ctx: ConsoleCtx, resource_id: IdPath) -> Response:
    """The stored file for the operator (not counted as a member download)."""
    ctx.actor.require(Scope.COMMUNITY_READ)
    return file_response(
        service.get_resource(ctx.session, workspace_id=ctx.actor.workspace_id, resource_id=resource_id)
    )
