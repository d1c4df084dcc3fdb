"""The audit log in the console: who changed what, newest first."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.audit.service import list_entries
from siyu.auth.permissions import Scope
from siyu.web.deps import ConsoleCtx
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/audit")
def audit_log(
    request: Request,
    ctx: ConsoleCtx,
    cursor: str | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
) -> Response:
    ctx.actor.require(Scope.AUDIT_READ)
    page = list_entries(
        ctx.session,
        workspace_id=ctx.actor.workspace_id,
        cursor=cursor,
        limit=50,
        entity_type=entity_type or None,
        entity_id=entity_id or None,
    )
    params = [(k, v) for k, v in (("entity_type", entity_type), ("entity_id", entity_id)) if v]
    next_url = "/audit?" + urlencode([*params, ("cursor", page.next_cursor)]) if page.next_cursor else None
    return render(
        request,
        "audit/list.html",
        {"entries": page.items, "next_url": next_url, "entity_type": entity_type or "", "entity_id": entity_id or ""},
    )
