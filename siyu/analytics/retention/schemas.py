"""The cohort report's definition: what starts a cohort, what counts as coming back, and how.

A definition is plain JSON (saved in `SavedReport.config`), parsed by `parse_config` into a
`RetentionConfig`; every problem is an `InvalidInput` naming the field ("config.grain"…).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date as _date
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from siyu.analytics.periods import Grain, parse_whole
from siyu.kit.errors import InvalidInput


class CohortBy(StrEnum):
    ADDED = "added"
    """The customer's first friend edge (`Relationship.added_at`, any staff, removed or not)."""
    FIRST_POOL_ORDER = "first_pool_order"
    """The customer's first private-domain order (`pool_sequence = 1`, not fully refunded)."""
    FIRST_ORDER = "first_order"
    """The customer's first order of any kind (not fully refunded)."""


class Measure(StrEnum):
    RETURN = "return"
    """Purchase / activity retention: the customer did the return event in the offset."""
    FRIEND = "friend"
    """Friend retention: the customer still has an open friend edge at the end of the offset."""


class ReturnEvent(StrEnum):
    ORDER = "order"
    CHECKIN = "checkin"
    ANY_EVENT = "any_event"
    EVENT = "event"
    """A named `CustomerEvent.type` (`event_type`)."""


class Criterion(StrEnum):
    ON = "on"
    """Returned in offset k exactly."""
    ON_OR_AFTER = "on_or_after"
    """Returned in offset k or any later one (up to today)."""


CHECKIN_TYPE = "checkin.done"
DEFAULT_OFFSETS = {Grain.WEEK: 8, Grain.MONTH: 12}
MAX_OFFSETS = 60
_EVENT_TYPE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")


@dataclass(frozen=True)
class RetentionConfig:
    cohort: CohortBy = CohortBy.ADDED
    grain: Grain = Grain.WEEK
    measure: Measure = Measure.RETURN
    return_event: ReturnEvent = ReturnEvent.ORDER
    event_type: str | None = None
    criterion: Criterion = Criterion.ON
    offsets: int = 8

    def as_dict(self) -> dict[str, Any]:
        """The JSON stored in a saved report (and echoed by the API)."""
        return {
            "cohort": str(self.cohort),
            "grain": str(self.grain),
            "measure": str(self.measure),
            "return_event": str(self.return_event),
            "event_type": self.event_type,
            "criterion": str(self.criterion),
            "offsets": self.offsets,
        }


def _choice(raw: dict[str, Any], key: str, enum: type[StrEnum], default: StrEnum, prefix: str) -> Any:
    value = raw.get(key)
    if value is None or value == "":
        return default
    try:
        return enum(str(value))
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise InvalidInput(f"{key} must be one of {allowed}", details={"field": f"{prefix}{key}"}) from None


def _offsets(raw: Any, field: str) -> int:
    """`offsets` as a JSON number or typed text (through `parse_whole`: ASCII digits, at most 7)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        if 1 <= raw <= MAX_OFFSETS:
            return raw
        raise InvalidInput(f"{field} must be a whole number from 1 to {MAX_OFFSETS}", details={"field": field})
    if not isinstance(raw, str):
        raise InvalidInput(f"{field} must be a whole number from 1 to {MAX_OFFSETS}", details={"field": field})
    return parse_whole(raw, field, low=1, high=MAX_OFFSETS)


def parse_config(raw: Any, *, prefix: str = "config.") -> RetentionConfig:
    """Validate a definition (a dict; missing keys take their defaults) into a `RetentionConfig`."""
    if not isinstance(raw, dict):
        raise InvalidInput("the definition must be an object", details={"field": prefix.rstrip(".") or "config"})
    known = {"cohort", "grain", "measure", "return_event", "event_type", "criterion", "offsets"}
    for key in raw:
        if key not in known:
            raise InvalidInput(f"unknown key {key!r}", details={"field": f"{prefix}{key}"})
    cohort = _choice(raw, "cohort", CohortBy, CohortBy.ADDED, prefix)
    grain = _choice(raw, "grain", Grain, Grain.WEEK, prefix)
    if grain == Grain.DAY:
        raise InvalidInput("grain must be week or month", details={"field": f"{prefix}grain"})
    measure = _choice(raw, "measure", Measure, Measure.RETURN, prefix)
    return_event = _choice(raw, "return_event", ReturnEvent, ReturnEvent.ORDER, prefix)
    criterion = _choice(raw, "criterion", Criterion, Criterion.ON, prefix)
    event_type = raw.get("event_type")
    event_type = event_type.strip() if isinstance(event_type, str) and event_type.strip() else None
    if return_event == ReturnEvent.EVENT:
        if event_type is None or len(event_type) > 60 or not _EVENT_TYPE.match(event_type):
            raise InvalidInput(
                'event_type must be an event type like "page.view"', details={"field": f"{prefix}event_type"}
            )
    else:
        event_type = None
    offsets_raw = raw.get("offsets")
    if offsets_raw is None or offsets_raw == "":
        offsets = DEFAULT_OFFSETS[grain]
    else:
        offsets = _offsets(offsets_raw, f"{prefix}offsets")
    if measure == Measure.FRIEND and cohort != CohortBy.ADDED:
        raise InvalidInput("friend retention needs cohorts by add", details={"field": f"{prefix}cohort"})
    return RetentionConfig(cohort, grain, measure, return_event, event_type, criterion, offsets)


# --- API bodies ---------------------------------------------------------------------------------


class RunIn(BaseModel):
    """A cohort report to compute: the definition and the brand-local days cohorts may enter on."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    config: dict[str, Any] = Field(default_factory=dict, description="See RetentionConfig; missing keys take defaults.")
    date_from: _date | None = Field(None, alias="from")
    date_to: _date | None = Field(None, alias="to")


class CellIn(RunIn):
    """One cell to turn into a static segment: the cohort's first day and the offset (null: whole cohort)."""

    cohort: _date
    offset: int | None = Field(None, ge=0, le=MAX_OFFSETS)
    name: str | None = Field(None, max_length=100)


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., max_length=100)
    config: dict[str, Any] = Field(default_factory=dict)


class ReportRead(BaseModel):
    id: int
    name: str
    config: dict[str, Any]
    created_by: str | None
    created_at: str
    updated_at: str
