"""Console page of tag sync: `/integrations/wecom/tags` shows the linked tags, the tag groups (with
"同步到企业微信" for a siyu group not in WeCom yet), the latest pull and push runs, pending
`mark_tag` retries, deletions held by the mass-delete guard (with a confirm button) and recent
conflicts/errors; "pull now" and "push now" queue the jobs, once (`integrations:write`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.integrations.wecom.config import get_integration
from siyu.integrations.wecom.tags.state import MAP_SCOPE, RUN_SCOPE
from siyu.integrations.wecom.tags.sync import opt_in_group
from siyu.integrations.wecom.tags.tasks import PULL_KIND, PUSH_KIND, queue_once
from siyu.jobs.service import enqueue
from siyu.kit.errors import NotFound
from siyu.models import Customer, Job, JobStatus, Tag, TagGroup, WecomSyncRun
from siyu.web.deps import ConsoleCtx
from siyu.web.pages import redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
PAGE = "integrations/tags/page.html"
PATH = "/integrations/wecom/tags"
RECENT_RUNS = 10


def page_data(ctx: ConsoleCtx) -> dict[str, Any]:
    """What the page shows: link counts, recent runs, the mapping's issues and pending retries."""
    session, workspace_id = ctx.session, ctx.actor.workspace_id
    linked, total = session.execute(
        select(func.count(Tag.wecom_tag_id), func.count(Tag.id)).where(Tag.workspace_id == workspace_id)
    ).one()
    runs = session.scalars(
        select(WecomSyncRun)
        .where(WecomSyncRun.workspace_id == workspace_id, WecomSyncRun.scope == RUN_SCOPE)
        .order_by(WecomSyncRun.started_at.desc(), WecomSyncRun.id.desc())
        .limit(RECENT_RUNS)
    ).all()
    mapping = session.scalar(
        select(WecomSyncRun).where(WecomSyncRun.workspace_id == workspace_id, WecomSyncRun.scope == MAP_SCOPE).limit(1)
    )
    cursor = (mapping.cursor if mapping else None) or {}
    integration = get_integration(session, workspace_id)
    pending = list(cursor.get("pending") or [])
    names = dict(session.execute(select(Tag.id, Tag.name).where(Tag.workspace_id == workspace_id)).all())
    customer_names = dict(
        session.execute(
            select(Customer.id, Customer.name).where(Customer.id.in_([int(p["customer_id"]) for p in pending] or [-1]))
        ).all()
    )
    waiting = set(
        session.scalars(
            select(Job.kind).where(
                Job.workspace_id == workspace_id,
                Job.kind.in_([PULL_KIND, PUSH_KIND]),
                Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
            )
        )
    )
    groups = session.scalars(
        select(TagGroup).where(TagGroup.workspace_id == workspace_id).order_by(TagGroup.sort_order, TagGroup.id)
    ).all()
    held = [e.get("name") for e in (cursor.get("groups") or {}).values() if e.get("held")]
    return {
        "linked": int(linked or 0),
        "total": int(total or 0),
        "groups_linked": sum(1 for g in groups if g.wecom_group_id),
        "groups": groups,
        "push_groups": set(cursor.get("push_groups") or []),
        "runs": runs,
        "issues": list(cursor.get("issues") or []),
        "pending": [
            {
                "customer": customer_names.get(int(p["customer_id"])) or f"#{p['customer_id']}",
                "tag": names.get(int(p["tag_id"])) or f"#{p['tag_id']}",
                "attempts": int(p.get("attempts") or 0),
            }
            for p in pending
        ],
        "confirm": dict(cursor.get("confirm") or {}),
        "held": held,
        "waiting": waiting,
        "configured": bool(integration and integration.is_active),
        "last_error": integration.last_error if integration else None,
    }


@router.get(PATH)
def tags_page(request: Request, ctx: ConsoleCtx) -> Response:
    """The page (`integrations:read`)."""
    ctx.actor.require(Scope.INTEGRATIONS_READ)
    return render(request, PAGE, page_data(ctx))


def _queue(request: Request, ctx: ConsoleCtx, kind: str, message: str) -> Response:
    ctx.actor.require(Scope.INTEGRATIONS_WRITE)
    _ = translator(request)
    _job, queued = queue_once(
        ctx.session, kind=kind, workspace_id=ctx.actor.workspace_id, clock=ctx.clock, created_by=ctx.actor.label
    )
    flash(request, message if queued else _("已在排队，无需重复提交"))
    return redirect(PATH)


@router.post(PATH + "/pull")
def pull_now(request: Request, ctx: ConsoleCtx) -> Response:
    """Queue a pull of WeCom's tags (`integrations:write`)."""
    _ = translator(request)
    return _queue(request, ctx, PULL_KIND, _("已开始从企业微信拉取标签"))


@router.post(PATH + "/push")
def push_now(request: Request, ctx: ConsoleCtx) -> Response:
    """Queue a push of siyu's tag changes (`integrations:write`)."""
    _ = translator(request)
    return _queue(request, ctx, PUSH_KIND, _("已开始向企业微信推送标签"))


@router.post(PATH + "/confirm-deletes")
def confirm_deletes(request: Request, ctx: ConsoleCtx) -> Response:
    """The operator confirms the deletions the mass-delete guard held: a push (pull first) that may
    delete them, both ways (`integrations:write`)."""
    ctx.actor.require(Scope.INTEGRATIONS_WRITE)
    _ = translator(request)
    enqueue(
        ctx.session,
        kind=PUSH_KIND,
        args={"allow_mass_delete": True},
        workspace_id=ctx.actor.workspace_id,
        clock=ctx.clock,
        created_by=ctx.actor.label,
    )
    flash(request, _("已确认删除，正在同步"))
    return redirect(PATH)


@router.post(PATH + "/groups/{group_id}/sync")
def sync_group_to_wecom(request: Request, ctx: ConsoleCtx, group_id: int) -> Response:
    """Opt a siyu tag group in: the next push creates it and its tags in WeCom (`integrations:write`)."""
    ctx.actor.require(Scope.INTEGRATIONS_WRITE)
    _ = translator(request)
    if not opt_in_group(ctx.session, ctx.actor.workspace_id, group_id, ctx.clock):
        raise NotFound("tag group not found or already in WeCom", details={"field": "group_id"})
    return _queue(request, ctx, PUSH_KIND, _("该标签组将同步到企业微信"))
