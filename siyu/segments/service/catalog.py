"""What the builder offers to pick from: fields with their operators, tags, staff, channels,
segments, event types, SKUs, categories, platforms and identity types."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.models import (
    Channel,
    ConsentChannel,
    IdentityType,
    IdentityTypeDefinition,
    Segment,
    Staff,
    Tag,
    TagGroup,
)
from siyu.segments.definition import CONDITION_KINDS
from siyu.segments.validation import field_catalog

MAX_DISTINCT = 200

# A loose index scan: one index probe per distinct value, however many rows share each value
# (a plain DISTINCT would read every event of the workspace).
_DISTINCT = """
WITH RECURSIVE found(value) AS (
    SELECT min({column}) FROM {table} WHERE workspace_id = :ws
    UNION ALL
    SELECT (SELECT min({column}) FROM {table} WHERE workspace_id = :ws AND {column} > found.value)
    FROM found WHERE found.value IS NOT NULL
)
SELECT value FROM found WHERE value IS NOT NULL LIMIT :limit
"""
_DISTINCT_SOURCES = {
    "event_types": ("customer_events", "type"),
    "skus": ("order_items", "sku"),
    "categories": ("order_items", "category"),
    "platforms": ("orders", "platform"),
}


def distinct_values(session: Session, workspace_id: int, name: str) -> list[str]:
    table, column = _DISTINCT_SOURCES[name]
    statement = text(_DISTINCT.format(table=table, column=column))
    return [row[0] for row in session.execute(statement, {"ws": workspace_id, "limit": MAX_DISTINCT})]


def builder_catalog(session: Session, actor: Actor) -> dict[str, Any]:
    """Everything the visual builder lists, for the actor's workspace."""
    actor.require(Scope.SEGMENTS_READ)
    ws = actor.workspace_id
    tags = session.execute(
        select(Tag.id, Tag.name, TagGroup.name)
        .join(TagGroup, TagGroup.id == Tag.group_id)
        .where(Tag.workspace_id == ws)
        .order_by(TagGroup.sort_order, TagGroup.name, Tag.name)
    ).all()
    identity_types = [str(t) for t in IdentityType] + list(
        session.scalars(
            select(IdentityTypeDefinition.key)
            .where(IdentityTypeDefinition.workspace_id == ws)
            .order_by(IdentityTypeDefinition.key)
        )
    )
    return {
        "kinds": list(CONDITION_KINDS),
        "fields": [
            {"key": s.key, "label": s.label, "type": str(s.type), "ops": sorted(s.ops), "choices": list(s.choices)}
            for s in field_catalog(session, ws).values()
        ],
        "tags": [{"id": i, "name": n, "group": g} for i, n, g in tags],
        "staff": [
            {"id": i, "name": n}
            for i, n in session.execute(
                select(Staff.id, Staff.name).where(Staff.workspace_id == ws).order_by(Staff.name)
            )
        ],
        "channels": [
            {"id": i, "name": n}
            for i, n in session.execute(
                select(Channel.id, Channel.name).where(Channel.workspace_id == ws).order_by(Channel.name)
            )
        ],
        "segments": [
            {"id": i, "name": n, "kind": str(k)}
            for i, n, k in session.execute(
                select(Segment.id, Segment.name, Segment.kind)
                .where(Segment.workspace_id == ws, Segment.archived_at.is_(None))
                .order_by(Segment.name)
            )
        ],
        "identity_types": identity_types,
        "consent_channels": [str(c) for c in ConsentChannel],
        **{name: distinct_values(session, ws, name) for name in _DISTINCT_SOURCES},
    }
