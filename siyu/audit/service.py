"""Recording and reading audit entries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import Clock
from siyu.kit.logging import request_id_var
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.models import AuditEntry


def record(
    session: Session,
    actor: Actor,
    *,
    action: str,
    entity_type: str,
    entity_id: int | str | None,
    clock: Clock,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add one audit row for a change by `actor` (in the caller's transaction)."""
    entry = AuditEntry(
        workspace_id=actor.workspace_id,
        actor_type=actor.kind,
        actor_user_id=actor.user_id,
        actor_token_id=actor.token_id,
        actor_label=actor.label,
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        before=before,
        after=after,
        request_id=request_id_var.get(),
        occurred_at=clock.now(),
    )
    session.add(entry)
    return entry


def list_entries(
    session: Session,
    *,
    workspace_id: int,
    cursor: str | None = None,
    limit: int = 50,
    entity_type: str | None = None,
    entity_id: str | None = None,
) -> Page[AuditEntry]:
    """Audit entries, newest first, cursor-paginated."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(AuditEntry).where(AuditEntry.workspace_id == workspace_id)
    if entity_type:
        query = query.where(AuditEntry.entity_type == entity_type)
    if entity_id:
        query = query.where(AuditEntry.entity_id == entity_id)
    if cursor:
        query = query.where(AuditEntry.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)
