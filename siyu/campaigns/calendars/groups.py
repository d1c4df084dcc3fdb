"""Group SOP calendars (社群 SOP): a weekly plan of posts for a set of community groups.

A calendar names its groups, the channel account that posts (a WeCom group account, or the
sandbox), and the brand-local time of each slot; its entries say "on these weekdays at this
slot, post this content". Posting is `posting.post_due_group_messages`.

Entries are added and removed one by one, never replaced wholesale: an entry's posts hang on
its id, and replacing it would make today's already-made posts look unmade.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.campaigns.calendars.common import clean_slot_times, shared_content
from siyu.campaigns.calendars.schemas import EntryIn, GroupCalendarIn, GroupCalendarPatch
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput, NotFound
from siyu.models import (
    AdapterKind,
    ChannelAccount,
    CommunityGroup,
    GroupCalendar,
    GroupCalendarEntry,
    GroupPost,
    Slot,
)

GROUP_ACCOUNT_KINDS = (AdapterKind.WECOM_GROUP, AdapterKind.SANDBOX)


def list_calendars(session: Session, actor: Actor) -> Sequence[GroupCalendar]:
    actor.require(Scope.TOUCH_READ)
    return session.scalars(
        select(GroupCalendar).where(GroupCalendar.workspace_id == actor.workspace_id).order_by(GroupCalendar.id)
    ).all()


def get_calendar(session: Session, actor: Actor, calendar_id: int, *, for_update: bool = False) -> GroupCalendar:
    actor.require(Scope.TOUCH_READ)
    query = select(GroupCalendar).where(
        GroupCalendar.id == calendar_id, GroupCalendar.workspace_id == actor.workspace_id
    )
    calendar = session.scalar(query.with_for_update() if for_update else query)
    if calendar is None:
        raise NotFound(f"group calendar {calendar_id} not found")
    return calendar


def entries_of(session: Session, calendar_id: int) -> list[GroupCalendarEntry]:
    return list(
        session.scalars(
            select(GroupCalendarEntry)
            .where(GroupCalendarEntry.calendar_id == calendar_id)
            .order_by(GroupCalendarEntry.id)
        )
    )


def _check_groups(session: Session, actor: Actor, group_ids: Sequence[int]) -> list[int]:
    """This workspace's active groups, in the order given, duplicates dropped."""
    unique = list(dict.fromkeys(group_ids))
    if not unique:
        raise InvalidInput("choose at least one community group", details={"field": "group_ids"})
    found = {
        g.id: g
        for g in session.scalars(
            select(CommunityGroup).where(
                CommunityGroup.workspace_id == actor.workspace_id, CommunityGroup.id.in_(unique)
            )
        )
    }
    for index, group_id in enumerate(group_ids):
        group = found.get(group_id)
        if group is None or not group.is_active:
            raise InvalidInput(
                f"unknown or inactive community group {group_id}", details={"field": f"group_ids.{index}"}
            )
    return unique


def _check_account(session: Session, actor: Actor, account_id: int) -> ChannelAccount:
    account = session.scalar(
        select(ChannelAccount).where(ChannelAccount.id == account_id, ChannelAccount.workspace_id == actor.workspace_id)
    )
    if account is None or not account.is_active:
        raise InvalidInput("unknown or inactive channel account", details={"field": "channel_account_id"})
    if account.kind not in GROUP_ACCOUNT_KINDS:
        raise InvalidInput(
            f"{account.name} cannot post to groups (use a wecom_group or sandbox account)",
            details={"field": "channel_account_id"},
        )
    return account


def _check_entry(session: Session, actor: Actor, entry: EntryIn, *, prefix: str) -> list[int]:
    weekdays = sorted(set(entry.weekdays))
    if not weekdays or any(not 1 <= d <= 7 for d in weekdays):
        raise InvalidInput("weekdays are 1 (Monday) to 7 (Sunday)", details={"field": f"{prefix}weekdays"})
    shared_content(session, actor.workspace_id, entry.content_id, field=f"{prefix}content_id")
    return weekdays


def _name(value: str) -> str:
    name = value.strip()
    if not name:
        raise InvalidInput("name is required", details={"field": "name"})
    return name


def create_calendar(session: Session, *, actor: Actor, data: GroupCalendarIn, clock: Clock) -> GroupCalendar:
    """Save a calendar with its first entries; every reference is checked and errors name the field."""
    actor.require(Scope.TOUCH_WRITE)
    name = _name(data.name)
    group_ids = _check_groups(session, actor, data.group_ids)
    _check_account(session, actor, data.channel_account_id)
    slot_times = clean_slot_times(data.slot_times)
    weekdays = [_check_entry(session, actor, e, prefix=f"entries.{i}.") for i, e in enumerate(data.entries)]
    calendar = GroupCalendar(
        workspace_id=actor.workspace_id,
        name=name,
        group_ids=group_ids,
        channel_account_id=data.channel_account_id,
        slot_times=slot_times,
        is_active=data.is_active,
        created_at=clock.now(),
    )
    session.add(calendar)
    session.flush()
    for entry, days in zip(data.entries, weekdays, strict=True):
        session.add(
            GroupCalendarEntry(
                workspace_id=actor.workspace_id,
                calendar_id=calendar.id,
                weekdays=days,
                slot=Slot(entry.slot),
                content_id=entry.content_id,
            )
        )
    session.flush()
    record(
        session,
        actor,
        action="create",
        entity_type="group_calendar",
        entity_id=calendar.id,
        after={"name": name, "group_ids": group_ids, "entries": len(data.entries)},
        clock=clock,
    )
    return calendar


def update_calendar(
    session: Session, *, actor: Actor, calendar_id: int, data: GroupCalendarPatch, clock: Clock
) -> GroupCalendar:
    """Rename, regroup, change the account or slot times, pause or resume (entries stay)."""
    actor.require(Scope.TOUCH_WRITE)
    calendar = get_calendar(session, actor, calendar_id, for_update=True)
    before = {"name": calendar.name, "group_ids": list(calendar.group_ids), "is_active": calendar.is_active}
    if data.name is not None:
        calendar.name = _name(data.name)
    if data.group_ids is not None:
        calendar.group_ids = _check_groups(session, actor, data.group_ids)
    if data.channel_account_id is not None:
        calendar.channel_account_id = _check_account(session, actor, data.channel_account_id).id
    if data.slot_times is not None:
        calendar.slot_times = clean_slot_times(data.slot_times)
    if data.is_active is not None:
        calendar.is_active = data.is_active
    session.flush()
    record(
        session,
        actor,
        action="update",
        entity_type="group_calendar",
        entity_id=calendar.id,
        before=before,
        after={"name": calendar.name, "group_ids": list(calendar.group_ids), "is_active": calendar.is_active},
        clock=clock,
    )
    return calendar


def delete_calendar(session: Session, *, actor: Actor, calendar_id: int, clock: Clock) -> None:
    """Remove a calendar, its entries and their post history."""
    actor.require(Scope.TOUCH_WRITE)
    calendar = get_calendar(session, actor, calendar_id, for_update=True)
    entry_ids = [e.id for e in entries_of(session, calendar.id)]
    # Explicit deletes: SQLite enforces ON DELETE CASCADE only with its foreign-key pragma.
    if entry_ids:
        for post in session.scalars(select(GroupPost).where(GroupPost.entry_id.in_(entry_ids))):
            session.delete(post)
        for entry in session.scalars(select(GroupCalendarEntry).where(GroupCalendarEntry.id.in_(entry_ids))):
            session.delete(entry)
    session.flush()
    session.delete(calendar)
    record(
        session,
        actor,
        action="delete",
        entity_type="group_calendar",
        entity_id=calendar_id,
        before={"name": calendar.name},
        clock=clock,
    )
    session.flush()


def add_entry(session: Session, *, actor: Actor, calendar_id: int, data: EntryIn, clock: Clock) -> GroupCalendarEntry:
    """Add one slot of the weekly plan."""
    actor.require(Scope.TOUCH_WRITE)
    calendar = get_calendar(session, actor, calendar_id, for_update=True)
    weekdays = _check_entry(session, actor, data, prefix="")
    entry = GroupCalendarEntry(
        workspace_id=actor.workspace_id,
        calendar_id=calendar.id,
        weekdays=weekdays,
        slot=Slot(data.slot),
        content_id=data.content_id,
    )
    session.add(entry)
    session.flush()
    record(
        session,
        actor,
        action="add_entry",
        entity_type="group_calendar",
        entity_id=calendar.id,
        after={"entry_id": entry.id, "weekdays": weekdays, "slot": str(data.slot), "content_id": data.content_id},
        clock=clock,
    )
    return entry


def remove_entry(session: Session, *, actor: Actor, calendar_id: int, entry_id: int, clock: Clock) -> None:
    """Remove one slot of the plan (its post history goes with it)."""
    actor.require(Scope.TOUCH_WRITE)
    calendar = get_calendar(session, actor, calendar_id, for_update=True)
    entry = session.scalar(
        select(GroupCalendarEntry).where(
            GroupCalendarEntry.id == entry_id, GroupCalendarEntry.calendar_id == calendar.id
        )
    )
    if entry is None:
        raise NotFound(f"entry {entry_id} not found in calendar {calendar_id}")
    for post in session.scalars(select(GroupPost).where(GroupPost.entry_id == entry.id)):
        session.delete(post)
    session.flush()
    session.delete(entry)
    record(
        session,
        actor,
        action="remove_entry",
        entity_type="group_calendar",
        entity_id=calendar.id,
        before={"entry_id": entry_id},
        clock=clock,
    )
    session.flush()


def posts_of(
    session: Session, actor: Actor, calendar_id: int, *, on: date | None = None, limit: int = 500
) -> Sequence[GroupPost]:
    """The posts a calendar made, newest first (of one brand-local day when `on` is given)."""
    calendar = get_calendar(session, actor, calendar_id)
    entry_ids = [e.id for e in entries_of(session, calendar.id)]
    if not entry_ids:
        return []
    query = select(GroupPost).where(GroupPost.entry_id.in_(entry_ids))
    if on is not None:
        query = query.where(GroupPost.post_date == on)
    return session.scalars(query.order_by(GroupPost.id.desc()).limit(limit)).all()
