"""What the community demo's parts share: the session, the system actor, the brand's clock and zone,
the random source, the timeline, and the people and groups each part hands to the others."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.demo.community.timeline import Timeline


@dataclass
class Ctx:
    """The demo brand and the state its community parts share."""

    session: Session
    actor: Actor
    now: datetime
    zone: ZoneInfo
    rng: random.Random
    timeline: Timeline = field(default_factory=Timeline)
    members: list[int] = field(default_factory=list)
    """Loyalty members (pool buyers), in id order."""
    kocs: list[int] = field(default_factory=list)
    """The two members the operator approves as KOCs (set by the referral plan: its busiest inviters)."""
    koc_groups: dict[int, list[int]] = field(default_factory=dict)
    """For each KOC, the groups they are in when approved (their role there becomes KOC)."""
    applicants: list[int] = field(default_factory=list)
    """Members who answer the KOC application form (besides the KOCs)."""
    fission_group_id: int | None = None
    codes: dict[tuple[int, int], Any] = field(default_factory=dict)
    """Referral codes by (program, member), once created."""
    busy: set[int] = field(default_factory=set)
    """Customers a part reserved (fission invitees, fraud cases): other parts leave them alone."""

    @property
    def workspace_id(self) -> int:
        return self.actor.workspace_id

    @property
    def today(self) -> date:
        return self.now.astimezone(self.zone).date()

    def local(self, days_ago: int, hour: int = 10, minute: int = 0) -> datetime:
        """A brand-local moment `days_ago` days before today."""
        day = self.today - timedelta(days=days_ago)
        return datetime.combine(day, time(hour, minute), tzinfo=self.zone)

    def between(self, start: datetime, end: datetime) -> datetime:
        """A random moment in [start, end), at whole seconds."""
        span = max(int((end - start).total_seconds()), 1)
        return (start + timedelta(seconds=self.rng.randrange(span))).replace(microsecond=0)
