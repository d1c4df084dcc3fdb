"""Queries over short links and their clicks, scoped to a workspace."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.models import Customer, Experiment, ShortLink, ShortLinkClick

CHUNK = 500
"""Ids per IN (…) list: well under SQLite's and PostgreSQL's parameter limits."""


def chunks(ids: Sequence[int], size: int = CHUNK) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def get_link(session: Session, workspace_id: int, link_id: int, *, include_deleted: bool = False) -> ShortLink | None:
    query = select(ShortLink).where(ShortLink.id == link_id, ShortLink.workspace_id == workspace_id)
    if not include_deleted:
        query = query.where(ShortLink.deleted_at.is_(None))
    return session.scalar(query)


def campaign_links(
    session: Session, workspace_id: int, *, cursor: str | None, limit: int, campaign: str | None = None
) -> Page[ShortLink]:
    """Live campaign links (not per-recipient ones), newest first."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(ShortLink).where(
        ShortLink.workspace_id == workspace_id, ShortLink.parent_id.is_(None), ShortLink.deleted_at.is_(None)
    )
    if campaign:
        query = query.where(ShortLink.campaign == campaign)
    if cursor:
        query = query.where(ShortLink.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(ShortLink.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


def click_counts(session: Session, workspace_id: int, campaign_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """(clicks, unique visitors) per campaign link, recipient links included."""
    if not campaign_ids:
        return {}
    rows = session.execute(
        select(
            ShortLinkClick.campaign_link_id,
            func.count(ShortLinkClick.id),
            func.count(func.distinct(ShortLinkClick.visitor_id)),
        )
        .where(ShortLinkClick.workspace_id == workspace_id, ShortLinkClick.campaign_link_id.in_(campaign_ids))
        .group_by(ShortLinkClick.campaign_link_id)
    ).all()
    return {int(link_id): (int(clicks), int(uniques)) for link_id, clicks, uniques in rows}


def live_customer_ids(session: Session, workspace_id: int, customer_ids: Sequence[int]) -> set[int]:
    """Which of `customer_ids` are customers of the workspace (not merged away)."""
    found: set[int] = set()
    for chunk in chunks(customer_ids):
        found.update(
            session.scalars(
                select(Customer.id).where(
                    Customer.workspace_id == workspace_id, Customer.id.in_(chunk), Customer.merged_into_id.is_(None)
                )
            )
        )
    return found


def recipient_links(
    session: Session, workspace_id: int, parent_id: int, customer_ids: Sequence[int]
) -> dict[int, ShortLink]:
    """Existing recipient links of a campaign link, by customer id."""
    found: dict[int, ShortLink] = {}
    for chunk in chunks(customer_ids):
        for link in session.scalars(
            select(ShortLink).where(
                ShortLink.workspace_id == workspace_id,
                ShortLink.parent_id == parent_id,
                ShortLink.customer_id.in_(chunk),
            )
        ):
            assert link.customer_id is not None
            found[link.customer_id] = link
    return found


def insert_ignoring_conflicts(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows; any that collide with a unique constraint are skipped, not errors.

    No conflict target: a recipient link may collide on (parent, customer) — made by a concurrent
    call, fine — or, very rarely, on its random slug; the caller re-reads and retries what is missing.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(model).values(rows).on_conflict_do_nothing())


@dataclass(frozen=True)
class SlugHit:
    """Everything a redirect needs, read in one query."""

    link: ShortLink
    parent: ShortLink | None
    experiment: Experiment | None
    customer_merged_into: int | None
    customer_erased_at: datetime | None


def link_for_slug(session: Session, slug: str) -> SlugHit | None:
    """The link a slug names, its campaign link, experiment and recipient (any workspace: slugs are global)."""
    parent = aliased(ShortLink)
    row = session.execute(
        select(ShortLink, parent, Experiment, Customer.merged_into_id, Customer.erased_at)
        .outerjoin(parent, parent.id == ShortLink.parent_id)
        .outerjoin(Experiment, Experiment.id == ShortLink.experiment_id)
        .outerjoin(Customer, Customer.id == ShortLink.customer_id)
        .where(ShortLink.slug == slug)
    ).first()
    if row is None:
        return None
    link, parent_link, experiment, merged_into, erased_at = row
    return SlugHit(link, parent_link, experiment, merged_into, erased_at)
