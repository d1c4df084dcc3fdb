"""Console page of WeCom mass-message and moment tasks: `/integrations/wecom/messages` (tab
`?tab=moments` for moments) with each task's sender, status, counts and reminders; "remind now"
and "refresh now" (a queued reconciliation)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.integrations.wecom.config import get_integration, load_config
from siyu.integrations.wecom.errors import NotConfigured
from siyu.integrations.wecom.messages.service import MAX_REMINDS, remind_task
from siyu.integrations.wecom.messages.tasks import SYNC_KIND
from siyu.jobs.service import enqueue
from siyu.kit.errors import DomainError
from siyu.models import MomentPost, Persona, Staff, WecomMessageTask, WecomMomentTask
from siyu.web.deps import ConsoleCtx, database
from siyu.web.pages import redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
PAGE = "integrations/messages/page.html"
URL = "/integrations/wecom/messages"
LIMIT = 200


def page_data(ctx: ConsoleCtx, tab: str) -> dict[str, Any]:
    """The latest message tasks (with staff names) and moment tasks (with their posts)."""
    session, workspace_id = ctx.session, ctx.actor.workspace_id
    tasks = session.scalars(
        select(WecomMessageTask)
        .where(WecomMessageTask.workspace_id == workspace_id)
        .order_by(WecomMessageTask.created_at.desc(), WecomMessageTask.id.desc())
        .limit(LIMIT)
    ).all()
    names = dict(
        session.execute(
            select(Staff.wecom_user_id, Staff.name).where(
                Staff.workspace_id == workspace_id, Staff.wecom_user_id.in_({t.sender for t in tasks})
            )
        ).all()
    )
    moments = session.execute(
        select(WecomMomentTask, MomentPost, Persona.name)
        .join(MomentPost, MomentPost.id == WecomMomentTask.moment_post_id)
        .join(Persona, Persona.id == MomentPost.persona_id)
        .where(WecomMomentTask.workspace_id == workspace_id)
        .order_by(WecomMomentTask.created_at.desc(), WecomMomentTask.id.desc())
        .limit(LIMIT)
    ).all()
    integration = get_integration(session, workspace_id)
    return {
        "tab": "moments" if tab == "moments" else "messages",
        "tasks": tasks,
        "names": names,
        "moments": moments,
        "max_reminds": MAX_REMINDS,
        "configured": bool(integration and integration.is_active),
    }


@router.get(URL)
def messages_page(request: Request, ctx: ConsoleCtx, tab: str = "messages") -> Response:
    """The page (`integrations:read`)."""
    ctx.actor.require(Scope.INTEGRATIONS_READ)
    return render(request, PAGE, page_data(ctx, tab))


@router.post(URL + "/refresh")
def refresh_now(request: Request, ctx: ConsoleCtx) -> Response:
    """Queue a reconciliation of this workspace's tasks (`integrations:write`)."""
    ctx.actor.require(Scope.INTEGRATIONS_WRITE)
    _ = translator(request)
    enqueue(
        ctx.session,
        kind=SYNC_KIND,
        args={},
        workspace_id=ctx.actor.workspace_id,
        clock=ctx.clock,
        created_by=ctx.actor.label,
    )
    flash(request, _("已开始刷新群发与朋友圈任务"))
    return redirect(URL)


@router.post(URL + "/{task_id}/remind")
def remind_now(request: Request, ctx: ConsoleCtx, task_id: int) -> Response:
    """Remind the sender of a waiting task (`integrations:write`); refusals are flashed."""
    ctx.actor.require(Scope.INTEGRATIONS_WRITE)
    _ = translator(request)
    try:
        config = load_config(ctx.session, ctx.actor.workspace_id)
        # The request's own transaction ends here: the reminder is claimed, WeCom asked and the
        # answer recorded in transactions of their own, with none open during the call.
        ctx.session.commit()
        remind_task(database(request), config, task_id, ctx.clock)
    except NotConfigured:
        flash(request, _("尚未配置企业微信"), kind="danger")
        return redirect(URL)
    except DomainError as exc:
        # A refusal was recorded on the rows and the integration in its own transaction.
        flash(request, _("提醒失败：") + str(exc), kind="danger")
        return redirect(URL)
    flash(request, _("已提醒成员发送"))
    return redirect(URL)
