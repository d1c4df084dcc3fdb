"""Working-hours schedules of live codes, in the brand's time zone.

A schedule is a list of windows `{"days": [0..6], "start": "HH:MM", "end": "HH:MM"}` (Monday is 0,
`end` exclusive, `end` after `start`: a night shift is two windows). Routes marked `working` are
used inside the windows, `off_hours` routes outside; an empty schedule means always working.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from siyu.kit.errors import InvalidInput

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


def _parse_time(value: Any, field: str) -> int:
    """Minutes since midnight; "24:00" is allowed as an end."""
    if not isinstance(value, str) or not _HHMM.match(value):
        raise InvalidInput("time must be HH:MM", details={"field": field})
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def validate_schedule(windows: Sequence[Any]) -> list[dict[str, Any]]:
    """Normalised windows, or InvalidInput naming the window: bad days/times, empty or overlapping windows."""
    if not isinstance(windows, list | tuple):
        raise InvalidInput("schedule must be a list of windows", details={"field": "schedule"})
    normalised: list[dict[str, Any]] = []
    spans: dict[int, list[tuple[int, int, int]]] = {}
    for index, window in enumerate(windows):
        field = f"schedule[{index}]"
        if not isinstance(window, dict):
            raise InvalidInput("a window is {days, start, end}", details={"field": field})
        days = window.get("days")
        if (
            not isinstance(days, list)
            or not days
            or any(not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= 6 for d in days)
        ):
            raise InvalidInput("days must be a non-empty list of 0 (Monday) … 6 (Sunday)", details={"field": field})
        start = _parse_time(window.get("start"), f"{field}.start")
        end = _parse_time(window.get("end"), f"{field}.end")
        if start == 24 * 60 or end <= start:
            raise InvalidInput("end must be after start", details={"field": f"{field}.end"})
        for day in sorted(set(days)):
            for other_start, other_end, other_index in spans.get(day, []):
                if start < other_end and other_start < end:
                    raise InvalidInput(f"window overlaps window {other_index} on day {day}", details={"field": field})
            spans.setdefault(day, []).append((start, end, index))
        normalised.append({"days": sorted(set(days)), "start": window["start"], "end": window["end"]})
    return normalised


def is_working(windows: Sequence[dict[str, Any]], at: datetime, tz: ZoneInfo) -> bool:
    """Whether `at` falls inside a window (always, when there are none)."""
    if not windows:
        return True
    local = at.astimezone(tz)
    minute = local.hour * 60 + local.minute
    for window in windows:
        if local.weekday() in window["days"]:
            start = _parse_time(window["start"], "start")
            end = _parse_time(window["end"], "end")
            if start <= minute < end:
                return True
    return False


def local_time(value: str) -> time:
    minutes = _parse_time(value, "time") % (24 * 60)
    return time(minutes // 60, minutes % 60)
