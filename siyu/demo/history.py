"""When things happen to demo customers: adds on a growth curve, deletions, timeline events."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo

from siyu.demo.catalog import CONTENT_VIA, CONTENTS, COUPONS, PAGES
from siyu.models import RemovedBy

YEAR = timedelta(days=365)
GROWTH = 5.0
"""Adds in the latest week vs. the same week a year ago: the pool grows about 14% a month."""
REMOVAL_RATE = 0.18
"""Share of relationships that end (删粉) — customers delete far more often than staff do."""
STAFF_REMOVES = 0.15
# Local hour-of-day weights: people add staff and browse at lunch and in the evening.
_HOUR_CUM = tuple(accumulate((1, 0.5, 0.3, 0.2, 0.2, 0.3, 0.8, 2, 4, 5, 6, 6, 7, 6, 5, 5, 6, 6, 7, 9, 11, 12, 10, 5)))
_BEHAVIOUR = ("page.view", "content.click", "coupon.view", "coupon.claim", "checkin")
_BEHAVIOUR_CUM = tuple(accumulate((40, 20, 15, 7, 18)))


@dataclass
class RelationshipPlan:
    """One friend edge to insert; `removed_at` is set when the edge has ended."""

    staff_id: int
    added_at: datetime
    channel: str
    live_code_state: str | None
    channel_id: int | None = None
    live_code_id: int | None = None
    variant: str | None = None
    scan: dict[str, Any] | None = None
    """The live code scan the add came from; the builder sets its `customer_id`."""
    removed_at: datetime | None = None
    removed_by: RemovedBy | None = None


@dataclass
class EventPlan:
    """One timeline event; relationship events get the relationship id once it exists."""

    type: str
    occurred_at: datetime
    source: str
    properties: dict[str, Any] = field(default_factory=dict)


class Calendar:
    """Draws realistic moments in the year before `now`, in the brand's time zone."""

    def __init__(self, rng: random.Random, *, now: datetime, timezone: str) -> None:
        self.rng = rng
        self.now = now.replace(microsecond=0)
        self.zone = ZoneInfo(timezone)
        self._local_today = self.now.astimezone(self.zone).replace(hour=0, minute=0, second=0)

    def add_moment(self) -> datetime:
        """A moment in the last 12 months, more likely the more recent (exponential growth)."""
        u = self.rng.random()
        share_of_year = math.log1p(u * (GROWTH - 1)) / math.log(GROWTH)  # 0 = a year ago, 1 = today
        day = self._local_today - timedelta(days=int((1 - share_of_year) * 365))
        moment = self._at_local_hour(day)
        return moment if moment <= self.now else moment - timedelta(days=1)

    def _at_local_hour(self, local_midnight: datetime) -> datetime:
        hour = self.rng.choices(range(24), cum_weights=_HOUR_CUM)[0]
        local = local_midnight + timedelta(hours=hour, seconds=self.rng.randrange(3600))
        return local.astimezone(self.now.tzinfo)

    def between(self, start: datetime, end: datetime) -> datetime:
        """A whole-second moment in [start, end] (start when the range is empty)."""
        span = int((end - start).total_seconds())
        return start if span <= 0 else start + timedelta(seconds=self.rng.randint(0, span))

    def removal_after(self, added_at: datetime) -> datetime | None:
        """When a deleted edge ended: mostly within days of the add, never after now."""
        room = (self.now - added_at).total_seconds()
        if room < 600:
            return None
        delay = self.rng.expovariate(1 / (12 * 86400))
        if delay >= room:
            delay = self.rng.uniform(0.05, 1.0) * room
        return added_at + timedelta(seconds=max(300, int(delay)))

    def local_month(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).strftime("%Y%m")


def end_some(calendar: Calendar, relationships: list[RelationshipPlan]) -> None:
    """Close about `REMOVAL_RATE` of the edges, mostly by the customer."""
    rng = calendar.rng
    for edge in relationships:
        if rng.random() >= REMOVAL_RATE:
            continue
        removed_at = calendar.removal_after(edge.added_at)
        if removed_at is not None:
            edge.removed_at = removed_at
            edge.removed_by = RemovedBy.STAFF if rng.random() < STAFF_REMOVES else RemovedBy.CUSTOMER


def behaviour_events(
    calendar: Calendar, count: int, start: datetime, end: datetime, staff_id: int | None
) -> list[EventPlan]:
    """`count` H5 and content events between `start` and `end`."""
    rng = calendar.rng
    events = []
    for _ in range(count):
        type_ = rng.choices(_BEHAVIOUR, cum_weights=_BEHAVIOUR_CUM)[0]
        at = calendar.between(start, end)
        if type_ == "page.view":
            path, title = rng.choice(PAGES)
            events.append(EventPlan(type_, at, "h5", {"path": path, "title": title}))
        elif type_ == "content.click":
            props: dict[str, Any] = {"title": rng.choice(CONTENTS), "via": rng.choice(CONTENT_VIA)}
            if staff_id is not None:
                props["staff_id"] = staff_id
            events.append(EventPlan(type_, at, "short_link", props))
        elif type_ == "checkin":
            events.append(EventPlan(type_, at, "h5", {"task": "daily_checkin", "streak": rng.randint(1, 7)}))
        else:
            events.append(EventPlan(type_, at, "h5", {"coupon": rng.choice(COUPONS)}))
    return events
