"""The content library (素材库): message templates with their attachment, tagged, never deleted.

Broadcasts and deliveries refer to content ids, so content is archived rather than deleted.
Every save runs `content.check_content`: a template with an unknown variable or a syntax error
is a 422 naming the field (and the variable), before anyone tries to send it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.customers.repository import get_visible
from siyu.db import get_database
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput, NotFound
from siyu.messaging import content
from siyu.messaging.schemas import ContentIn
from siyu.models import ContentItem, ContentKind, Staff, Workspace

_LIST_LIMIT = 500
PREVIEW_COUPON = "PREVIEW-COUPON"
"""Stands in for `{{ coupon_code }}` in previews: the real code comes from the step that sends."""


def list_content(
    session: Session, actor: Actor, *, tag: str | None = None, q: str | None = None, include_archived: bool = False
) -> Sequence[ContentItem]:
    """Content newest first, optionally with a tag and/or a text in the name or body (case-insensitive)."""
    actor.require(Scope.TOUCH_READ)
    query = select(ContentItem).where(ContentItem.workspace_id == actor.workspace_id)
    if not include_archived:
        query = query.where(ContentItem.archived_at.is_(None))
    items = session.scalars(query.order_by(ContentItem.id.desc())).all()
    # Filtered here, not in SQL: tags are a JSON list (no portable containment test on SQLite and
    # PostgreSQL alike) and a library holds hundreds of entries, not millions.
    if tag:
        items = [i for i in items if tag in (i.tags or [])]
    if q and q.strip():
        needle = q.strip().casefold()
        items = [i for i in items if needle in i.name.casefold() or needle in (i.body or "").casefold()]
    return list(items[:_LIST_LIMIT])


def get_content(session: Session, actor: Actor, content_id: int) -> ContentItem:
    """One content item of the actor's workspace (archived ones too: old broadcasts show them)."""
    actor.require(Scope.TOUCH_READ)
    item = session.scalar(
        select(ContentItem).where(ContentItem.id == content_id, ContentItem.workspace_id == actor.workspace_id)
    )
    if item is None:
        raise NotFound(f"content {content_id} not found")
    return item


_REQUIRED: dict[ContentKind, tuple[str, ...]] = {
    ContentKind.TEXT: ("body",),
    ContentKind.IMAGE: ("media_url",),
    ContentKind.LINK: ("link_url", "title"),
    ContentKind.MINIPROGRAM: ("miniprogram_appid", "miniprogram_page", "title"),
}


def _values(data: ContentIn) -> dict[str, Any]:
    values: dict[str, Any] = data.model_dump()
    for key in ("subject", "title", "description", "miniprogram_appid", "miniprogram_page", "sms_template_code"):
        if isinstance(values[key], str):
            values[key] = values[key].strip() or None
    for field in _REQUIRED[data.kind]:
        if not (values.get(field) or "").strip():
            raise InvalidInput(f"{field}: required for {data.kind} content", details={"field": field})
    content.check_content(values)
    return values


def _audit(item: ContentItem) -> dict[str, Any]:
    return {"name": item.name, "kind": str(item.kind), "tags": list(item.tags or []), "is_marketing": item.is_marketing}


def create_content(session: Session, *, actor: Actor, data: ContentIn, clock: Clock) -> ContentItem:
    """Add an entry; an unknown variable or bad template syntax is a 422 naming the field."""
    actor.require(Scope.TOUCH_WRITE)
    values = _values(data)
    now = clock.now()
    item = ContentItem(workspace_id=actor.workspace_id, created_at=now, updated_at=now, archived_at=None, **values)
    session.add(item)
    session.flush()
    record(session, actor, action="create", entity_type="content", entity_id=item.id, after=_audit(item), clock=clock)
    return item


def update_content(session: Session, *, actor: Actor, content_id: int, data: ContentIn, clock: Clock) -> ContentItem:
    """Replace an entry. Deliveries already sent keep the message they rendered; queued ones render
    the new text (and deduplication treats changed text as new content)."""
    actor.require(Scope.TOUCH_WRITE)
    item = get_content(session, actor, content_id)
    if item.archived_at is not None:
        raise InvalidInput("archived content cannot be changed", details={"field": "content_id"})
    values = _values(data)
    before = _audit(item)
    for key, value in values.items():
        setattr(item, key, value)
    item.updated_at = clock.now()
    record(
        session,
        actor,
        action="update",
        entity_type="content",
        entity_id=item.id,
        before=before,
        after=_audit(item),
        clock=clock,
    )
    return item


def archive_content(session: Session, *, actor: Actor, content_id: int, clock: Clock) -> ContentItem:
    """Hide an entry from the library and from new broadcasts (idempotent; never deleted)."""
    actor.require(Scope.TOUCH_WRITE)
    item = get_content(session, actor, content_id)
    if item.archived_at is None:
        item.archived_at = item.updated_at = clock.now()
        record(session, actor, action="archive", entity_type="content", entity_id=item.id, clock=clock)
    return item


def all_tags(session: Session, actor: Actor) -> list[str]:
    """Every tag used by live content, sorted (for the library's filter)."""
    actor.require(Scope.TOUCH_READ)
    rows = session.scalars(
        select(ContentItem.tags).where(
            ContentItem.workspace_id == actor.workspace_id, ContentItem.archived_at.is_(None)
        )
    )
    return sorted({str(tag) for tags in rows for tag in (tags or [])})


def preview_content(
    session: Session, *, actor: Actor, content_id: int, customer_id: int, clock: Clock
) -> dict[str, Any]:
    """The message `content_id` would render for one customer the actor may see.

    Send-time values stand in as they would be filled: the link is the content's own link_url
    (no short link exists yet), the brand is the workspace name, the staff name the customer's
    owner, the unsubscribe link a placeholder, the coupon code `PREVIEW_COUPON`. A profile
    variable the customer lacks is a 422 naming it — exactly what a send would fail on.
    """
    actor.require(Scope.TOUCH_READ)
    item = get_content(session, actor, content_id)
    customer = get_visible(session, actor, customer_id)
    names = content.check_content(item)
    values: dict[str, Any] = dict(content.load_variables(session, actor.workspace_id, [customer], names)[customer.id])
    workspace = session.get(Workspace, actor.workspace_id)
    if workspace is not None:
        values["brand"] = workspace.name
    if item.link_url:
        values["link"] = item.link_url
    if customer.owner_staff_id is not None:
        staff_name = session.scalar(select(Staff.name).where(Staff.id == customer.owner_staff_id))
        if staff_name:
            values["staff_name"] = staff_name
    values["unsubscribe_url"] = f"{get_database().settings.public_url.rstrip('/')}/u/preview"
    values["coupon_code"] = PREVIEW_COUPON
    missing = sorted(names - set(values))
    if missing:
        raise InvalidInput(
            f"{{{{ {missing[0]} }}}} has no value for this customer",
            details={"field": "customer_id", "variable": missing[0]},
        )
    try:
        return content.render(item, values)
    except content.RenderError as exc:
        raise InvalidInput(str(exc), details={"field": "customer_id"}) from exc
