"""What the three performance reports share: the period from the request and the read-only actor."""

from __future__ import annotations

import dataclasses

from sqlalchemy.orm import Session

from siyu.analytics.periods import Period, resolve_period
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock

MAX_DAYS = 366
"""The channel report covers at most a year and a day; every performance report uses the same limit."""


def reader(actor: Actor, *scopes: Scope) -> Actor:
    """The actor, after checking analytics:read, allowed to call the read-only services it builds on.

    The measure pages need only analytics:read; the channel and touch reports they reuse check
    their own read scopes, which this grants for the call (nothing is written with it).
    """
    actor.require(Scope.ANALYTICS_READ)
    return dataclasses.replace(actor, scopes=actor.scopes | {str(s) for s in scopes})


def period_from(session: Session, actor: Actor, clock: Clock, date_from: str | None, date_to: str | None) -> Period:
    """The brand-local period of a request (`from`/`to` as ISO text; default the last 30 days; at most `MAX_DAYS`)."""
    return resolve_period(session, actor.workspace_id, clock, date_from, date_to, max_days=MAX_DAYS)
