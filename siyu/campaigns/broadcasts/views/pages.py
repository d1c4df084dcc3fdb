"""Broadcast list (status badges), the detail and results page, and the submit, approve and cancel buttons."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.campaigns.broadcasts import service
from siyu.campaigns.broadcasts.views.wizard import submitted_message
from siyu.campaigns.results.broadcast import broadcast_results
from siyu.kit.errors import DomainError
from siyu.models import Broadcast, BroadcastStatus, ChannelAccount, ContentItem, CouponTemplate, Segment
from siyu.web.deps import ConsoleCtx, Ctx, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)


@router.get("/broadcasts")
def broadcasts_page(request: Request, ctx: ConsoleCtx, status: str | None = None) -> Response:
    ctx.actor.require(Scope.TOUCH_READ)
    chosen = BroadcastStatus(status) if status in {str(s) for s in BroadcastStatus} else None
    rows = service.list_broadcasts(ctx.session, ctx.actor, status=chosen)
    names = _segment_names(ctx.session, ctx.actor.workspace_id, {b.segment_id for b in rows})
    context = {
        "rows": rows,
        "segment_names": names,
        "status": chosen,
        "statuses": [str(s) for s in BroadcastStatus],
    }
    return render(request, "broadcasts/list.html", context)


def _segment_names(session: Session, workspace_id: int, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(
        select(Segment.id, Segment.name).where(Segment.workspace_id == workspace_id, Segment.id.in_(ids))
    )
    return {segment_id: name for segment_id, name in rows}


# --- detail and results ----------------------------------------------------------------------


def _names(ctx: Ctx, broadcast: Broadcast) -> dict[str, Any]:
    ws = ctx.actor.workspace_id
    accounts = dict(
        ctx.session.execute(
            select(ChannelAccount.id, ChannelAccount.name).where(
                ChannelAccount.workspace_id == ws, ChannelAccount.id.in_(broadcast.channel_account_ids)
            )
        ).all()
    )
    content_ids = [v.get("content_id") for v in broadcast.variants]
    contents = dict(
        ctx.session.execute(
            select(ContentItem.id, ContentItem.name).where(
                ContentItem.workspace_id == ws, ContentItem.id.in_(content_ids)
            )
        ).all()
    )
    template_id = service.coupon_template_of(broadcast)
    template = (
        ctx.session.scalar(
            select(CouponTemplate).where(CouponTemplate.workspace_id == ws, CouponTemplate.id == template_id)
        )
        if template_id is not None
        else None
    )
    return {
        "coupon_template": template,
        "account_names": accounts,
        "content_names": contents,
        "segment_names": _segment_names(ctx.session, ws, {broadcast.segment_id}),
    }


@router.get("/broadcasts/{broadcast_id}")
def broadcast_page(request: Request, ctx: ConsoleCtx, broadcast_id: IdPath) -> Response:
    """Settings, brief and status; once planned, the numbers, the variants and the holdout comparison."""
    results = broadcast_results(ctx.session, actor=ctx.actor, broadcast_id=broadcast_id, clock=ctx.clock)
    broadcast = results.broadcast
    context: dict[str, Any] = {
        "broadcast": broadcast,
        "status": str(broadcast.status),
        "editable": broadcast.status in service.EDITABLE,
        "cancellable": broadcast.status in service.CANCELLABLE,
        "results": results if results.planned else None,
        "errors": {},
    } | _names(ctx, broadcast)
    return render(request, "broadcasts/detail.html", context)


# --- actions -----------------------------------------------------------------------------------


def _act(request: Request, ctx: Ctx, broadcast_id: int, action: str) -> Response:
    """Run one lifecycle action; a refusal (empty segment, wrong state) comes back as a message."""
    _ = translator(request)
    actions = {
        "submit": (service.submit_broadcast, None),
        "approve": (service.approve_broadcast, _("已批准，将按计划发送")),
        "cancel": (service.cancel_broadcast, _("群发已取消")),
    }
    run, message = actions[action]
    try:
        broadcast = run(ctx.session, actor=ctx.actor, broadcast_id=broadcast_id, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code in (403, 404):
            raise
        ctx.session.rollback()
        flash(request, error_text(request, exc), kind="error")
        return redirect(f"/broadcasts/{broadcast_id}")
    flash(request, message if message is not None else submitted_message(request, broadcast))
    return redirect(f"/broadcasts/{broadcast_id}")


@router.post("/broadcasts/{broadcast_id}/submit")
def submit(request: Request, ctx: ConsoleCtx, broadcast_id: IdPath) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    return _act(request, ctx, broadcast_id, "submit")


@router.post("/broadcasts/{broadcast_id}/approve")
def approve(request: Request, ctx: ConsoleCtx, broadcast_id: IdPath) -> Response:
    ctx.actor.require(Scope.TOUCH_APPROVE)
    return _act(request, ctx, broadcast_id, "approve")


@router.post("/broadcasts/{broadcast_id}/cancel")
def cancel(request: Request, ctx: ConsoleCtx, broadcast_id: IdPath) -> Response:
    ctx.actor.require(Scope.TOUCH_WRITE)
    return _act(request, ctx, broadcast_id, "cancel")
