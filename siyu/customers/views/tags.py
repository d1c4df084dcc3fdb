"""The tag library: groups, their tags and how many customers carry each."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.customers.service import tags
from siyu.kit.errors import DomainError
from siyu.kit.ids import MAX_ID
from siyu.web.deps import ConsoleCtx, Ctx, IdPath
from siyu.web.pages import form_error, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
TEMPLATE = "tags/index.html"


def _context(ctx: Ctx, **extra: Any) -> dict[str, Any]:
    return {"groups": tags.list_groups(ctx.session, ctx.actor.workspace_id), "errors": {}, "values": {}} | extra


@router.get("/tags")
def tag_library(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.CUSTOMERS_READ)
    return render(request, TEMPLATE, _context(ctx))


@router.post("/tags/groups")
def create_group(request: Request, ctx: ConsoleCtx, name: Annotated[str, Form()] = "") -> Response:
    try:
        tags.create_group(ctx.session, actor=ctx.actor, name=name, clock=ctx.clock)
    except DomainError as exc:
        return form_error(request, ctx, exc, TEMPLATE, lambda: _context(ctx, values={"group": name}), field="group")
    _ = translator(request)
    flash(request, _("标签组已创建"))
    return redirect("/tags")


@router.post("/tags")
def create_tag(
    request: Request,
    ctx: ConsoleCtx,
    group_id: Annotated[int, Form(gt=0, le=MAX_ID)],
    name: Annotated[str, Form()] = "",
) -> Response:
    try:
        tags.create_tag(ctx.session, actor=ctx.actor, group_id=group_id, name=name, clock=ctx.clock)
    except DomainError as exc:
        values = {"tag": name, "group_id": group_id}
        return form_error(request, ctx, exc, TEMPLATE, lambda: _context(ctx, values=values), field=f"group-{group_id}")
    _ = translator(request)
    flash(request, _("标签已创建"))
    return redirect("/tags")


@router.post("/tags/{tag_id}/delete")
def delete_tag(request: Request, ctx: ConsoleCtx, tag_id: IdPath) -> Response:
    tags.delete_tag(ctx.session, actor=ctx.actor, tag_id=tag_id, clock=ctx.clock)
    _ = translator(request)
    flash(request, _("标签已删除"))
    return redirect("/tags")
