"""Scans and adds on the demo's live codes: routing under caps and shifts, the hook test, tallies.

Pure Python on a seeded generator: `siyu.demo.acquisition` builds the funnel from the rows it
created, `siyu.demo.people` asks it for every add (and group join), and the builder inserts the
scans it hands back. Routing follows `siyu.livecodes.routing`: routes on shift by the code's
schedule, the rotation's pick first, a cap per route and brand-local day that is never exceeded,
backups only when every regular route is capped, and a returning visitor kept with the staff
member of their earlier scan. Each add comes with the scans that did not lead to one, so every
code converts at its channel's rate — and each arm of the hook test at its own.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo

from siyu.demo.channels import USER_AGENT_WEIGHTS, USER_AGENTS
from siyu.experiments.assignment import assign_variant
from siyu.livecodes.schedule import is_working
from siyu.livecodes.state import encode_state
from siyu.models import RotationMode, RouteShift

STICKY_SHARE = 0.1
"""Adds whose scanner had scanned the same code before (and is sent to the same staff member)."""
_UA_CUM = tuple(accumulate(USER_AGENT_WEIGHTS))
Row = dict[str, Any]


@dataclass(frozen=True)
class Route:
    id: int
    staff_id: int | None
    group_id: int | None
    store_id: int | None
    """The staff member's store."""
    weight: int = 1
    cap: int | None = None
    shift: RouteShift = RouteShift.ALWAYS
    backup: bool = False


@dataclass
class Code:
    """A live code as routing sees it."""

    id: int
    channel: str
    channel_id: int | None
    created_at: datetime
    routes: list[Route]
    rotation: RotationMode = RotationMode.ROUND_ROBIN
    schedule: list[dict[str, Any]] = field(default_factory=list)
    add_rate: float = 0.4
    tag_ids: tuple[int, ...] = ()
    store_id: int | None = None
    """Bound store codes: the store; store codes without one route to the store the scanner picks."""
    routed: int = 0
    """Scans routed by rotation (not sticky): the code's `rotation_counter`."""


@dataclass(frozen=True)
class Trial:
    """The hook test: which code, when, and the arms (key, add rate, weight); the first is the control."""

    id: int
    code_id: int
    start: datetime
    end: datetime
    arms: tuple[tuple[str, float, int], ...]


@dataclass(frozen=True)
class Group:
    route: Route
    seats: int
    """Joins through the code it can still take (its member count: the rest joined otherwise)."""
    until: datetime
    """Joins before this went here; later ones to the next group."""


@dataclass
class Attributed:
    """An add through a live code: who was added, how it is attributed, and the scans it came with."""

    staff_id: int
    channel: str
    channel_id: int | None
    live_code_id: int
    state: str
    variant: str | None
    tag_ids: tuple[int, ...]
    scan: Row
    """The scan the add came from (the builder sets its `customer_id`)."""
    scans: list[Row]
    """Every scan drawn with the add, its own included."""


@dataclass
class Joined:
    group_id: int
    live_code_id: int
    tag_ids: tuple[int, ...]
    scan: Row
    scans: list[Row]


class Funnel:
    """Draws the scans of every add; remembers caps taken, exposures and per-day tallies."""

    def __init__(
        self,
        rng: random.Random,
        *,
        workspace_id: int,
        now: datetime,
        tz: ZoneInfo,
        online: dict[str, Code],
        regional: dict[str, Code],
        stores: dict[int, Code],
        stores_by_city: dict[str, list[int]],
        stores_by_region: dict[str, list[int]],
        online_share: dict[str, float],
        opened: dict[str, datetime],
        trial: Trial | None,
        trial_boost: float = 1.0,
        group_code: Code | None = None,
        groups: Sequence[Group] = (),
        tally_since: date | None = None,
    ) -> None:
        self.rng, self.workspace_id, self.now, self.tz = rng, workspace_id, now, tz
        # Visitor ids come from a generator of their own: during the test they are drawn until one
        # hashes to the wanted arm, and how many draws that takes depends on the experiment's id.
        self._visitor_rng = random.Random(rng.getrandbits(64))
        self.online, self.regional, self.stores = online, regional, stores
        self.stores_by_city, self.stores_by_region = stores_by_city, stores_by_region
        self.online_share, self.opened, self.trial, self.trial_boost = online_share, opened, trial, trial_boost
        self._trial_channel = next((c.channel for c in online.values() if trial and c.id == trial.code_id), None)
        self.group_code, self.groups = group_code, list(groups)
        self._seats = [g.seats for g in self.groups]
        self.tally_since = tally_since or date.min
        self.taken: dict[tuple[int, date], int] = {}
        """Scans routed per (route id, brand-local day): the `live_code_route_days` rows."""
        self.tallies: dict[tuple[int, date], list[int]] = {}
        """[scans, adds] per (channel id, brand-local day) since `tally_since`, for the cost entries."""
        self.exposures: list[tuple[str, str, datetime, Row | None]] = []
        """Hook test: (visitor, arm, exposed at, the add scan when the visitor converted)."""
        self._arm_adds = {key: 0 for key, _, _ in trial.arms} if trial else {}
        self._owed: dict[tuple[int, str | None], float] = {}
        self._pools: dict[tuple[int, bool, int | None], tuple[list[Route], list[int], list[Route]]] = {}
        self._states: dict[tuple[int, str | None], str] = {}

    @property
    def codes(self) -> list[Code]:
        """Every code of the funnel."""
        found = [*self.online.values(), *self.regional.values(), *self.stores.values()]
        return found + ([self.group_code] if self.group_code else [])

    def day(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()

    def weight(self, channel: str, weight: float, at: datetime) -> float:
        """A channel's weight among new adds at `at`: none before its launch, boosted on the test's code."""
        if at < self.opened[channel]:
            return 0.0
        trial = self.trial
        if trial is not None and channel == self._trial_channel and trial.start <= at < trial.end:
            return weight * self.trial_boost
        return weight

    def add(
        self,
        channel: str,
        at: datetime,
        *,
        city: str,
        region: str | None,
        exclude_staff: int | None = None,
    ) -> Attributed:
        """A customer added a staff member at `at` after scanning a code of `channel`."""
        rng = self.rng
        code, store_id = self._code_for(channel, city, region)
        scanned = max(at - timedelta(seconds=rng.randint(15, 600)), code.created_at)
        arm = self._arm(code, scanned)
        visitor = self._visitor(arm)
        strays = self._strays_owed(code, arm)
        scans: list[Row] = []
        outcome = None
        if arm is None and strays and not code.schedule and rng.random() < STICKY_SHARE:
            # They scanned before without adding; the code keeps them with the staff member of then.
            before = scanned - timedelta(seconds=rng.randint(3600, 3 * 86400))
            if before >= code.created_at:
                route, first = self._take(code, before, store_id, exclude_staff)
                scans.append(self._scan(code, route, store_id, None, visitor, first, before))
                strays, outcome = strays - 1, "sticky"
        if outcome is None:
            route, outcome = self._take(code, scanned, store_id, exclude_staff)
        if route is None or route.staff_id is None:
            raise RuntimeError(f"live code {code.id} has no route with room for an add")  # every code has one
        scan = self._scan(code, route, store_id, arm, visitor, outcome, scanned)
        scan["added_at"] = at
        scans.append(scan)
        if arm is not None:
            self._arm_adds[arm] += 1
            self.exposures.append((visitor, arm, scanned, scan))
        scans += [self._stray(code, store_id, arm, scanned) for _ in range(strays)]
        self._tally(code.channel_id, at, 1)
        state = self._state(code, arm)
        return Attributed(route.staff_id, code.channel, code.channel_id, code.id, state, arm, code.tag_ids, scan, scans)

    def join(self, at: datetime) -> Joined | None:
        """A customer joined a group through the group code at `at` (None when no group had a seat)."""
        code = self.group_code
        if code is None or at < code.created_at:
            return None
        index = next((i for i, g in enumerate(self.groups) if at < g.until and self._seats[i] > 0), None)
        if index is None:
            return None
        self._seats[index] -= 1
        route = self.groups[index].route
        scanned = max(at - timedelta(seconds=self.rng.randint(10, 300)), code.created_at)
        scan = self._scan(code, route, None, None, self._visitor(None), "routed", scanned)
        scan["added_at"] = at
        scans = [scan] + [self._stray(code, None, None, scanned) for _ in range(self._strays_owed(code, None))]
        return Joined(route.group_id or 0, code.id, code.tag_ids, scan, scans)

    # --- routing -------------------------------------------------------------------------------

    def _code_for(self, channel: str, city: str, region: str | None) -> tuple[Code, int | None]:
        """The code the customer scanned, and the store they picked (store codes)."""
        rng = self.rng
        nearby = self.stores_by_city.get(city) or self.stores_by_region.get(region or "")
        if channel in self.regional and nearby and rng.random() >= self.online_share.get(channel, 1.0):
            return self.regional[channel], rng.choice(nearby)
        if channel in self.online:
            return self.online[channel], None
        if not nearby:
            raise ValueError(f"no store near {city} for a {channel} add")
        store_id = rng.choice(nearby)
        return self.stores[store_id], store_id

    def _pool(self, code: Code, working: bool, store_id: int | None) -> tuple[list[Route], list[int], list[Route]]:
        key = (code.id, working, store_id)
        if key not in self._pools:
            eligible = [
                r
                for r in code.routes
                if (store_id is None or r.store_id == store_id)
                and (r.shift == RouteShift.ALWAYS or (r.shift == RouteShift.WORKING) == working)
            ]
            regular = [r for r in eligible if not r.backup]
            cum = list(accumulate(max(r.weight, 1) for r in regular))
            self._pools[key] = (regular, cum, [r for r in eligible if r.backup])
        return self._pools[key]

    def _take(
        self, code: Code, at: datetime, store_id: int | None, exclude_staff: int | None
    ) -> tuple[Route | None, str]:
        """Route one scan: the rotation's pick first, then the other regular routes, then backups."""
        working = not code.schedule or is_working(code.schedule, at, self.tz)
        regular, cum, backups = self._pool(code, working, store_id)
        counter, code.routed = code.routed, code.routed + 1
        if regular:
            if code.rotation == RotationMode.RANDOM:
                first = self.rng.choices(range(len(regular)), cum_weights=cum)[0]
            elif code.rotation == RotationMode.WEIGHTED:
                point = counter % cum[-1]
                first = next(i for i, edge in enumerate(cum) if point < edge)
            else:
                first = counter % len(regular)
            regular = regular[first:] + regular[:first]
        day = self.day(at)
        for pool, outcome in ((regular, "routed"), (backups, "backup")):
            for route in pool:
                if route.staff_id is not None and route.staff_id == exclude_staff:
                    continue
                taken = self.taken.get((route.id, day), 0)
                if route.cap is None or taken < route.cap:
                    self.taken[(route.id, day)] = taken + 1
                    return route, outcome
        return None, "no_route"

    # --- scans ---------------------------------------------------------------------------------

    def _strays_owed(self, code: Code, arm: str | None) -> int:
        """How many scans without an add go with this add, so the code (or arm) converts at its rate."""
        rate = (
            code.add_rate if arm is None or self.trial is None else next(r for k, r, _ in self.trial.arms if k == arm)
        )
        owed = self._owed.get((code.id, arm), 0.0) + (1 - rate) / rate
        whole = int(owed)
        self._owed[(code.id, arm)] = owed - whole
        return whole

    def _stray(self, code: Code, store_id: int | None, arm: str | None, near: datetime) -> Row:
        """A scan that led to no add, within a day and a half of `near` (on the same side of the test)."""
        delta = timedelta(seconds=self.rng.randint(-36 * 3600, 36 * 3600))
        at = near + delta
        if self._in_trial(code, at) != (arm is not None):
            at = near - delta if self._in_trial(code, near - delta) == (arm is not None) else near
        at = min(max(at, code.created_at), self.now)
        visitor = self._visitor(arm)
        route: Route | None
        if code is self.group_code:  # the group that had room then; no seat taken without a join
            route = self._group_at(at)
            outcome = "routed" if route is not None else "no_route"
        else:
            route, outcome = self._take(code, at, store_id, None)
        scan = self._scan(code, route, store_id, arm, visitor, outcome, at)
        if arm is not None:
            self.exposures.append((visitor, arm, at, None))
        return scan

    def _group_at(self, at: datetime) -> Route | None:
        return next((g.route for g in self.groups if at < g.until), None)

    def _scan(
        self,
        code: Code,
        route: Route | None,
        store_id: int | None,
        arm: str | None,
        visitor: str,
        outcome: str,
        at: datetime,
    ) -> Row:
        rng = self.rng
        self._tally(code.channel_id, at, 0)
        return {
            "workspace_id": self.workspace_id,
            "live_code_id": code.id,
            "route_id": route.id if route else None,
            "staff_id": route.staff_id if route else None,
            "group_id": route.group_id if route else None,
            "store_id": store_id or code.store_id or (route.store_id if route else None),
            "channel_id": code.channel_id,
            "variant": arm,
            "state": self._state(code, arm),
            "visitor_id": visitor,
            "user_agent": rng.choices(USER_AGENTS, cum_weights=_UA_CUM)[0],
            "ip_hash": f"{rng.getrandbits(256):064x}",
            "outcome": outcome,
            "scanned_at": at,
            "customer_id": None,
            "added_at": None,
        }

    def _state(self, code: Code, arm: str | None) -> str:
        key = (code.id, arm)
        if key not in self._states:
            self._states[key] = encode_state(code.id, code.channel_id, arm)
        return self._states[key]

    def _tally(self, channel_id: int | None, at: datetime, adds: int) -> None:
        if channel_id is None:
            return
        day = self.day(at)
        if day >= self.tally_since:
            counts = self.tallies.setdefault((channel_id, day), [0, 0])
            counts[0 if adds == 0 else 1] += 1

    # --- the hook test -------------------------------------------------------------------------

    def _in_trial(self, code: Code, at: datetime) -> bool:
        trial = self.trial
        return trial is not None and code.id == trial.code_id and trial.start <= at < trial.end

    def _arm(self, code: Code, at: datetime) -> str | None:
        """The arm of an add on the test's code during the test: the one furthest below its share.

        Arms get equal traffic but convert at different rates, so the adds split in proportion to
        weight × rate; picking the arm most behind keeps each arm's rate what was drawn.
        """
        trial = self.trial
        if trial is None or not self._in_trial(code, at):
            return None
        total = sum(self._arm_adds.values()) + 1
        shares = {key: weight * rate for key, rate, weight in trial.arms}
        whole = sum(shares.values())
        return max(shares, key=lambda key: shares[key] / whole * total - self._arm_adds[key])

    def _visitor(self, arm: str | None) -> str:
        """A new visitor id (a cookie hash); during the test one whose assigned arm is `arm`."""
        rng = self._visitor_rng
        while True:
            visitor = f"{rng.getrandbits(128):032x}"
            if arm is None or self.trial is None:
                return visitor
            weights = [(key, weight) for key, _, weight in self.trial.arms]
            if assign_variant(self.trial.id, visitor, weights) == arm:
                return visitor
