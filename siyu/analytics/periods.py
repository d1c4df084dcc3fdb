"""Brand-local date ranges, their previous period, and buckets by day, week or month.

Analytics counts per brand-local day in SQL (`local_day`) and folds days into weeks or months in
Python, so one query serves every grain and both databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from siyu.channels.repository import local_day, workspace_zone
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput

__all__ = [
    "MAX_PERIOD_DAYS",
    "Grain",
    "Period",
    "add_months",
    "brand_today",
    "bucket_of",
    "local_day",
    "parse_date",
    "parse_period",
    "parse_whole",
    "resolve_period",
    "utc_start",
    "workspace_zone",
]

MAX_PERIOD_DAYS = 731
"""Two years and a day: the longest range a report accepts."""


class Grain(StrEnum):
    DAY = "day"
    WEEK = "week"  # ISO weeks, Monday first
    MONTH = "month"


def bucket_of(day: date, grain: Grain) -> date:
    """The first day of the bucket `day` falls in: itself, its week's Monday, or its month's 1st."""
    if grain == Grain.WEEK:
        return day - timedelta(days=day.weekday())
    if grain == Grain.MONTH:
        return day.replace(day=1)
    return day


def utc_start(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant the brand-local `day` begins."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Period:
    """Brand-local days `start` through `end`, both included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The period of the same length just before this one (for "change against the previous period")."""
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def utc_bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """`[start, end)` in UTC: the first instant of `start` and the first instant after `end`."""
        return utc_start(self.start, zone), utc_start(self.end + timedelta(days=1), zone)

    def each_day(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]

    def buckets(self, grain: Grain) -> list[date]:
        """The first day of every bucket the period touches, in order (the first may start before `start`)."""
        seen: list[date] = []
        for day in self.each_day():
            first = bucket_of(day, grain)
            if not seen or seen[-1] != first:
                seen.append(first)
        return seen


def brand_today(session: Session, workspace_id: int, clock: Clock) -> date:
    """Today in the brand's time zone."""
    return clock.now().astimezone(workspace_zone(session, workspace_id)).date()


def parse_date(text: str | None, field: str) -> date | None:
    """An ISO date from a form or query string; None when blank; `InvalidInput` naming `field` otherwise."""
    if text is None or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{field} must be a date like 2026-11-23", details={"field": field}) from None


def parse_period(
    date_from: date | None,
    date_to: date | None,
    *,
    today: date,
    default_days: int = 30,
    max_days: int = MAX_PERIOD_DAYS,
) -> Period:
    """The range a report asked for: `to` defaults to today, `from` to `default_days` before `to`.

    Raises `InvalidInput` naming "from" or "to" when the range is reversed, in the future or too long.
    """
    end = date_to or today
    start = date_from or end - timedelta(days=default_days - 1)
    if end > today:
        raise InvalidInput("to cannot be after today", details={"field": "to"})
    if start > end:
        raise InvalidInput("from must be on or before to", details={"field": "from"})
    if (end - start).days + 1 > max_days:
        raise InvalidInput(f"the range can cover at most {max_days} days", details={"field": "from"})
    return Period(start, end)


def add_months(first: date, months: int) -> date:
    """The first day of the month `months` after (negative: before) the month of `first`."""
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


MAX_WHOLE_DIGITS = 7


def parse_whole(text: str | None, field: str, *, low: int, high: int, default: int | None = None) -> int:
    """A whole number typed by a person, within [low, high]; blank gives `default` (or an error).

    Only ASCII digits (an optional leading minus when `low` < 0), and no more of them than 7 or than
    the bounds have (money in fen goes up to 10^15), so nothing reaches `int()` that could raise
    anything but a field error."""
    value = (text or "").strip()
    if not value:
        if default is not None:
            return default
        raise InvalidInput(f"{field} is required", details={"field": field})
    digits = value[1:] if value.startswith("-") and low < 0 else value
    most = max(MAX_WHOLE_DIGITS, len(str(abs(low))), len(str(abs(high))))
    if not digits.isascii() or not digits.isdigit() or len(digits) > most:
        raise InvalidInput(f"{field} must be a whole number from {low} to {high}", details={"field": field})
    number = int(value)
    if not low <= number <= high:
        raise InvalidInput(f"{field} must be a whole number from {low} to {high}", details={"field": field})
    return number


def resolve_period(
    session: Session,
    workspace_id: int,
    clock: Clock,
    date_from: str | date | None,
    date_to: str | date | None,
    *,
    default_days: int = 30,
    max_days: int = MAX_PERIOD_DAYS,
) -> Period:
    """A report's range from what a query string, form or API gave ("from"/"to" as text or dates),
    counted back from the brand-local today; `InvalidInput` names "from" or "to"."""
    start = date_from if isinstance(date_from, date) else parse_date(date_from, "from")
    end = date_to if isinstance(date_to, date) else parse_date(date_to, "to")
    today = brand_today(session, workspace_id, clock)
    return parse_period(start, end, today=today, default_days=default_days, max_days=max_days)
