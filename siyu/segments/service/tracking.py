"""Tracked segments: current members kept in `segment_members`, every entry and exit recorded.

A full refresh compares the definition's members now with the stored ones; a customer refresh
(after an event or order for that customer) evaluates the definition for that one customer only.
Both lock the segment row first, so a sweep and a customer refresh never record one change twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers.repository import visibility_clause
from siyu.kit.clock import Clock
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.kit.sql import insert_or_ignore
from siyu.models import (
    Customer,
    MembershipChange,
    Segment,
    SegmentKind,
    SegmentMember,
    SegmentMembershipEvent,
    SegmentSizePoint,
)
from siyu.segments import query
from siyu.segments.validation import stored_tree

_CHUNK = 1000
T = TypeVar("T")


@dataclass(frozen=True)
class RefreshResult:
    segment_id: int
    size: int
    entered: int
    left: int


def _lock(session: Session, segment_id: int) -> Segment | None:
    """Lock a segment row and read it afresh (the session may hold an older copy, loaded before
    another transaction changed the segment while this one waited for the lock)."""
    return session.scalar(
        select(Segment).where(Segment.id == segment_id).with_for_update().execution_options(populate_existing=True)
    )


def refresh_segment(session: Session, *, segment_id: int, clock: Clock) -> RefreshResult | None:
    """Recompute a tracked segment (members, entries, exits) or count an untracked one; record the
    day's size. None when the segment is gone or archived."""
    segment = _lock(session, segment_id)
    if segment is None or segment.archived_at is not None:
        return None
    now = clock.now()
    if segment.kind == SegmentKind.STATIC:
        size = static_size(session, segment)
        entered = left = 0
    elif segment.is_tracked:
        size, entered, left = _refresh_tracked(session, segment, now)
        segment.refreshed_at = now
    else:
        size = query.count_definition(
            session,
            workspace_id=segment.workspace_id,
            definition=stored_tree(session, workspace_id=segment.workspace_id, definition=segment.definition),
            now=now,
        )
        entered = left = 0
    record_size(session, segment, size, now)
    return RefreshResult(segment.id, size, entered, left)


def _refresh_tracked(session: Session, segment: Segment, now: datetime) -> tuple[int, int, int]:
    node = stored_tree(session, workspace_id=segment.workspace_id, definition=segment.definition)
    statement = query.members_select(session, workspace_id=segment.workspace_id, definition=node, now=now)
    query.guard(session)
    current = set(query.execute(session, statement).scalars())
    stored = set(session.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment.id)))
    entered = sorted(current - stored)
    left = sorted(stored - current)
    _apply(session, segment, entered, left, now, trigger="refresh")
    return len(current), len(entered), len(left)


def _apply(
    session: Session, segment: Segment, entered: Sequence[int], left: Sequence[int], now: datetime, *, trigger: str
) -> None:
    for chunk in _chunks(left):
        session.execute(
            delete(SegmentMember).where(SegmentMember.segment_id == segment.id, SegmentMember.customer_id.in_(chunk)),
            execution_options={"synchronize_session": False},
        )
    insert_members(session, segment, entered, now)
    changes = [(c, MembershipChange.ENTERED) for c in entered] + [(c, MembershipChange.LEFT) for c in left]
    for change_chunk in _chunks(changes):
        session.execute(
            insert(SegmentMembershipEvent),
            [
                {
                    "workspace_id": segment.workspace_id,
                    "segment_id": segment.id,
                    "customer_id": customer_id,
                    "change": str(change),
                    "occurred_at": now,
                    "trigger": trigger,
                }
                for customer_id, change in change_chunk
            ],
        )


def insert_members(session: Session, segment: Segment, customer_ids: Sequence[int], now: datetime) -> None:
    """Add member rows (a thousand per statement); the caller knows none of them is there yet."""
    for chunk in _chunks(customer_ids):
        session.execute(
            insert(SegmentMember),
            [
                {"workspace_id": segment.workspace_id, "segment_id": segment.id, "customer_id": c, "added_at": now}
                for c in chunk
            ],
        )


def _chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def refresh_customer(session: Session, *, workspace_id: int, customer_id: int, clock: Clock) -> list[tuple[int, str]]:
    """Re-evaluate every tracked segment of the workspace for one customer; returns the changes
    recorded as (segment id, "entered" | "left")."""
    now = clock.now()
    ids = session.scalars(
        select(Segment.id)
        .where(Segment.workspace_id == workspace_id, Segment.is_tracked.is_(True), Segment.archived_at.is_(None))
        .order_by(Segment.id)
    ).all()
    changes: list[tuple[int, str]] = []
    query.guard(session)
    for segment_id in ids:
        segment = _lock(session, segment_id)
        if segment is None or not segment.is_tracked or segment.archived_at is not None or segment.refreshed_at is None:
            continue  # not computed yet: the first full refresh records everyone at once
        node = stored_tree(session, workspace_id=segment.workspace_id, definition=segment.definition)
        matches = query.customer_matches(
            session, workspace_id=workspace_id, node=node, customer_id=customer_id, now=now
        )
        is_member = (
            session.scalar(
                select(SegmentMember.id).where(
                    SegmentMember.segment_id == segment.id, SegmentMember.customer_id == customer_id
                )
            )
            is not None
        )
        if matches and not is_member:
            _apply(session, segment, [customer_id], [], now, trigger="customer")
            changes.append((segment.id, str(MembershipChange.ENTERED)))
        elif is_member and not matches:
            _apply(session, segment, [], [customer_id], now, trigger="customer")
            changes.append((segment.id, str(MembershipChange.LEFT)))
    return changes


def stop_tracking(session: Session, segment: Segment) -> None:
    """Forget the current members of a segment no longer tracked (its history stays)."""
    session.execute(
        delete(SegmentMember).where(SegmentMember.segment_id == segment.id),
        execution_options={"synchronize_session": False},
    )
    segment.refreshed_at = None


def static_size(session: Session, segment: Segment) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(SegmentMember)
            .join(Customer, Customer.id == SegmentMember.customer_id)
            .where(SegmentMember.segment_id == segment.id, Customer.merged_into_id.is_(None))
        )
        or 0
    )


def record_size(session: Session, segment: Segment, size: int, now: datetime) -> None:
    """Remember the size: on the segment, and as the brand-local day's point of its trend line."""
    segment.member_count = size
    segment.counted_at = now
    day = now.astimezone(query.workspace_tz(session, segment.workspace_id)).date()
    inserted = insert_or_ignore(
        session,
        SegmentSizePoint,
        {"workspace_id": segment.workspace_id, "segment_id": segment.id, "day": day, "size": size},
        ["segment_id", "day"],
    )
    if not inserted:
        point = session.scalar(
            select(SegmentSizePoint).where(SegmentSizePoint.segment_id == segment.id, SegmentSizePoint.day == day)
        )
        if point is not None:
            point.size = size


def size_trend(session: Session, segment_id: int, *, days: int = 30) -> Sequence[SegmentSizePoint]:
    """The last `days` daily sizes, oldest first."""
    rows = session.scalars(
        select(SegmentSizePoint)
        .where(SegmentSizePoint.segment_id == segment_id)
        .order_by(SegmentSizePoint.day.desc())
        .limit(days)
    ).all()
    return list(reversed(rows))


def membership_events(
    session: Session, actor: Actor, segment_id: int, *, cursor: str | None = None, limit: int = 50
) -> Page[SegmentMembershipEvent]:
    """Who entered and left a tracked segment, newest first — of the customers the actor may see."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    statement = select(SegmentMembershipEvent).where(SegmentMembershipEvent.segment_id == segment_id)
    if not actor.sees_whole_pool:
        statement = statement.join(Customer, Customer.id == SegmentMembershipEvent.customer_id).where(
            visibility_clause(actor)
        )
    if cursor:
        statement = statement.where(SegmentMembershipEvent.id < decode_id_cursor(cursor))
    rows = list(session.scalars(statement.order_by(SegmentMembershipEvent.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)
