"""Survivorship: which value of a profile field wins when two records of a person meet.

Default rule "most_recent": the most recently set non-empty value wins. A workspace may set a
field to "oldest" (the first non-empty value is kept, e.g. first-touch channel) instead.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from siyu.kit.clock import as_utc
from siyu.models import Customer
from siyu.models.customer import PROFILE_FIELDS


class Rule(StrEnum):
    MOST_RECENT = "most_recent"
    OLDEST = "oldest"


# first_channel is first-touch by definition.
DEFAULT_RULES: dict[str, Rule] = {"first_channel": Rule.OLDEST}
ATTRIBUTE_PREFIX = "attr."


def rule_for(field: str, overrides: dict[str, Any]) -> Rule:
    return Rule(overrides.get(field) or DEFAULT_RULES.get(field, Rule.MOST_RECENT))


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _stamp(customer: Customer, field: str) -> datetime | None:
    raw = (customer.field_updated_at or {}).get(field)
    return as_utc(datetime.fromisoformat(raw)) if raw else None


def current_value(customer: Customer, field: str) -> Any:
    """The value of a profile field or `attr.<key>`."""
    if field.startswith(ATTRIBUTE_PREFIX):
        return (customer.attributes or {}).get(field.removeprefix(ATTRIBUTE_PREFIX))
    return getattr(customer, field)


def wins(customer: Customer, field: str, observed_at: datetime, overrides: dict[str, Any]) -> bool:
    """Whether a non-empty value observed at `observed_at` should replace the current one."""
    if is_empty(current_value(customer, field)):
        return True
    stamp = _stamp(customer, field)
    if stamp is None:
        return rule_for(field, overrides) is Rule.MOST_RECENT
    if rule_for(field, overrides) is Rule.OLDEST:
        return observed_at < stamp
    return observed_at >= stamp


def set_field(customer: Customer, field: str, value: Any, observed_at: datetime) -> None:
    """Set a profile field or `attr.<key>` and remember when, for later survivorship."""
    stamps = dict(customer.field_updated_at or {})
    stamps[field] = observed_at.isoformat()
    customer.field_updated_at = stamps
    if field.startswith(ATTRIBUTE_PREFIX):
        attributes = dict(customer.attributes or {})
        attributes[field.removeprefix(ATTRIBUTE_PREFIX)] = value
        customer.attributes = attributes
    else:
        setattr(customer, field, value)


def snapshot(customer: Customer) -> dict[str, Any]:
    """JSON-safe copy of the profile, attributes and stamps (for audit and merge undo)."""
    data: dict[str, Any] = {}
    for name in PROFILE_FIELDS:
        value = getattr(customer, name)
        data[name] = value.isoformat() if isinstance(value, date | datetime) else value
    data["attributes"] = dict(customer.attributes or {})
    data["field_updated_at"] = dict(customer.field_updated_at or {})
    return data


def restore(customer: Customer, data: dict[str, Any]) -> None:
    """Put back a `snapshot`."""
    for name in PROFILE_FIELDS:
        value = data.get(name)
        if name == "birthday" and value:
            value = date.fromisoformat(value)
        setattr(customer, name, value)
    customer.attributes = dict(data.get("attributes") or {})
    customer.field_updated_at = dict(data.get("field_updated_at") or {})
