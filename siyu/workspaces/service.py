"""Creating and finding workspaces."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

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
