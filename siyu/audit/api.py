"""HTTP API for the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from siyu.audit.service import list_entries
from siyu.auth.permissions import Scope
from siyu.web.deps import Ctx, require

router = APIRouter(prefix="/api/v1", tags=["audit"])


@router.get("/audit")
def audit_log(
    ctx: Annotated[Ctx, Depends(require(Scope.AUDIT_READ))],
    entity_type: str | None = None,
    entity_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    page = list_entries(
        ctx.session,
        workspace_id=ctx.actor.workspace_id,
        cursor=cursor,
        limit=limit,
        entity_type=entity_type,
        entity_id=entity_id,
    )
    return {
        "items": [
            {
                "id": e.id,
                "actor": e.actor_label,
                "actor_type": e.actor_type,
                "action": e.action,
                "entity_type": e.entity_type,
                "entity_id": e.entity_id,
                "before": e.before,
                "after": e.after,
                "request_id": e.request_id,
                "occurred_at": e.occurred_at,
            }
            for e in page.items
        ],
        "next_cursor": page.next_cursor,
    }
