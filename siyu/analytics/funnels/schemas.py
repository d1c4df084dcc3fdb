"""Funnel definitions: the JSON an operator writes, parsed into typed steps with field paths in errors.

```json
{"steps": [{"kind": "scan"},
           {"kind": "added", "within": {"days": 7}},
           {"kind": "order", "nth": 1, "within": {"days": 30}, "window_from": "start"}],
 "order": "ordered",
 "exclusions": [{"exclude": {"kind": "event", "type": "coupon.claim"}, "between": [2, 3]}],
 "breakdown": {"by": "channel"}}
```
Steps are numbered from 1 in `between`, as on the page.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from siyu.kit.errors import InvalidInput

MAX_STEPS = 10
MAX_WINDOW_HOURS = 366 * 24
DEFAULT_WINDOW_HOURS = 30 * 24
MAX_EXCLUSIONS = 5
MAX_TAG_IDS = 50


class StepKind(StrEnum):
    SCAN = "scan"  # a live-code scan that knows its customer
    ADDED = "added"  # a friend edge added
    EVENT = "event"  # a customer event of a type, with optional equal-property filters
    ORDER = "order"  # the nth private-domain order (pool_sequence), or any order when nth is null
    JOINED_GROUP = "joined_group"  # a stay in a community group began


class FunnelOrder(StrEnum):
    ORDERED = "ordered"
    ANY = "any"


class BreakdownBy(StrEnum):
    CHANNEL = "channel"
    STAFF = "staff"
    VARIANT = "variant"
    TAG = "tag"


@dataclass(frozen=True)
class StepSpec:
    """What one step matches; the window is how long after its anchor it may happen."""

    kind: StepKind
    event_type: str | None = None
    properties: tuple[tuple[str, Any], ...] = ()
    nth: int | None = None
    window_hours: int = DEFAULT_WINDOW_HOURS
    from_start: bool = False
    """True: the window runs from the first step; False: from the previous step."""

    @property
    def source(self) -> Hashable:
        """Which rows the step matches: steps with the same source can match the same row (so a path
        must tell them apart); events of different types never share a row."""
        return (str(self.kind), self.event_type) if self.kind == StepKind.EVENT else str(self.kind)

    def as_json(self, *, first: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": str(self.kind)}
        if self.kind == StepKind.EVENT:
            out["type"] = self.event_type
            if self.properties:
                out["properties"] = dict(self.properties)
        if self.kind == StepKind.ORDER:
            out["nth"] = self.nth
        if not first:
            days, hours = divmod(self.window_hours, 24)
            out["within"] = {"days": days} if hours == 0 else {"hours": self.window_hours}
            if self.from_start:
                out["window_from"] = "start"
        return out


@dataclass(frozen=True)
class Exclusion:
    step: StepSpec
    between: tuple[int, int]
    """1-based step numbers i < j."""


@dataclass(frozen=True)
class Breakdown:
    by: BreakdownBy
    tag_group_id: int | None = None
    tag_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class FunnelDefinition:
    steps: tuple[StepSpec, ...]
    order: FunnelOrder = FunnelOrder.ORDERED
    exclusions: tuple[Exclusion, ...] = ()
    breakdown: Breakdown | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def as_json(self) -> dict[str, Any]:
        """The canonical JSON (what is saved and echoed back)."""
        out: dict[str, Any] = {
            "steps": [s.as_json(first=i == 0) for i, s in enumerate(self.steps)],
            "order": str(self.order),
        }
        if self.exclusions:
            out["exclusions"] = [
                {"exclude": e.step.as_json(first=True), "between": list(e.between)} for e in self.exclusions
            ]
        if self.breakdown is not None:
            b: dict[str, Any] = {"by": str(self.breakdown.by)}
            if self.breakdown.tag_group_id is not None:
                b["tag_group_id"] = self.breakdown.tag_group_id
            if self.breakdown.tag_ids:
                b["tag_ids"] = list(self.breakdown.tag_ids)
            out["breakdown"] = b
        return out


def _bad(path: str, message: str) -> InvalidInput:
    return InvalidInput(f"{path}: {message}", details={"field": path})


def _positive_int(value: Any, path: str, *, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise _bad(path, f"must be a whole number from 1 to {maximum}")
    return value


def _keys(data: dict[str, Any], allowed: set[str], path: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _bad(f"{path}.{unknown[0]}" if path else unknown[0], "unknown field")


def _window(step: dict[str, Any], path: str) -> tuple[int, bool]:
    within = step.get("within")
    hours = DEFAULT_WINDOW_HOURS
    if within is not None:
        if not isinstance(within, dict) or len(within) != 1 or next(iter(within)) not in ("days", "hours"):
            raise _bad(f"{path}.within", 'must be {"days": N} or {"hours": N}')
        unit, value = next(iter(within.items()))
        limit = MAX_WINDOW_HOURS // 24 if unit == "days" else MAX_WINDOW_HOURS
        amount = _positive_int(value, f"{path}.within.{unit}", maximum=limit)
        hours = amount * 24 if unit == "days" else amount
    anchor = step.get("window_from", "previous")
    if anchor not in ("previous", "start"):
        raise _bad(f"{path}.window_from", 'must be "previous" or "start"')
    return hours, anchor == "start"


def parse_step(data: Any, path: str, *, first: bool) -> StepSpec:
    """One step (or an exclusion's step) from JSON; `InvalidInput` names the field, e.g. "steps[2].nth"."""
    if not isinstance(data, dict):
        raise _bad(path, "must be an object")
    try:
        kind = StepKind(str(data.get("kind")))
    except ValueError:
        raise _bad(f"{path}.kind", "must be one of " + ", ".join(k.value for k in StepKind)) from None
    allowed = {"kind"} | ({"within", "window_from"} if not first else set())
    event_type: str | None = None
    properties: tuple[tuple[str, Any], ...] = ()
    nth: int | None = None
    if kind == StepKind.EVENT:
        allowed |= {"type", "properties"}
        event_type = data.get("type")
        if not isinstance(event_type, str) or not event_type.strip() or len(event_type) > 60:
            raise _bad(f"{path}.type", "must name an event type (1–60 characters)")
        raw = data.get("properties") or {}
        if not isinstance(raw, dict):
            raise _bad(f"{path}.properties", "must be an object of property: value")
        for key, value in raw.items():
            if not isinstance(value, str | int | float | bool) or value is None:
                raise _bad(f"{path}.properties.{key}", "must be a text, number or true/false")
            if isinstance(value, float) and not math.isfinite(value):
                raise _bad(f"{path}.properties.{key}", "must be a finite number")
        properties = tuple(sorted(raw.items()))
        event_type = event_type.strip()
    if kind == StepKind.ORDER:
        allowed |= {"nth"}
        if data.get("nth") is not None:
            nth = _positive_int(data["nth"], f"{path}.nth", maximum=100)
    _keys(data, allowed, path)
    hours, from_start = (0, False) if first else _window(data, path)
    return StepSpec(kind, event_type, properties, nth, hours, from_start)


def parse_definition(data: Any, path: str = "definition") -> FunnelDefinition:
    """A funnel definition from JSON; every error names its field path (`definition.steps[1].within.days`)."""
    if not isinstance(data, dict):
        raise _bad(path, "must be an object with steps")
    _keys(data, {"steps", "order", "exclusions", "breakdown"}, path)
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not 2 <= len(raw_steps) <= MAX_STEPS:
        raise _bad(f"{path}.steps", f"must be a list of 2 to {MAX_STEPS} steps")
    steps = tuple(parse_step(s, f"{path}.steps[{i}]", first=i == 0) for i, s in enumerate(raw_steps))
    try:
        order = FunnelOrder(data.get("order", "ordered"))
    except ValueError:
        raise _bad(f"{path}.order", 'must be "ordered" or "any"') from None
    raw_exclusions = data.get("exclusions") or []
    if not isinstance(raw_exclusions, list) or len(raw_exclusions) > MAX_EXCLUSIONS:
        raise _bad(f"{path}.exclusions", f"must be a list of at most {MAX_EXCLUSIONS}")
    exclusions = []
    for i, item in enumerate(raw_exclusions):
        where = f"{path}.exclusions[{i}]"
        if not isinstance(item, dict):
            raise _bad(where, "must be an object")
        _keys(item, {"exclude", "between"}, where)
        between = item.get("between")
        if (
            not isinstance(between, list)
            or len(between) != 2
            or not all(isinstance(b, int) and not isinstance(b, bool) for b in between)
            or not 1 <= between[0] < between[1] <= len(steps)
        ):
            raise _bad(f"{where}.between", f"must be two step numbers [i, j] with 1 ≤ i < j ≤ {len(steps)}")
        step = parse_step(item.get("exclude"), f"{where}.exclude", first=True)
        exclusions.append(Exclusion(step, (between[0], between[1])))
    if exclusions and order == FunnelOrder.ANY:
        raise _bad(f"{path}.exclusions", 'only ordered funnels have exclusions (order "ordered")')
    return FunnelDefinition(steps, order, tuple(exclusions), _breakdown(data.get("breakdown"), f"{path}.breakdown"))


def _breakdown(data: Any, path: str) -> Breakdown | None:
    if data is None or data == {}:
        return None
    if not isinstance(data, dict):
        raise _bad(path, 'must be an object like {"by": "channel"}')
    _keys(data, {"by", "tag_group_id", "tag_ids"}, path)
    try:
        by = BreakdownBy(str(data.get("by")))
    except ValueError:
        raise _bad(f"{path}.by", "must be one of " + ", ".join(b.value for b in BreakdownBy)) from None
    if by != BreakdownBy.TAG:
        if "tag_group_id" in data or "tag_ids" in data:
            raise _bad(f"{path}.by", "tag_group_id and tag_ids go with by = tag")
        return Breakdown(by)
    group, ids = data.get("tag_group_id"), data.get("tag_ids")
    if (group is None) == (ids is None):
        raise _bad(f"{path}.tag_group_id", "give either tag_group_id or tag_ids")
    if group is not None:
        return Breakdown(by, tag_group_id=_positive_int(group, f"{path}.tag_group_id", maximum=2**62))
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_TAG_IDS:
        raise _bad(f"{path}.tag_ids", f"must be a list of 1 to {MAX_TAG_IDS} tag ids")
    tag_ids = tuple(_positive_int(t, f"{path}.tag_ids[{i}]", maximum=2**62) for i, t in enumerate(ids))
    return Breakdown(by, tag_ids=tag_ids)


DEFAULT_DEFINITION: dict[str, Any] = {
    "steps": [
        {"kind": "scan"},
        {"kind": "added", "within": {"days": 1}},
        {"kind": "order", "nth": 1, "within": {"days": 30}},
    ],
    "order": "ordered",
}
"""What the page shows before anyone writes a funnel: scan → add within a day → first order within 30 days."""


# --- API bodies -----------------------------------------------------------------------------------


class FunnelRun(BaseModel):
    """Run a funnel over a brand-local date range (`from`/`to` default to the last 30 days)."""

    definition: dict[str, Any] | None = None
    report_id: int | None = Field(default=None, gt=0)
    date_from: str | None = Field(default=None, alias="from")
    date_to: str | None = Field(default=None, alias="to")


class FunnelDropOff(FunnelRun):
    """The customers who reached `step` (1-based) and not the next one, as a static segment."""

    step: int = Field(ge=1, le=MAX_STEPS)
    breakdown_value: str | None = None
    name: str | None = Field(default=None, max_length=100)


class FunnelReached(FunnelRun):
    """The customers who reached `step` (1-based), in total or in one breakdown group, as a static segment."""

    step: int = Field(ge=1, le=MAX_STEPS)
    breakdown_value: str | None = None
    name: str | None = Field(default=None, max_length=100)


class FunnelSave(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    definition: dict[str, Any]
