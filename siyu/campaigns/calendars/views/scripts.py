"""Console pages of the script library."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.campaigns.calendars import scripts
from siyu.campaigns.calendars.schemas import (
    ScriptIn,
    ScriptPatch,
)
from siyu.campaigns.calendars.views.forms import build, form_id, retry, text
from siyu.kit.errors import DomainError
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)

# --- scripts -------------------------------------------------------------------------------------

SCRIPT_FIELDS = {"form", "stage", "title", "body", "tags", "customer_id"}


def _script_values(form: FormData) -> dict[str, Any]:
    return {
        "stage": text(form, "stage"),
        "title": text(form, "title"),
        "body": text(form, "body"),
        "tags": [t.strip() for t in text(form, "tags").replace("，", ",").split(",") if t.strip()],
    }


def _scripts_page(
    request: Request, ctx: Ctx, *, q: str | None = None, errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    found = scripts.list_scripts(ctx.session, ctx.actor, q=q)
    return render(
        request,
        "calendars/scripts.html",
        {
            "grouped": scripts.grouped_by_stage(found),
            "q": q or "",
            "errors": errors or {},
            "values": values or {"stage": "greeting", "tags": []},
        },
        status_code=status_code,
    )


@router.get("/calendars/scripts")
def scripts_page(request: Request, ctx: ConsoleCtx, q: str | None = None) -> Response:
    return _scripts_page(request, ctx, q=(q or "")[:100] or None)


@router.post("/calendars/scripts")
def create_script(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    values = _script_values(form)
    try:
        script = scripts.create_script(ctx.session, actor=ctx.actor, data=build(ScriptIn, **values), clock=ctx.clock)
    except DomainError as exc:
        return retry(request, ctx, exc, SCRIPT_FIELDS, lambda **kw: _scripts_page(request, ctx, values=values, **kw))
    _ = translator(request)
    flash(request, _("话术已保存"))
    return redirect(f"/calendars/scripts/{script.id}")


def _script_page(
    request: Request, ctx: Ctx, script_id: int, *, errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None, preview: str | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    script = scripts.get_script(ctx.session, ctx.actor, script_id)
    return render(
        request,
        "calendars/script.html",
        {
            "script": script,
            "errors": errors or {},
            "values": values
            or {"stage": script.stage, "title": script.title, "body": script.body, "tags": script.tags},
            "preview": preview,
        },
        status_code=status_code,
    )


@router.get("/calendars/scripts/{script_id}")
def script_page(request: Request, ctx: ConsoleCtx, script_id: IdPath) -> Response:
    return _script_page(request, ctx, script_id)


@router.post("/calendars/scripts/{script_id}")
def update_script(request: Request, ctx: ConsoleCtx, script_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    values = _script_values(form)
    try:
        data = build(ScriptPatch, **values)
        scripts.update_script(ctx.session, actor=ctx.actor, script_id=script_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        page = lambda **kw: _script_page(request, ctx, script_id, values=values, **kw)  # noqa: E731
        return retry(request, ctx, exc, SCRIPT_FIELDS, page)
    _ = translator(request)
    flash(request, _("话术已保存"))
    return redirect(f"/calendars/scripts/{script_id}")


@router.post("/calendars/scripts/{script_id}/preview")
def preview_script(request: Request, ctx: ConsoleCtx, script_id: IdPath, form: FormDep) -> Response:
    try:
        customer_id = form_id(form, "customer_id")
        assert customer_id is not None
        text, _names = scripts.preview_script(
            ctx.session, actor=ctx.actor, script_id=script_id, customer_id=customer_id
        )
    except DomainError as exc:
        # Shown by the preview form whatever field the service named: readers see no edit form.
        ctx.session.rollback()
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        errors = {"customer_id": error_text(request, exc)}
        return _script_page(request, ctx, script_id, errors=errors, status_code=status)
    return _script_page(request, ctx, script_id, preview=text)


@router.post("/calendars/scripts/{script_id}/delete")
def delete_script(request: Request, ctx: ConsoleCtx, script_id: IdPath) -> Response:
    scripts.delete_script(ctx.session, actor=ctx.actor, script_id=script_id, clock=ctx.clock)
    _ = translator(request)
    flash(request, _("话术已删除"))
    return redirect("/calendars/scripts")
