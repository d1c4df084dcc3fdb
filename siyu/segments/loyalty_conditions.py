"""Segment conditions on loyalty and commerce state: tier, points, expiring points, coupons,
first order (首单) and repurchase (复购).

```
{"kind": "tier", "tier_ids": [2, 3]}                     # in one of these tiers (`member: false`: not)
{"kind": "tier", "tier_names": ["尊享"]}
{"kind": "points_balance", "op": "gte", "value": 500}    # non-members count 0
{"kind": "points_expiring", "within_days": 30, "op": "gte", "value": 100}
{"kind": "coupon", "template_ids": [4], "state": "unused"}  # holds an unused one (`has: false`: does not)
{"kind": "first_order"}                                  # has a private-domain first order (`value: false`: not)
{"kind": "repurchaser"}                                  # two or more private-domain orders
```
Parsing lives here and is registered in `definition._CONDITIONS`; `compiler_loyalty` compiles them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from siyu.segments.definition import (
    AMOUNT_OPS,
    MAX_DAYS,
    Comparison,
    DefinitionError,
    _comparison,
    _ids,
    _int,
    _strings,
)

COUPON_STATES = {"unused", "redeemed", "any"}
"""unused: issued and not expired at evaluation time; redeemed: used on an order; any: ever issued."""


@dataclass(frozen=True)
class TierCondition:
    path: str
    tier_ids: tuple[int, ...]
    tier_names: tuple[str, ...]
    member: bool


@dataclass(frozen=True)
class PointsBalanceCondition:
    path: str
    comparison: Comparison


@dataclass(frozen=True)
class PointsExpiringCondition:
    path: str
    within_days: int
    comparison: Comparison


@dataclass(frozen=True)
class CouponCondition:
    path: str
    template_ids: tuple[int, ...] | None
    """None: a coupon of any template."""
    state: str
    has: bool


@dataclass(frozen=True)
class MemberFlagCondition:
    path: str
    flag: str  # "first_order" or "repurchaser"
    value: bool


LOYALTY_CONDITIONS = (
    TierCondition | PointsBalanceCondition | PointsExpiringCondition | CouponCondition | MemberFlagCondition
)


def _bool(raw: dict[str, Any], key: str, path: str) -> bool:
    value = raw.get(key, True)
    if not isinstance(value, bool):
        raise DefinitionError(f"{path}.{key}", "expected true or false")
    return value


def _whole_points(comparison: Comparison, path: str) -> Comparison:
    for bound in (comparison.value, comparison.upper):
        if bound is not None and not float(bound).is_integer():
            raise DefinitionError(f"{path}.value", "points are whole numbers")
    return comparison


def _tier(raw: dict[str, Any], path: str) -> TierCondition:
    ids = _ids(raw["tier_ids"], f"{path}.tier_ids") if "tier_ids" in raw else ()
    names = _strings(raw["tier_names"], f"{path}.tier_names", max_len=50) if "tier_names" in raw else ()
    if not ids and not names:
        raise DefinitionError(f"{path}.tier_ids", "give at least one tier id or tier name")
    return TierCondition(path, ids, names, _bool(raw, "member", path))


def _points_balance(raw: dict[str, Any], path: str) -> PointsBalanceCondition:
    return PointsBalanceCondition(path, _whole_points(_comparison(raw, path, AMOUNT_OPS, "number"), path))


def _points_expiring(raw: dict[str, Any], path: str) -> PointsExpiringCondition:
    if "within_days" not in raw:
        raise DefinitionError(f"{path}.within_days", "required")
    days = _int(raw["within_days"], f"{path}.within_days", minimum=1, maximum=MAX_DAYS)
    if "op" not in raw and "value" not in raw:
        comparison = Comparison("gte", 1)
    else:
        comparison = _whole_points(_comparison(raw, path, AMOUNT_OPS, "number"), path)
    return PointsExpiringCondition(path, days, comparison)


def _coupon(raw: dict[str, Any], path: str) -> CouponCondition:
    templates = raw.get("template_ids")
    state = raw.get("state", "unused")
    if not isinstance(state, str) or state not in COUPON_STATES:
        raise DefinitionError(f"{path}.state", f"expected one of {', '.join(sorted(COUPON_STATES))}")
    return CouponCondition(
        path,
        None if templates is None else _ids(templates, f"{path}.template_ids"),
        state,
        _bool(raw, "has", path),
    )


def _first_order(raw: dict[str, Any], path: str) -> MemberFlagCondition:
    return MemberFlagCondition(path, "first_order", _bool(raw, "value", path))


def _repurchaser(raw: dict[str, Any], path: str) -> MemberFlagCondition:
    return MemberFlagCondition(path, "repurchaser", _bool(raw, "value", path))


PARSERS: dict[str, tuple[set[str], Any]] = {
    "tier": ({"tier_ids", "tier_names", "member"}, _tier),
    "points_balance": ({"op", "value"}, _points_balance),
    "points_expiring": ({"within_days", "op", "value"}, _points_expiring),
    "coupon": ({"template_ids", "state", "has"}, _coupon),
    "first_order": ({"value"}, _first_order),
    "repurchaser": ({"value"}, _repurchaser),
}
