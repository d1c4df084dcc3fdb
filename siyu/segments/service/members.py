"""A segment's members: the id query other areas use, pages for the console and API, exports."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, true
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.customers.export import export_rows
from siyu.customers.repository import visibility_clause
from siyu.kit.clock import Clock
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.models import Customer, Segment, SegmentKind, SegmentMember
from siyu.segments import query
from siyu.segments.service.crud import get_segment
from siyu.segments.validation import stored_tree


def member_ids(
    session: Session, segment: Segment, *, now: datetime, extra: ColumnElement[bool] | None = None
) -> Select[Any]:
    """`SELECT customers.id` of a segment's members now: the definition for dynamic segments, the
    list for static ones. Broadcasts, SOPs and reports build on this."""
    if segment.kind == SegmentKind.STATIC:
        statement = (
            select(Customer.id)
            .join(SegmentMember, SegmentMember.customer_id == Customer.id)
            .where(
                SegmentMember.segment_id == segment.id,
                Customer.workspace_id == segment.workspace_id,
                Customer.merged_into_id.is_(None),
            )
        )
        return statement.where(extra) if extra is not None else statement
    node = stored_tree(session, workspace_id=segment.workspace_id, definition=segment.definition)
    return query.members_select(session, workspace_id=segment.workspace_id, definition=node, now=now, extra=extra)


def visibility_filter(actor: Actor) -> ColumnElement[bool] | None:
    """The part of the pool the actor may see as an extra filter, or None for the whole pool."""
    clause = visibility_clause(actor)
    return None if clause is true() else clause


def visible_member_ids(session: Session, actor: Actor, segment: Segment, now: datetime) -> Select[Any]:
    """Members the actor may see (staff: their own customers; store managers: their store's)."""
    return member_ids(session, segment, now=now, extra=visibility_filter(actor))


def count_members(session: Session, *, actor: Actor, segment_id: int, clock: Clock) -> int:
    """The segment's size as the actor sees it."""
    segment = get_segment(session, actor, segment_id)
    ids = visible_member_ids(session, actor, segment, clock.now())
    query.guard(session)
    return int(query.execute(session, select(func.count()).select_from(ids.subquery())).scalar_one())


def members_page(
    session: Session, *, actor: Actor, segment_id: int, clock: Clock, cursor: str | None = None, limit: int = 50
) -> Page[Customer]:
    """A page of members, newest customers first."""
    actor.require(Scope.CUSTOMERS_READ)
    segment = get_segment(session, actor, segment_id)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    ids = visible_member_ids(session, actor, segment, clock.now())
    if cursor:
        ids = ids.where(Customer.id < decode_id_cursor(cursor))
    query.guard(session)
    page_ids = list(query.execute(session, ids.order_by(Customer.id.desc()).limit(limit + 1)).scalars())
    customers = {c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_(page_ids[:limit])))}
    items = [customers[i] for i in page_ids[:limit] if i in customers]
    next_cursor = encode_cursor(page_ids[limit - 1]) if len(page_ids) > limit else None
    return Page(items=items, next_cursor=next_cursor)


def export_member_rows(
    session: Session, *, actor: Actor, segment: Segment, now: datetime, unmasked: bool
) -> Iterator[list[str]]:
    """Header and one row per member (the customer export's columns), phones masked unless allowed."""
    statement = visible_member_ids(session, actor, segment, now)
    query.guard(session)
    # Evaluated once; the rows are then read by id, a thousand at a time.
    ids = list(query.execute(session, statement).scalars())
    yield from export_rows(session, actor, None, unmasked=unmasked, customer_ids=ids)


def xlsx_bytes(rows: Iterator[list[str]], *, title: str) -> bytes:
    """Rows as an .xlsx workbook (streamed row by row: constant memory per row)."""
    from openpyxl import Workbook  # here: workers import this module, exports are rare

    workbook = Workbook(write_only=True)
    sheet: Any = workbook.create_sheet(title=_sheet_title(title))
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _sheet_title(title: str) -> str:
    cleaned = "".join(ch for ch in title if ch not in "[]:*?/\\")[:31]
    return cleaned or "members"
