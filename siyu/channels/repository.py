"""Queries of the channels area, always filtered by workspace, and SQL that reads the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Interval, func, literal, select
from sqlalchemy.orm import Session

from siyu.channels.errors import ChannelNotFound, CostEntryNotFound
from siyu.kit.errors import InvalidInput
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor
from siyu.models import Channel, ChannelCostEntry, Membership, Workspace

DEFAULT_TIMEZONE = "Asia/Shanghai"


def get_channel(session: Session, workspace_id: int, channel_id: int) -> Channel:
    """The channel, or `ChannelNotFound` (404) when it is not in this workspace."""
    channel = session.scalar(select(Channel).where(Channel.workspace_id == workspace_id, Channel.id == channel_id))
    if channel is None:
        raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
    return channel


def list_channels(session: Session, workspace_id: int, *, include_archived: bool = True) -> Sequence[Channel]:
    """The workspace's channels by name (archived ones last)."""
    query = select(Channel).where(Channel.workspace_id == workspace_id)
    if not include_archived:
        query = query.where(Channel.is_archived.is_(False))
    return session.scalars(query.order_by(Channel.is_archived, Channel.name, Channel.id)).all()


def channel_named(session: Session, workspace_id: int, name: str) -> int | None:
    """The id of the workspace's channel called `name`, if any."""
    return session.scalar(select(Channel.id).where(Channel.workspace_id == workspace_id, Channel.name == name))


def is_member(session: Session, workspace_id: int, user_id: int) -> bool:
    """True if the user holds a role in the workspace."""
    return (
        session.scalar(
            select(Membership.id).where(Membership.workspace_id == workspace_id, Membership.user_id == user_id)
        )
        is not None
    )


def get_cost_entry(session: Session, workspace_id: int, channel_id: int, entry_id: int) -> ChannelCostEntry:
    entry = session.scalar(
        select(ChannelCostEntry).where(
            ChannelCostEntry.workspace_id == workspace_id,
            ChannelCostEntry.channel_id == channel_id,
            ChannelCostEntry.id == entry_id,
        )
    )
    if entry is None:
        raise CostEntryNotFound(f"no cost entry {entry_id} on channel {channel_id}", details={"entry_id": entry_id})
    return entry


def list_cost_entries(
    session: Session, workspace_id: int, channel_id: int, *, cursor: str | None = None, limit: int = 100
) -> Page[ChannelCostEntry]:
    """A channel's cost entries, latest day first (then latest entered), cursor-paginated."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(ChannelCostEntry).where(
        ChannelCostEntry.workspace_id == workspace_id, ChannelCostEntry.channel_id == channel_id
    )
    if cursor:
        day, last_id = _cost_cursor(cursor)
        query = query.where(
            (ChannelCostEntry.spent_on < day) | ((ChannelCostEntry.spent_on == day) & (ChannelCostEntry.id < last_id))
        )
    rows = list(
        session.scalars(query.order_by(ChannelCostEntry.spent_on.desc(), ChannelCostEntry.id.desc()).limit(limit + 1))
    )
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor([last.spent_on.isoformat(), last.id])
    return Page(items=rows[:limit], next_cursor=next_cursor)


def _cost_cursor(cursor: str) -> tuple[date, int]:
    value = decode_cursor(cursor)
    try:
        day_text, last_id = value
        day = date.fromisoformat(day_text)
    except (TypeError, ValueError):
        raise InvalidInput("invalid cursor", details={"field": "cursor"}) from None
    if not isinstance(last_id, int) or isinstance(last_id, bool) or last_id <= 0:
        raise InvalidInput("invalid cursor", details={"field": "cursor"})
    return day, last_id


def workspace_zone(session: Session, workspace_id: int) -> ZoneInfo:
    """The brand's time zone: "per day" means its calendar days."""
    name = session.scalar(select(Workspace.timezone).where(Workspace.id == workspace_id))
    return ZoneInfo(name or DEFAULT_TIMEZONE)


# --- SQL that reads the same on both databases ------------------------------------------------


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def local_day(session: Session, column: Any, tz: ZoneInfo, at: datetime) -> ColumnElement[str]:
    """The brand-local calendar day of a UTC timestamp column, as ISO text ("2026-11-23").

    PostgreSQL converts each row with the zone's rules. SQLite stores naive UTC text and has no
    zone database, so rows are shifted by the zone's offset at `at` (exact for zones without
    daylight saving time, such as China's).
    """
    if dialect(session) == "postgresql":
        return func.to_char(func.timezone(tz.key, column), "YYYY-MM-DD")
    offset = at.astimezone(tz).utcoffset() or timedelta(0)
    return func.date(column, f"{int(offset.total_seconds())} seconds")


def plus_days(session: Session, column: Any, days: int) -> ColumnElement[Any]:
    """`column + days` for a UTC timestamp column, exact to the microsecond on both databases."""
    if dialect(session) == "postgresql":
        return column + literal(timedelta(days=days), Interval())
    # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff". datetime() works in milliseconds (".999999" would
    # round up a second), so only the whole seconds are shifted and the fraction, which whole days
    # never change, is appended back; text order is time order.
    whole_seconds = func.substr(column, 1, 19)
    return func.datetime(whole_seconds, f"+{days} days").op("||")(func.substr(column, 20))
