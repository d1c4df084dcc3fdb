"""Picking the route of a scan: shift, rotation, daily caps, backups and stickiness.

Caps are enforced on a per-route, per-day counter row with one conditional UPDATE
(`taken = taken + 1 WHERE taken < cap`): concurrent scans race on the row, never on a prior count,
so a cap is never exceeded (the database serialises the two writers and the second re-checks).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from siyu.kit.sql import insert_or_ignore
from siyu.livecodes.schedule import is_working
from siyu.models import (
    CommunityGroup,
    LiveCode,
    LiveCodeRoute,
    LiveCodeRouteDay,
    LiveCodeScan,
    RotationMode,
    RouteShift,
    Staff,
)

_CODES = cast(Table, LiveCode.__table__)
_ROUTE_DAYS = cast(Table, LiveCodeRouteDay.__table__)

STICKY_OUTCOME = "sticky"
ROUTED_OUTCOME = "routed"
BACKUP_OUTCOME = "backup"


@dataclass(frozen=True)
class Candidate:
    """A route with what it points to, loaded once per scan."""

    route: LiveCodeRoute
    staff: Staff | None
    group: CommunityGroup | None


@dataclass(frozen=True)
class RouteChoice:
    candidate: Candidate
    outcome: str


def load_candidates(session: Session, code: LiveCode, *, store_id: int | None = None) -> list[Candidate]:
    """Active routes of the code whose staff is active (or whose group is active), in position order."""
    query = (
        select(LiveCodeRoute, Staff, CommunityGroup)
        .outerjoin(Staff, Staff.id == LiveCodeRoute.staff_id)
        .outerjoin(CommunityGroup, CommunityGroup.id == LiveCodeRoute.group_id)
        .where(LiveCodeRoute.live_code_id == code.id, LiveCodeRoute.is_active.is_(True))
        .order_by(LiveCodeRoute.position, LiveCodeRoute.id)
    )
    candidates = []
    for route, staff, group in session.execute(query).all():
        if staff is not None and not staff.is_active:
            continue
        if group is not None and not group.is_active:
            continue
        if store_id is not None and (staff is None or staff.store_id != store_id):
            continue
        candidates.append(Candidate(route, staff, group))
    return candidates


def local_day(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def in_shift(route: LiveCodeRoute, working: bool) -> bool:
    if route.shift == RouteShift.ALWAYS:
        return True
    return working if route.shift == RouteShift.WORKING else not working


def take_capacity(session: Session, route: LiveCodeRoute, day: date) -> bool:
    """Count one scan against the route's cap for `day`; False (and nothing counted) when full."""

    days = _ROUTE_DAYS.c

    def bump() -> bool:
        # Core, not ORM: the hot path of every scan, filtered by primary keys already.
        statement = update(_ROUTE_DAYS).where(days.route_id == route.id, days.day == day).values(taken=days.taken + 1)
        if route.daily_cap is not None:
            statement = statement.where(days.taken < route.daily_cap)
        return bool(session.connection().execute(statement).rowcount)

    if bump():  # the day's row exists and has room: one statement, the common case
        return True
    # Whoever creates the day's row (this scan or a racing one), the conditional UPDATE decides.
    insert_or_ignore(
        session,
        LiveCodeRouteDay,
        {"workspace_id": route.workspace_id, "route_id": route.id, "day": day, "taken": 0},
        ("route_id", "day"),
    )
    return bump()


def bump_rotation(session: Session, code: LiveCode) -> int:
    """The code's rotation counter before this scan, incremented atomically."""
    codes = _CODES.c
    bumped = (
        session.connection()
        .execute(
            update(_CODES)
            .where(codes.id == code.id)
            .values(rotation_counter=codes.rotation_counter + 1)
            .returning(codes.rotation_counter)
        )
        .scalar_one()
    )
    return int(bumped) - 1


def rotation_order(
    candidates: Sequence[Candidate], mode: RotationMode, counter: int, rng: random.Random
) -> list[Candidate]:
    """Candidates in the order to try: the rotation's pick first, then the rest as fallbacks."""
    if not candidates:
        return []
    items = list(candidates)
    if mode == RotationMode.RANDOM:
        first = rng.choices(items, weights=[max(c.route.weight, 0) or 1 for c in items])[0]
    elif mode == RotationMode.WEIGHTED:
        total = sum(max(c.route.weight, 1) for c in items)
        point = counter % total
        first = items[-1]
        for candidate in items:
            weight = max(candidate.route.weight, 1)
            if point < weight:
                first = candidate
                break
            point -= weight
    else:
        first = items[counter % len(items)]
    start = items.index(first)
    return items[start:] + items[:start]


def sticky_candidate(
    session: Session, code: LiveCode, candidates: Sequence[Candidate], *, visitor_id: str, working: bool
) -> Candidate | None:
    """The route this visitor was sent to before, if it is still active and on shift."""
    previous = session.scalar(
        select(LiveCodeScan.route_id)
        .where(
            LiveCodeScan.live_code_id == code.id,
            LiveCodeScan.visitor_id == visitor_id,
            LiveCodeScan.route_id.is_not(None),
        )
        .order_by(LiveCodeScan.id.desc())
        .limit(1)
    )
    if previous is None:
        return None
    return next((c for c in candidates if c.route.id == previous and in_shift(c.route, working)), None)


@dataclass(frozen=True)
class StaffPlan:
    """What routing decided before taking any lock: the sticky route, or the ordered pools to try."""

    sticky: Candidate | None
    regular: list[Candidate]
    backups: list[Candidate]
    day: date


def plan_staff_route(
    session: Session | None,
    code: LiveCode,
    candidates: Sequence[Candidate],
    *,
    at: datetime,
    tz: ZoneInfo,
    visitor_id: str,
) -> StaffPlan:
    """The read half of routing: shift, stickiness and the pools (safe on a read-only session).

    Without a session (a first-time visitor, who has no earlier scan) stickiness is skipped.
    """
    working = is_working(code.schedule, at, tz)
    sticky = (
        sticky_candidate(session, code, candidates, visitor_id=visitor_id, working=working)
        if code.is_sticky and session is not None
        else None
    )
    on_shift = [c for c in candidates if in_shift(c.route, working)]
    return StaffPlan(
        sticky=sticky,
        regular=[c for c in on_shift if not c.route.is_backup],
        backups=[c for c in on_shift if c.route.is_backup],
        day=local_day(at, tz),
    )


def take_staff_route(session: Session, code: LiveCode, plan: StaffPlan, *, rng: random.Random) -> RouteChoice | None:
    """The write half: rotate, then take the first route with room under its cap, backups last."""
    if plan.sticky is not None:
        return RouteChoice(plan.sticky, STICKY_OUTCOME)  # the visitor was counted against the cap already
    counter = bump_rotation(session, code) if code.rotation != RotationMode.RANDOM else 0
    for pool, outcome in ((plan.regular, ROUTED_OUTCOME), (plan.backups, BACKUP_OUTCOME)):
        for candidate in rotation_order(pool, code.rotation, counter, rng):
            if take_capacity(session, candidate.route, plan.day):
                return RouteChoice(candidate, outcome)
    return None


def choose_staff_route(
    session: Session,
    code: LiveCode,
    candidates: Sequence[Candidate],
    *,
    at: datetime,
    tz: ZoneInfo,
    visitor_id: str,
    rng: random.Random,
) -> RouteChoice | None:
    """Route a scan to a staff member: sticky route, else rotation over capped regular routes, else backups."""
    plan = plan_staff_route(session, code, candidates, at=at, tz=tz, visitor_id=visitor_id)
    return take_staff_route(session, code, plan, rng=rng)


def choose_group_route(candidates: Sequence[Candidate]) -> RouteChoice | None:
    """The first group (in route order) that still has room."""
    for candidate in candidates:
        group = candidate.group
        if group is not None and group.member_count < group.member_limit:
            return RouteChoice(candidate, ROUTED_OUTCOME)
    return None


def routes_taken_on(session: Session, route_ids: Sequence[int], day: date) -> dict[int, int]:
    """How many scans each route took on `day` (for the console and the WeCom cap sync)."""
    if not route_ids:
        return {}
    rows = session.execute(
        select(LiveCodeRouteDay.route_id, LiveCodeRouteDay.taken).where(
            LiveCodeRouteDay.route_id.in_(route_ids), LiveCodeRouteDay.day == day
        )
    ).all()
    return {route_id: taken for route_id, taken in rows}
