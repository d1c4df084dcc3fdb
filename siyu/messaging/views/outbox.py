"""The sandbox outbox: what the sandbox adapter "sent", newest first, a page at a time."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from siyu.auth.permissions import Actor, Scope
from siyu.messaging.service import outbox
from siyu.models import ChannelAccount, Customer
from siyu.web.deps import ConsoleCtx
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


def account_names(session: Session, workspace_id: int, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(
        select(ChannelAccount.id, ChannelAccount.name).where(
            ChannelAccount.workspace_id == workspace_id, ChannelAccount.id.in_(ids)
        )
    )
    return {account_id: name for account_id, name in rows}


def _customer_names(session: Session, actor: Actor, ids: set[int]) -> dict[int, str | None]:
    # Names only: the outbox is a touch page, and the name is what the message greeted them with.
    if not ids:
        return {}
    rows = session.execute(
        select(Customer.id, Customer.name).where(Customer.workspace_id == actor.workspace_id, Customer.id.in_(ids))
    )
    return {customer_id: name for customer_id, name in rows}


@router.get("/outbox")
def outbox_page(request: Request, ctx: ConsoleCtx, cursor: str | None = None) -> Response:
    ctx.actor.require(Scope.TOUCH_READ)
    page = outbox.list_outbox(ctx.session, ctx.actor, cursor=cursor, limit=PAGE_SIZE)
    context: dict[str, Any] = {
        "messages": page.items,
        "next_url": f"/outbox?cursor={page.next_cursor}" if page.next_cursor else None,
        "account_names": account_names(ctx.session, ctx.actor.workspace_id, {m.channel_account_id for m in page.items}),
        "customer_names": _customer_names(ctx.session, ctx.actor, {m.customer_id for m in page.items}),
    }
    return render(request, "outbox/list.html", context)
