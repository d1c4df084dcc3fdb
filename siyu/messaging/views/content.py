"""The content library (素材库): list with tag filter and search, new/edit per kind, archive, and
a preview of a content item rendered for one customer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.kit.errors import DomainError
from siyu.messaging.content import known_variables
from siyu.messaging.schemas import ContentIn
from siyu.messaging.service import content_library
from siyu.messaging.views.forms import field_of, text, validated
from siyu.models import ContentItem, ContentKind
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
FORM = "content/form.html"
ATTACHMENT_FIELDS = ("title", "description", "media_url", "link_url", "miniprogram_appid", "miniprogram_page")
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    ContentKind.TEXT: ("subject", "sms_template_code", "link_url"),
    ContentKind.IMAGE: ("media_url",),
    ContentKind.LINK: ("title", "description", "media_url", "link_url"),
    ContentKind.MINIPROGRAM: ("title", "media_url", "miniprogram_appid", "miniprogram_page"),
}
"""The fields each kind of content uses besides name, body, tags and marketing; the others are
left empty on save, so a kind switched in the form leaves no stray attachment behind."""
ALL_FIELDS = ("subject", "sms_template_code", *ATTACHMENT_FIELDS)
SHOWN = frozenset({"form", "name", "kind", "body", "tags", *ALL_FIELDS})


def _values_of(item: ContentItem | None, kind: str = str(ContentKind.TEXT)) -> dict[str, Any]:
    if item is None:
        return {"name": "", "kind": kind, "body": "", "tags": "", "is_marketing": True} | dict.fromkeys(ALL_FIELDS, "")
    return {
        "name": item.name,
        "kind": str(item.kind),
        "body": item.body or "",
        "tags": ", ".join(item.tags or []),
        "is_marketing": item.is_marketing,
    } | {f: getattr(item, f) or "" for f in ALL_FIELDS}


def _values_from(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {k: text(form, k) for k in ("name", "kind", "body", "tags", *ALL_FIELDS)}
    values["is_marketing"] = text(form, "is_marketing") in ("1", "on", "true")
    return values


def _input(values: dict[str, Any]) -> ContentIn:
    kind = values["kind"] or str(ContentKind.TEXT)
    used = KIND_FIELDS.get(kind, ())
    tags = [t.strip() for t in values["tags"].replace("，", ",").split(",") if t.strip()]
    data: dict[str, Any] = {
        "name": values["name"],
        "kind": kind,
        "body": values["body"],
        "tags": tags,
        "is_marketing": values["is_marketing"],
    } | {f: (values[f] or None) if f in used else None for f in ALL_FIELDS}
    return validated(ContentIn, data)


def _form_page(
    request: Request,
    values: dict[str, Any],
    item: ContentItem | None,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "item": item,
        "values": values,
        "errors": errors or {},
        "kinds": [str(k) for k in ContentKind],
        "kind_fields": {str(k): list(v) for k, v in KIND_FIELDS.items()},
        "variables": sorted(known_variables()),
    }
    return render(request, FORM, context, status_code=status_code)


def _refused(request: Request, ctx: Ctx, exc: DomainError, values: dict[str, Any], item_id: int | None) -> Response:
    ctx.session.rollback()
    item = content_library.get_content(ctx.session, ctx.actor, item_id) if item_id is not None else None
    status = exc.status_code if 400 <= exc.status_code < 500 else 400
    errors = {field_of(exc, SHOWN): error_text(request, exc)}
    return _form_page(request, values, item, errors=errors, status_code=status)


@router.get("/content")
def content_page(
    request: Request, ctx: ConsoleCtx, tag: str | None = None, q: str | None = None, archived: bool = False
) -> Response:
    ctx.actor.require(Scope.TOUCH_READ)
    tag, q = (tag or "").strip() or None, (q or "").strip() or None
    items = content_library.list_content(ctx.session, ctx.actor, tag=tag, q=q, include_archived=archived)
    context = {
        "items": items,
        "tags": content_library.all_tags(ctx.session, ctx.actor),
        "tag": tag,
        "q": q or "",
        "archived": archived,
    }
    return render(request, "content/list.html", context)


@router.get("/content/new")
def new_content_page(request: Request, ctx: ConsoleCtx, kind: str = "text") -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    chosen = kind if kind in {str(k) for k in ContentKind} else str(ContentKind.TEXT)
    return _form_page(request, _values_of(None, chosen), None)


@router.post("/content")
def create_content(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Save a new content item; a template with an unknown variable is refused at its field."""
    ctx.actor.require(Scope.TOUCH_WRITE)
    values = _values_from(form)
    try:
        item = content_library.create_content(ctx.session, actor=ctx.actor, data=_input(values), clock=ctx.clock)
    except DomainError as exc:
        return _refused(request, ctx, exc, values, None)
    _ = translator(request)
    flash(request, _("素材已保存"))
    return redirect(f"/content/{item.id}/edit")


@router.get("/content/{content_id}/edit")
def edit_content_page(request: Request, ctx: ConsoleCtx, content_id: IdPath) -> Response:
    """The edit form (read-only for those who may not write) and the per-customer preview."""
    ctx.actor.require(Scope.TOUCH_READ)
    item = content_library.get_content(ctx.session, ctx.actor, content_id)
    return _form_page(request, _values_of(item), item)


@router.post("/content/{content_id}/edit")
def update_content(request: Request, ctx: ConsoleCtx, content_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    values = _values_from(form)
    try:
        content_library.update_content(
            ctx.session, actor=ctx.actor, content_id=content_id, data=_input(values), clock=ctx.clock
        )
    except DomainError as exc:
        return _refused(request, ctx, exc, values, content_id)
    _ = translator(request)
    flash(request, _("素材已保存"))
    return redirect(f"/content/{content_id}/edit")


@router.post("/content/{content_id}/archive")
def archive_content(request: Request, ctx: ConsoleCtx, content_id: IdPath) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    _ = translator(request)
    try:
        content_library.archive_content(ctx.session, actor=ctx.actor, content_id=content_id, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code in (403, 404):
            raise
        ctx.session.rollback()
        flash(request, error_text(request, exc), kind="error")
        return redirect(f"/content/{content_id}/edit")
    flash(request, _("素材已归档"))
    return redirect("/content")


@router.get("/content/{content_id}/preview")
def preview(request: Request, ctx: ConsoleCtx, content_id: IdPath, customer_id: str = "") -> Response:
    """The message as one customer would get it, or why it cannot be rendered for them (HTMX)."""
    ctx.actor.require(Scope.TOUCH_READ)
    _ = translator(request)
    context: dict[str, Any] = {"message": None, "error": None, "customer_id": customer_id}
    if not customer_id.isascii() or not customer_id.isdigit() or len(customer_id) > 18:
        context["error"] = _("请输入客户 ID")
    else:
        try:
            context["message"] = content_library.preview_content(
                ctx.session, actor=ctx.actor, content_id=content_id, customer_id=int(customer_id), clock=ctx.clock
            )
        except DomainError as exc:
            context["error"] = error_text(request, exc)
    return render(request, "content/_preview.html", context)
