"""Rules shared by group calendars and moments: slot times, the brand's calendar, and content that
is fit to be seen by many people at once (a group or a persona's friends)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.errors import InvalidInput
from siyu.messaging import content
from siyu.models import ContentItem, Slot, Workspace

DEFAULT_SLOT_TIMES: dict[str, str] = {"morning": "08:30", "noon": "12:00", "evening": "20:00"}
"""Brand-local times of the three slots (早中晚) unless a calendar sets its own."""

SHARED_VARIABLES = frozenset({"link", "brand", "staff_name"})
"""Variables a post seen by many people may use: the content's link, the brand, the sender.
Everything else (name, tier, points, coupon code, unsubscribe link) belongs to one customer."""

SLOT_ORDER = [Slot.MORNING, Slot.NOON, Slot.EVENING]


def workspace_tz(session: Session, workspace_id: int) -> ZoneInfo:
    name = session.scalar(select(Workspace.timezone).where(Workspace.id == workspace_id))
    return ZoneInfo(name or "Asia/Shanghai")


def local_today(session: Session, workspace_id: int, now: datetime) -> date:
    """Today on the brand's calendar."""
    return now.astimezone(workspace_tz(session, workspace_id)).date()


def parse_time(value: Any, *, field: str) -> time:
    """ "08:30" → time(8, 30); anything else is a 422 naming `field`."""
    text = value if isinstance(value, str) else ""
    hours, sep, minutes = text.partition(":")
    if (
        sep != ":"
        or len(hours) != 2
        or len(minutes) != 2
        or not (hours + minutes).isascii()
        or not (hours + minutes).isdigit()
        or int(hours) > 23
        or int(minutes) > 59
    ):
        raise InvalidInput(f"{field}: expected a time as HH:MM (00:00–23:59), got {value!r}", details={"field": field})
    return time(int(hours), int(minutes))


def clean_slot_times(raw: Mapping[str, Any] | None) -> dict[str, str]:
    """Every slot's time as HH:MM, defaults for the slots not given; unknown slots are refused."""
    result = dict(DEFAULT_SLOT_TIMES)
    for key, value in (raw or {}).items():
        if key not in DEFAULT_SLOT_TIMES:
            raise InvalidInput(
                f"unknown slot {key!r} (slots: morning, noon, evening)", details={"field": f"slot_times.{key}"}
            )
        result[key] = parse_time(value, field=f"slot_times.{key}").strftime("%H:%M")
    return result


def slot_time(slot_times: Mapping[str, Any] | None, slot: str) -> time:
    """The time of `slot` in a saved calendar (saved values were checked; defaults fill gaps)."""
    value = (slot_times or {}).get(str(slot)) or DEFAULT_SLOT_TIMES[str(slot)]
    return parse_time(value, field=f"slot_times.{slot}")


def slot_start(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The instant a slot opens on a brand-local day."""
    return datetime.combine(day, at, tzinfo=tz)


def week_of(day: date) -> tuple[date, date]:
    """Monday and Sunday of the ISO week holding `day`."""
    monday = day - timedelta(days=day.isoweekday() - 1)
    return monday, monday + timedelta(days=6)


def shared_content(session: Session, workspace_id: int, content_id: int, *, field: str) -> ContentItem:
    """A live content item of this workspace whose template fits many readers at once.

    Refused (422 naming `field`): unknown or archived content, template errors, and per-customer
    variables such as {{ name }} that have no value in a group or on a moments feed.
    """
    item = session.scalar(
        select(ContentItem).where(ContentItem.id == content_id, ContentItem.workspace_id == workspace_id)
    )
    if item is None or item.archived_at is not None:
        raise InvalidInput("unknown or archived content", details={"field": field})
    try:
        used = content.check_content(item)
    except InvalidInput as exc:
        raise InvalidInput(f"content {item.name!r}: {exc.message}", details={**exc.details, "field": field}) from exc
    personal = sorted(used - SHARED_VARIABLES)
    if personal:
        raise InvalidInput(
            f"content {item.name!r} uses the per-customer variable {{{{ {personal[0]} }}}}, which has no value "
            f"in a post many people read (allowed: {', '.join(sorted(SHARED_VARIABLES))})",
            details={"field": field, "variable": personal[0]},
        )
    return item


def shared_variables(item: ContentItem, *, brand: str, staff_name: str | None) -> dict[str, Any]:
    """Values of the shared variables for one post (a missing sender leaves {{ staff_name }} unresolved)."""
    values: dict[str, Any] = {"brand": brand}
    if item.link_url:
        values["link"] = item.link_url
    if staff_name:
        values["staff_name"] = staff_name
    return values
