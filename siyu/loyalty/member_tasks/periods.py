"""Task periods in the brand's calendar: the key a completion is counted under."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from siyu.kit.clock import as_utc
from siyu.models import LimitPeriod


def local_day(at: datetime, zone: ZoneInfo) -> date:
    """The brand-local calendar day of an instant."""
    return as_utc(at).astimezone(zone).date()


def period_key(period: LimitPeriod, day: date) -> str:
    """ "2026-11-23" (day), "2026-W48" (ISO week), "2026-11" (month) or "lifetime"."""
    match period:
        case LimitPeriod.DAY:
            return day.isoformat()
        case LimitPeriod.WEEK:
            year, week, _ = day.isocalendar()
            return f"{year}-W{week:02d}"
        case LimitPeriod.MONTH:
            return f"{day.year}-{day.month:02d}"
        case LimitPeriod.LIFETIME:
            return "lifetime"
    raise ValueError(f"unknown limit period {period}")
