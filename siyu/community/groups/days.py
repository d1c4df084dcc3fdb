"""Daily counts of a group (`GroupDay`): members at the end of a brand-local day, joins and leaves.

Kept two ways: incrementally on every join/leave (`bump_day`, under the group row lock the seat
UPDATE already holds), and by the daily snapshot job (`snapshot_day`), which recomputes a day from
the stays so a missed or double increment heals itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.loyalty.member_tasks.periods import local_day
from siyu.loyalty.program import brand_zone, local_midnight
from siyu.models import CommunityGroup, GroupDay, GroupMember

MAX_RANGE_DAYS = 366


def _day_row(session: Session, group: CommunityGroup, day: date) -> GroupDay:
    row = session.scalar(select(GroupDay).where(GroupDay.group_id == group.id, GroupDay.day == day))
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = GroupDay(workspace_id=group.workspace_id, group_id=group.id, day=day, member_count=group.member_count)
            session.add(row)
            session.flush()
    except IntegrityError:
        row = session.scalar(select(GroupDay).where(GroupDay.group_id == group.id, GroupDay.day == day))
        if row is None:
            raise
    return row


def bump_day(
    session: Session, group: CommunityGroup, at: datetime, *, clock: Clock, joined: int = 0, left: int = 0
) -> GroupDay:
    """Count a join/leave on the brand-local day of `at`.

    When that day is today, the counts move by one and the day's member count becomes the group's
    now. A back-dated (or future) `at` is another day, whose end-of-day member count is not the
    group's count now: that day, and the later days already kept, are recomputed from the stays
    (`snapshot_day`), which already include this join/leave."""
    zone = brand_zone(session, group.workspace_id)
    day = local_day(at, zone)
    today = local_day(clock.now(), zone)
    if day != today:
        row = snapshot_day(session, group, day)
        later = session.scalars(
            select(GroupDay.day).where(GroupDay.group_id == group.id, GroupDay.day > day).order_by(GroupDay.day)
        ).all()
        for later_day in later:
            snapshot_day(session, group, later_day)
        return row
    row = _day_row(session, group, day)
    row.joined += joined
    row.left += left
    row.member_count = group.member_count
    session.flush()
    return row


def snapshot_day(session: Session, group: CommunityGroup, day: date) -> GroupDay:
    """Recompute `day` of `group` from its stays: joins and leaves that day, stays open at its end."""
    zone = brand_zone(session, group.workspace_id)
    start, end = local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)
    in_group = GroupMember.group_id == group.id
    joined = session.scalar(
        select(func.count()).where(in_group, GroupMember.joined_at >= start, GroupMember.joined_at < end)
    )
    left = session.scalar(select(func.count()).where(in_group, GroupMember.left_at >= start, GroupMember.left_at < end))
    open_at_end = session.scalar(
        select(func.count()).where(
            in_group,
            GroupMember.joined_at < end,
            or_(GroupMember.left_at.is_(None), GroupMember.left_at >= end),
        )
    )
    row = _day_row(session, group, day)
    row.joined, row.left, row.member_count = int(joined or 0), int(left or 0), int(open_at_end or 0)
    session.flush()
    return row


def snapshot_workspace(session: Session, *, workspace_id: int, day: date) -> int:
    """Snapshot `day` for the workspace's groups that existed by its end and can have counts that day;
    returns the rows written.

    That is the active groups, and the inactive ones with a stay open at some point of the day (a
    group switched off keeps its members; a dismissed one had them until it ended) or a flash group
    ending on or after the day. Any other inactive group has had no one since before the day: its
    last kept row already says so, and the chart carries it over."""
    zone = brand_zone(session, workspace_id)
    start, end = local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)
    had_stays = (
        select(GroupMember.id)
        .where(
            GroupMember.group_id == CommunityGroup.id,
            GroupMember.joined_at < end,
            or_(GroupMember.left_at.is_(None), GroupMember.left_at >= start),
        )
        .exists()
    )
    groups = session.scalars(
        select(CommunityGroup)
        .where(
            CommunityGroup.workspace_id == workspace_id,
            CommunityGroup.created_at < end,
            or_(CommunityGroup.is_active.is_(True), CommunityGroup.ends_at >= start, had_stays),
        )
        .order_by(CommunityGroup.id)
    ).all()
    for group in groups:
        snapshot_day(session, group, day)
    return len(groups)


@dataclass
class CountPoint:
    day: date
    member_count: int
    joined: int
    left: int


def counts(session: Session, *, group: CommunityGroup, start: date, end: date) -> list[CountPoint]:
    """One point per day from `start` to `end` (inclusive): days without a row carry the previous count."""
    if end < start:
        raise InvalidInput("end is before start", details={"field": "end"})
    if (end - start).days >= MAX_RANGE_DAYS:
        raise InvalidInput(f"at most {MAX_RANGE_DAYS} days", details={"field": "start"})
    rows = {
        r.day: r
        for r in session.scalars(
            select(GroupDay).where(GroupDay.group_id == group.id, and_(GroupDay.day >= start, GroupDay.day <= end))
        )
    }
    before = session.scalar(
        select(GroupDay.member_count)
        .where(GroupDay.group_id == group.id, GroupDay.day < start)
        .order_by(GroupDay.day.desc())
        .limit(1)
    )
    carried = int(before or 0)
    points: list[CountPoint] = []
    day = start
    while day <= end:
        row = rows.get(day)
        if row is not None:
            carried = row.member_count
            points.append(CountPoint(day, row.member_count, row.joined, row.left))
        else:
            points.append(CountPoint(day, carried, 0, 0))
        day += timedelta(days=1)
    return points
