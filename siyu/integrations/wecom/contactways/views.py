"""Console page of contact ways: `/integrations/wecom/contact-ways` lists every live code's WeCom
ways (QR, state, who they carry, last push, errors) and the latest push; "sync now" queues a push."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.integrations.wecom.config import get_integration
from siyu.integrations.wecom.contactways.service import SYNC_SCOPE
from siyu.integrations.wecom.contactways.tasks import PUSH_KIND
from siyu.jobs.service import enqueue
from siyu.kit.ids import parse_id
from siyu.models import CommunityGroup, LiveCode, LiveCodeRoute, Staff, WecomContactWay, WecomSyncRun
from siyu.web.deps import ConsoleCtx, FormDep
from siyu.web.pages import redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
PAGE = "integrations/contactways/page.html"


@dataclass
class CodeWays:
    """One live code with its ways, for the page."""

    code: LiveCode
    ways: list[WecomContactWay] = field(default_factory=list)
    targets: dict[int, str] = field(default_factory=dict)
    """Way id → who the route points to (staff or group name); pooled ways have none."""


def page_data(ctx: ConsoleCtx, *, show_deleted: bool = False) -> dict[str, Any]:
    """What the page shows: codes with their ways, and the latest push run."""
    session, workspace_id = ctx.session, ctx.actor.workspace_id
    codes = session.scalars(
        select(LiveCode)
        .where(LiveCode.workspace_id == workspace_id)
        .order_by(LiveCode.deleted_at.is_not(None), LiveCode.id)
    ).all()
    query = select(WecomContactWay).where(WecomContactWay.workspace_id == workspace_id)
    if not show_deleted:
        query = query.where(WecomContactWay.deleted_at.is_(None))
    ways = session.scalars(
        query.order_by(WecomContactWay.route_id.is_(None), WecomContactWay.route_id, WecomContactWay.variant)
    ).all()
    names = {
        route_id: staff_name or group_name or ""
        for route_id, staff_name, group_name in session.execute(
            select(LiveCodeRoute.id, Staff.name, CommunityGroup.name)
            .outerjoin(Staff, Staff.id == LiveCodeRoute.staff_id)
            .outerjoin(CommunityGroup, CommunityGroup.id == LiveCodeRoute.group_id)
            .where(LiveCodeRoute.workspace_id == workspace_id)
        ).all()
    }
    by_code = {code.id: CodeWays(code) for code in codes}
    for way in ways:
        entry = by_code.get(way.live_code_id)
        if entry is None:
            continue
        entry.ways.append(way)
        if way.route_id is not None:
            entry.targets[way.id] = names.get(way.route_id, "")
    rows = [entry for entry in by_code.values() if entry.ways or entry.code.deleted_at is None]
    last_run = session.scalar(
        select(WecomSyncRun)
        .where(WecomSyncRun.workspace_id == workspace_id, WecomSyncRun.scope == SYNC_SCOPE)
        .order_by(WecomSyncRun.started_at.desc(), WecomSyncRun.id.desc())
        .limit(1)
    )
    integration = get_integration(session, workspace_id)
    return {
        "rows": rows,
        "last_run": last_run,
        "failures": list((last_run.cursor or {}).get("failures", [])) if last_run else [],
        "configured": bool(integration and integration.is_active),
        "show_deleted": show_deleted,
    }


@router.get("/integrations/wecom/contact-ways")
def contact_ways_page(request: Request, ctx: ConsoleCtx, deleted: str = "") -> Response:
    """The page (`integrations:read`); `?deleted=1` also lists deleted ways."""
    ctx.actor.require(Scope.INTEGRATIONS_READ)
    return render(request, PAGE, page_data(ctx, show_deleted=deleted == "1"))


@router.post("/integrations/wecom/contact-ways/sync")
def sync_now(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Queue a push of the workspace's ways (`integrations:write`); `live_code_id` limits it to one code."""
    ctx.actor.require(Scope.INTEGRATIONS_WRITE)
    _ = translator(request)
    raw = str(form.get("live_code_id") or "").strip()
    args: dict[str, Any] = {}
    if raw:
        live_code_id = parse_id(raw)  # ASCII digits within BIGINT range only ("²" passes isdigit, not int)
        if live_code_id is None:
            flash(request, f"live_code_id: {_('没有找到这个活码')}", kind="danger")
            return render(request, PAGE, page_data(ctx), status_code=422)
        code = ctx.session.scalar(
            select(LiveCode.id).where(LiveCode.id == live_code_id, LiveCode.workspace_id == ctx.actor.workspace_id)
        )
        if code is None:
            flash(request, _("没有找到这个活码"), kind="danger")
            return redirect("/integrations/wecom/contact-ways")
        args["live_code_id"] = code
    enqueue(
        ctx.session,
        kind=PUSH_KIND,
        args=args,
        workspace_id=ctx.actor.workspace_id,
        clock=ctx.clock,
        created_by=ctx.actor.label,
    )
    flash(request, _("已开始同步联系我二维码"))
    return redirect("/integrations/wecom/contact-ways")
