"""Creating and finding workspaces."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput, NotFound
from siyu.models import Workspace

DEFAULT_SLUG = "default"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def create_workspace(
    session: Session,
    *,
    slug: str,
    name: str,
    clock: Clock,
    timezone: str = "Asia/Shanghai",
    wecom_corp_id: str | None = None,
) -> Workspace:
    """Create a workspace (a brand)."""
    if not _SLUG.match(slug):
        raise InvalidInput("slug must be lower-case letters, digits and dashes", details={"field": "slug"})
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {timezone!r}", details={"field": "timezone"}) from exc
    if session.scalar(select(Workspace.id).where(Workspace.slug == slug)) is not None:
        raise Conflict(f"workspace {slug!r} exists", details={"field": "slug"})
    workspace = Workspace(slug=slug, name=name, timezone=timezone, wecom_corp_id=wecom_corp_id, created_at=clock.now())
    session.add(workspace)
    session.flush()
    return workspace


def ensure_default_workspace(session: Session, *, clock: Clock, name: str = "默认品牌") -> Workspace:
    """Embedded mode's single workspace: created on first use so one brand never notices."""
    workspace = session.scalar(select(Workspace).where(Workspace.slug == DEFAULT_SLUG))
    return workspace or create_workspace(session, slug=DEFAULT_SLUG, name=name, clock=clock)


def get_by_slug(session: Session, slug: str) -> Workspace:
    workspace = session.scalar(select(Workspace).where(Workspace.slug == slug))
    if workspace is None:
        raise NotFound(f"workspace {slug!r} not found")
    return workspace


def set_survivorship(session: Session, *, actor: Actor, rules: dict[str, str], clock: Clock) -> Workspace:
    """Set which value wins per profile field when records of one person meet.

    `rules` maps a profile field or `attr.<key>` to "most_recent" or "oldest"; fields left out
    use the default (most recent, except first_channel: oldest).
    """
    from siyu.customers.service.definitions import attribute_definitions
    from siyu.customers.service.survivorship import ATTRIBUTE_PREFIX, Rule
    from siyu.models.customer import PROFILE_FIELDS

    actor.require(Scope.ORG_WRITE)
    attributes = attribute_definitions(session, actor.workspace_id)
    known = set(PROFILE_FIELDS) | {ATTRIBUTE_PREFIX + key for key in attributes}
    for field, rule in rules.items():
        if field not in known:
            raise InvalidInput(f"unknown field {field!r}", details={"field": f"rules.{field}"})
        if rule not in {str(r) for r in Rule}:
            raise InvalidInput(f"rule must be most_recent or oldest, not {rule!r}", details={"field": f"rules.{field}"})
    workspace = session.get(Workspace, actor.workspace_id)
    if workspace is None:
        raise NotFound("workspace not found")
    before = dict(workspace.survivorship or {})
    workspace.survivorship = dict(rules)
    session.flush()
    record(
        session,
        actor,
        action="update",
        entity_type="workspace",
        entity_id=workspace.id,
        before={"survivorship": before},
        after={"survivorship": dict(rules)},
        clock=clock,
    )
    return workspace
