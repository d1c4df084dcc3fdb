"""Hypothesis strategies for the segment property tests: small random pools of customers with
everything a definition can look at, and random definitions whose values come from the same
pools of values as the data, so that conditions hit some customers and miss others.

Times cluster on the edges that matter: `now`, exactly N days before it (± 1 s), and brand-local
midnights (± 1 s) in Asia/Shanghai.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from siyu.models import ConsentChannel
from tests.conftest import NOW

TZ = ZoneInfo("Asia/Shanghai")
TODAY = NOW.astimezone(TZ).date()  # 2026-11-23 (it is 10:00 there)

ATTRIBUTE_TYPES = {"skin": "string", "visits": "integer", "score": "number", "vip": "boolean", "anniv": "date"}
"""The custom attributes of the main workspace (the second one defines `skin` as an integer)."""


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=TZ).astimezone(UTC)


# --- value pools shared by data and definitions ---------------------------------------------------

DAY_COUNTS = [0, 1, 2, 3, 7, 30, 90]
WINDOW_DAYS = [1, 2, 3, 7, 30, 90, 3660]
RELATIVE_DAYS = [0, 1, 2, 3, 7, 30, 90, 365, 3660]
ANNIVERSARY_DAYS = [0, 1, 6, 7, 8, 30, 38, 39, 40, 96, 97, 98, 99, 364, 365, 400]

EDGE_INSTANTS = sorted(
    {NOW + timedelta(days=-k, seconds=s) for k in [*DAY_COUNTS, 365] for s in (-1, 0, 1)}
    | {
        local_midnight(TODAY + timedelta(days=k)) + timedelta(seconds=s)
        for k in (-90, -30, -7, -3, -2, -1, 0, 1)
        for s in (-1, 0)
    }
)
DAYS = [TODAY + timedelta(days=k) for k in (-400, -90, -31, -30, -7, -3, -2, -1, 0, 1, 2)]
BIRTHDAYS = [
    date(2000, 2, 29),
    date(1990, 2, 28),
    date(1991, 3, 1),
    date(1985, 11, 22),
    date(1985, 11, 23),
    date(1995, 11, 24),
    date(1988, 11, 30),
    date(1999, 12, 31),
    date(2001, 1, 1),
    date(1970, 1, 1),
    date(2026, 11, 23),
    date(2026, 11, 16),
    date(2025, 11, 23),
]

STRINGS: dict[str, list[str | None]] = {
    "name": ["张三", "李四", "Alice", "alice", "王", "a%b", "a_b", "axb", "😀a", "Ａ", "", None],
    "province": ["浙江", "上海", "", None],
    "city": ["上海", "杭州", "北京", "", None],
    "phone": ["+8613800138000", "+8613900139000", "", None],
    "email": ["a@x.com", "B@x.com", "", None],
    "first_channel": ["包裹卡", "直播", "", None],
}
STRING_PROBES = ["", "a", "A", "上", "a_", "%", "_", "+86139", "@x", "😀", "\uffff"]
GENDERS = ["female", "male", "unknown"]
STAGES = ["lead", "new", "active", "loyal", "dormant", "churned"]

ATTRIBUTE_VALUES: dict[str, list[Any]] = {
    "skin": ["油性", "干性", "Oily", "oily", "", "a%b", "a_b"],
    "visits": [-2, 0, 1, 3, 3.0, 2.5, 10, 2**40],
    "score": [-2.25, 0, 1.5, 3, 3.0, 99.99],
    "vip": [True, False],
    "anniv": [*(d.isoformat() for d in BIRTHDAYS), *(d.isoformat() for d in DAYS), ""],
}
WRONGLY_TYPED: dict[str, list[Any]] = {
    "skin": [5, True, None, ["油性"], {"k": "v"}],
    "visits": ["3", True, False, None, [3]],
    "score": ["1.5", True, None],
    "vip": [1, 0, "true", None],
    "anniv": [20261123, True, None, {"d": "2026-11-23"}],
}

EVENT_TYPES = ["page.view", "order.paid", "coupon.used"]
PROPERTY_VALUES: dict[str, list[Any]] = {
    "path": ["/p/1", "/p/2", "/P/1", "/home", "", 5, True, None, ["/p/1"], {"a": 1}],
    "n": [0, 1, 5, 5.0, 2.5, -1, "5", True, None],
    "flag": [True, False, 1, "true", None],
    "title": ["你好", "a_b", "a%b", "axb"],
}
PROPERTY_OPERANDS: list[Any] = ["/p/1", "/home", "", "a_b", "你好", 5, 5.0, 2.5, 0, -1, True, False, "5", "true"]
PROPERTY_PROBES = ["/p", "/", "", "p", "a_", "%", "你"]
PROPERTY_ORDERED: list[Any] = [0, 1, 5, 2.5, -1, "/p", "/p/1", "", "a"]

PLATFORMS = ["taobao", "jd", "pos"]
SKUS = ["SKU-1", "SKU-2", "SKU-3"]
CATEGORIES = ["面霜", "精华"]
AMOUNTS = [0, 100, 9_900, 10_000, 19_900, 50_000]
AMOUNT_OPERANDS: list[int | float] = [0, 100, 9_900, 10_000, 10_000.0, 19_900, 20_000, 29_850, 50_000]
IDENTITY_TYPES = ["phone", "taobao", "jd", "app_uid"]
CONSENT_CHANNELS = [str(c) for c in ConsentChannel]


# --- data ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    """The ids of one workspace that data and definitions may use (hashable, so strategies built
    for it are cached: building strategies anew on every draw costs more than drawing from them)."""

    workspace_id: int
    tag_ids: tuple[int, ...]
    staff_ids: tuple[int, ...]
    channel_ids: tuple[int, ...]
    segment_ids: tuple[int, ...] = ()
    tier_ids: tuple[int, ...] = ()
    template_ids: tuple[int, ...] = ()


_BUILT: dict[str, st.SearchStrategy[Any]] = {}


def pick(values: Sequence[Any]) -> st.SearchStrategy[Any]:
    """`sampled_from`, built once per list of values. Keyed by repr: a tuple key would take
    `True`, `1` and `1.0` for the same value."""
    key = f"pick {values!r}"
    if key not in _BUILT:
        _BUILT[key] = st.sampled_from(list(values))
    return _BUILT[key]


def subsets(values: Sequence[Any], min_size: int = 0, max_size: int | None = None) -> st.SearchStrategy[Any]:
    """Sorted lists of distinct values, built once per arguments."""
    key = f"subsets {values!r} {min_size} {max_size}"
    if key not in _BUILT:
        _BUILT[key] = st.sets(st.sampled_from(list(values)), min_size=min_size, max_size=max_size).map(sorted)
    return _BUILT[key]


def some(values: Sequence[Any], max_size: int) -> st.SearchStrategy[Any]:
    """Non-empty lists (repeats allowed) of values, built once per arguments."""
    key = f"some {values!r} {max_size}"
    if key not in _BUILT:
        _BUILT[key] = st.lists(st.sampled_from(list(values)), min_size=1, max_size=max_size)
    return _BUILT[key]


@cache
def _cached(build: Callable[..., st.SearchStrategy[Any]], *args: Any) -> st.SearchStrategy[Any]:
    """A strategy built from hashable arguments (catalogs, depths), once."""
    return build(*args)


@cache
def ints(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


BOOLEANS = st.booleans()


instants = st.one_of(
    pick(EDGE_INSTANTS),
    st.integers(-3 * 86_400, 400 * 86_400).map(lambda s: NOW - timedelta(seconds=s)),
)
birthdays = st.one_of(st.none(), pick(BIRTHDAYS), st.dates(date(1950, 1, 1), date(2026, 12, 31)))
maybe_instants = st.one_of(st.none(), instants)
order_items = st.lists(st.tuples(pick(SKUS), pick([*CATEGORIES, None])), max_size=2)


@st.composite
def attributes(draw: st.DrawFn) -> dict[str, Any]:
    """Custom attribute values: missing, well typed, or stored with another JSON type."""
    out: dict[str, Any] = {}
    for key in ATTRIBUTE_TYPES:
        choice = draw(ints(0, 5))
        if choice == 0:
            continue
        pool = WRONGLY_TYPED[key] if choice == 1 else ATTRIBUTE_VALUES[key]
        out[key] = draw(pick(pool))
    if draw(BOOLEANS):
        out["undefined_key"] = "x"
    return out


ATTRIBUTES = attributes()


@st.composite
def people(draw: st.DrawFn, catalog: Catalog, max_size: int) -> list[dict[str, Any]]:
    """Customer rows (as column values); `merged_into` is the index of an earlier row, or None."""
    rows = []
    for index in range(draw(ints(0, max_size))):
        row: dict[str, Any] = {key: draw(pick(pool)) for key, pool in STRINGS.items()}
        row["gender"] = draw(pick([*GENDERS, "", None]))
        row["birthday"] = draw(birthdays)
        row["lifecycle_stage"] = draw(pick(STAGES))
        row["owner_staff_id"] = draw(pick([None, *catalog.staff_ids]))
        row["attributes"] = draw(ATTRIBUTES)
        row["created_at"] = draw(instants)
        row["erased_at"] = NOW if draw(ints(0, 9)) == 0 else None  # erased customers stay in the pool
        merged = index > 0 and draw(ints(0, 7)) == 0
        row["merged_into"] = draw(ints(0, index - 1)) if merged else None
        rows.append(row)
    return rows


@dataclass
class Related:
    """Rows about customers in other tables (customer ids already resolved)."""

    tags: set[tuple[int, int]] = field(default_factory=set)
    identities: list[tuple[int, str]] = field(default_factory=list)
    relationships: list[dict[str, Any]] = field(default_factory=list)
    consents: dict[tuple[int, str], str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    """Each with "items": a list of (sku, category)."""


@st.composite
def related(draw: st.DrawFn, catalog: Catalog, customer_ids: list[int]) -> Related:
    out = Related()
    for cid in customer_ids:
        for tag_id in draw(subsets(catalog.tag_ids, max_size=3)):
            out.tags.add((cid, tag_id))
        for kind in draw(subsets(IDENTITY_TYPES, max_size=2)):
            out.identities.append((cid, kind))
        for _ in range(draw(ints(0, 2))):
            removed_at = draw(maybe_instants)
            out.relationships.append(
                {
                    "customer_id": cid,
                    "staff_id": draw(pick(catalog.staff_ids)),
                    "channel_id": draw(pick([None, *catalog.channel_ids])),
                    "added_at": draw(instants),
                    "removed_at": removed_at,
                    "removed_by": None if removed_at is None else draw(pick([None, "customer", "staff"])),
                }
            )
        for channel in draw(subsets(CONSENT_CHANNELS, max_size=2)):
            out.consents[(cid, channel)] = draw(pick(["granted", "unsubscribed"]))
        for _ in range(draw(ints(0, 4))):
            props = {key: draw(pick(pool)) for key, pool in PROPERTY_VALUES.items() if draw(BOOLEANS)}
            out.events.append(
                {
                    "customer_id": cid,
                    "type": draw(pick(EVENT_TYPES)),
                    "occurred_at": draw(instants),
                    "properties": props,
                }
            )
        for _ in range(draw(ints(0, 3))):
            total = draw(pick(AMOUNTS))
            status = draw(pick(["paid", "partially_refunded", "refunded"]))
            refunded = 0 if status == "paid" else draw(ints(0, total))
            out.orders.append(
                {
                    "customer_id": cid,
                    "platform": draw(pick(PLATFORMS)),
                    "status": status,
                    "total_fen": total,
                    "refunded_fen": refunded,
                    "paid_at": draw(instants),
                    "items": draw(order_items),
                }
            )
    return out


# --- definitions -----------------------------------------------------------------------------------

# Operators by field type, as the table in docs/segments.md lists them.
STRING_OPS = [
    "eq",
    "ne",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "is_set",
    "is_not_set",
]
CHOICE_OPS = ["eq", "ne", "in", "not_in", "is_set", "is_not_set"]
NUMBER_OPS = ["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"]
BOOLEAN_OPS = ["eq", "ne", "is_set", "is_not_set"]
DATETIME_OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set", "within_last", "more_than_ago"]
DATE_OPS = [*DATETIME_OPS, "anniversary_within_next"]


def _operands(field_name: str, catalog: Catalog) -> tuple[list[str], list[Any]]:
    """The operators of a field and the values to compare it with (as JSON)."""
    if field_name in STRINGS:
        return STRING_OPS, [v for v in STRINGS[field_name] if v is not None] + STRING_PROBES
    if field_name == "gender":
        return CHOICE_OPS, GENDERS
    if field_name == "lifecycle_stage":
        return CHOICE_OPS, STAGES
    if field_name == "owner_staff_id":
        return CHOICE_OPS, list(catalog.staff_ids)
    if field_name == "birthday":
        return DATE_OPS, [d.isoformat() for d in BIRTHDAYS + DAYS]
    if field_name == "created_at":
        return DATETIME_OPS, [d.isoformat() for d in DAYS]
    key = field_name.removeprefix("attributes.")
    kind = ATTRIBUTE_TYPES[key]
    values = [v for v in ATTRIBUTE_VALUES[key] if not isinstance(v, float) or kind == "number"]
    if kind == "string":
        return STRING_OPS, values + STRING_PROBES
    if kind == "integer":
        return NUMBER_OPS, [v for v in values if isinstance(v, int)]
    if kind == "number":
        return NUMBER_OPS, [*values, 2.5]
    if kind == "boolean":
        return BOOLEAN_OPS, [True, False]
    return DATE_OPS, [v for v in values if v != ""]


# Hypothesis favours the first entry of a list when test cases are large: put the trickiest first.
FIELD_NAMES = [
    "created_at",
    "attributes.visits",
    "birthday",
    *STRINGS,
    "gender",
    "lifecycle_stage",
    "owner_staff_id",
    *(f"attributes.{key}" for key in ATTRIBUTE_TYPES if key != "visits"),
]


def _sorted_pair(draw: st.DrawFn, pool: list[Any]) -> list[Any]:
    low, high = draw(pick(pool)), draw(pick(pool))
    return [low, high] if low <= high else [high, low]


@st.composite
def field_conditions(draw: st.DrawFn, catalog: Catalog) -> dict[str, Any]:
    name = draw(pick(FIELD_NAMES))
    ops, values = _operands(name, catalog)
    op = draw(pick(ops))
    out: dict[str, Any] = {"kind": "field", "field": name, "op": op}
    if op in ("is_set", "is_not_set"):
        return out
    if op in ("within_last", "more_than_ago"):
        out["value"] = draw(pick(RELATIVE_DAYS))
    elif op == "anniversary_within_next":
        out["value"] = draw(pick(ANNIVERSARY_DAYS))
    elif op in ("in", "not_in"):
        out["value"] = draw(some(values, 3))
    elif op == "between":
        out["value"] = _sorted_pair(draw, values)
    elif op in ("contains", "starts_with"):
        out["value"] = draw(pick([v for v in values if isinstance(v, str)]))
    else:
        out["value"] = draw(pick(values))
    return out


@st.composite
def windows(draw: st.DrawFn) -> dict[str, Any] | None:
    form = draw(ints(0, 4))
    if form == 0:
        return None
    if form <= 2:
        return {"last_days": draw(pick(WINDOW_DAYS))}
    low, high = _sorted_pair(draw, DAYS)
    out = {"from": low.isoformat(), "to": high.isoformat()}
    drop = draw(pick([None, "from", "to"]))
    if drop:
        del out[drop]
    return out


def _with_window(out: dict[str, Any], window: dict[str, Any] | None) -> dict[str, Any]:
    if window is not None:
        out["window"] = window
    return out


WINDOWS = windows()


@st.composite
def moments(draw: st.DrawFn) -> dict[str, Any]:
    """`op` and `value` for first/last occurrences."""
    op = draw(pick(["before", "after", "between", "within_last", "more_than_ago"]))
    if op in ("within_last", "more_than_ago"):
        return {"op": op, "value": draw(pick(RELATIVE_DAYS))}
    if op == "between":
        return {"op": op, "value": [d.isoformat() for d in _sorted_pair(draw, DAYS)]}
    return {"op": op, "value": draw(pick(DAYS)).isoformat()}


MOMENTS = moments()


def amounts(pool: list[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """`op` and `value` for counts and amounts, built once per pool."""
    key = f"amounts {pool!r}"
    if key not in _BUILT:
        _BUILT[key] = _amounts(pool)
    return _BUILT[key]


@st.composite
def _amounts(draw: st.DrawFn, pool: list[Any]) -> dict[str, Any]:
    """`op` and `value` for counts and amounts."""
    op = draw(pick(["at_least", "at_most", "exactly", "eq", "ne", "gt", "gte", "lt", "lte", "between"]))
    return {"op": op, "value": _sorted_pair(draw, pool) if op == "between" else draw(pick(pool))}


@st.composite
def property_filters(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(pick([*PROPERTY_VALUES, "missing"]))
    op = draw(
        pick(["eq", "ne", "in", "not_in", "contains", "starts_with", "gt", "gte", "lt", "lte", "is_set", "is_not_set"])
    )
    out: dict[str, Any] = {"property": name, "op": op}
    if op in ("eq", "ne"):
        out["value"] = draw(pick(PROPERTY_OPERANDS))
    elif op in ("in", "not_in"):
        out["value"] = draw(some(PROPERTY_OPERANDS, 3))
    elif op in ("contains", "starts_with"):
        out["value"] = draw(pick(PROPERTY_PROBES))
    elif op in ("gt", "gte", "lt", "lte"):
        out["value"] = draw(pick(PROPERTY_ORDERED))
    return out


WHERE = st.lists(property_filters(), max_size=2)


@st.composite
def event_conditions(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "event", "type": draw(pick([*EVENT_TYPES, "never.seen"]))}
    where = draw(WHERE)
    if where:
        out["where"] = where
    measure = draw(pick([None, "count", "first", "last"]))
    if measure is not None:
        out["measure"] = measure
    if measure in (None, "count"):
        out.update(draw(amounts([0, 1, 2, 2.0, 3, 4])))
    else:
        out.update(draw(MOMENTS))
    return _with_window(out, draw(WINDOWS))


@st.composite
def order_conditions(draw: st.DrawFn) -> dict[str, Any]:
    measure = draw(pick(["count", "total_fen", "average_fen", "first_paid_at", "last_paid_at"]))
    out: dict[str, Any] = {"kind": "order", "measure": measure}
    if measure in ("first_paid_at", "last_paid_at"):
        out.update(draw(MOMENTS))
    else:
        out.update(draw(amounts([0, 1, 2, 3] if measure == "count" else AMOUNT_OPERANDS)))
    if draw(BOOLEANS):
        out["platforms"] = draw(subsets([*PLATFORMS, "youzan"], min_size=1, max_size=2))
    return _with_window(out, draw(WINDOWS))


@st.composite
def purchase_conditions(draw: st.DrawFn) -> dict[str, Any]:
    skus = draw(subsets(["SKU-1", "SKU-2", "SKU-9"], max_size=2))
    categories = draw(subsets([*CATEGORIES, "彩妆"], min_size=0 if skus else 1, max_size=2))
    out: dict[str, Any] = {"kind": "purchase"}
    if skus:
        out["skus"] = skus
    if categories:
        out["categories"] = categories
    bought = draw(pick([None, True, False]))
    if bought is not None:
        out["bought"] = bought
    return _with_window(out, draw(WINDOWS))


EVENT_CONDITIONS = event_conditions()
ORDER_CONDITIONS = order_conditions()
PURCHASE_CONDITIONS = purchase_conditions()


@st.composite
def relationship_conditions(draw: st.DrawFn, catalog: Catalog) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "relationship"}
    status = draw(pick([None, "active", "removed", "any"]))
    if status is not None:
        out["status"] = status
    if status in ("removed", "any"):
        removed_by = draw(pick([None, "customer", "staff"]))
        if removed_by is not None:
            out["removed_by"] = removed_by
    if draw(BOOLEANS):
        out["staff_ids"] = draw(subsets(catalog.staff_ids, min_size=1))
    if draw(BOOLEANS):
        out["channel_ids"] = draw(subsets(catalog.channel_ids, min_size=1))
    return _with_window(out, draw(WINDOWS))


@st.composite
def conditions(draw: st.DrawFn, catalog: Catalog) -> dict[str, Any]:
    kinds = [
        "field",
        "field",
        "identity",
        "tag",
        "relationship",
        "consent",
        "event",
        "event",
        "order",
        "order",
        "purchase",
        "sample",
    ] + (["segment", "segment"] if catalog.segment_ids else [])
    if catalog.tier_ids:
        kinds += ["tier", "points_balance", "points_expiring", "coupon", "first_order", "repurchaser"]
    kind = draw(pick(kinds))
    if kind in LOYALTY_KINDS:
        return draw(_cached(loyalty_conditions, catalog, kind))
    if kind == "field":
        return draw(_cached(field_conditions, catalog))
    if kind == "identity":
        out: dict[str, Any] = {"kind": "identity", "type": draw(pick([*IDENTITY_TYPES, "douyin"]))}
        present = draw(pick([None, True, False]))
        return out if present is None else {**out, "present": present}
    if kind == "tag":
        out = {"kind": "tag", "tag_ids": draw(subsets(catalog.tag_ids, min_size=1))}
        match = draw(pick([None, "any", "all", "none"]))
        return out if match is None else {**out, "match": match}
    if kind == "relationship":
        return draw(_cached(relationship_conditions, catalog))
    if kind == "consent":
        return {
            "kind": "consent",
            "channel": draw(pick(CONSENT_CHANNELS)),
            "status": draw(pick(["granted", "unsubscribed"])),
        }
    if kind == "event":
        return draw(EVENT_CONDITIONS)
    if kind == "order":
        return draw(ORDER_CONDITIONS)
    if kind == "purchase":
        return draw(PURCHASE_CONDITIONS)
    if kind == "segment":
        out = {"kind": "segment", "segment_id": draw(pick(catalog.segment_ids))}
        member = draw(pick([None, True, False]))
        return out if member is None else {**out, "member": member}
    return {
        "kind": "sample",
        "percent": draw(pick([0.01, 1, 10, 33.33, 50, 99.99, 100])),
        "seed": draw(pick(["", "a", "spring-holdout"])),
    }


def definitions(catalog: Catalog, max_depth: int = 4) -> st.SearchStrategy[dict[str, Any]]:
    """A random definition: groups nest up to `max_depth` deep, conditions get likelier deeper down."""
    return _cached(_definitions, catalog, max_depth, 0)


@st.composite
def _definitions(draw: st.DrawFn, catalog: Catalog, max_depth: int, depth: int) -> dict[str, Any]:
    if depth >= max_depth or draw(ints(0, 9)) < 4 + 2 * depth:
        return draw(_cached(conditions, catalog))
    combinator = draw(pick(["all", "any", "not"]))
    if combinator == "not":
        return {"not": draw(_cached(_definitions, catalog, max_depth, depth + 1))}
    children = draw(st.lists(_cached(_definitions, catalog, max_depth, depth + 1), min_size=1, max_size=3))
    return {combinator: children}


# --- loyalty state -------------------------------------------------------------------------------

LOYALTY_KINDS = ("tier", "points_balance", "points_expiring", "coupon", "first_order", "repurchaser")
TIER_NAMES = ("普通", "高级", "尊享")
POINTS = (0, 1, 99, 100, 500)
EXPIRY_OFFSETS = (
    None,
    -timedelta(days=1),
    timedelta(seconds=1),
    timedelta(days=7),
    timedelta(days=30),
    timedelta(days=31),
)
"""Lot and coupon expiries around now and around the windows conditions use (7 and 30 days)."""


@st.composite
def loyalty_conditions(draw: st.DrawFn, catalog: Catalog, kind: str) -> dict[str, Any]:
    def points_comparison() -> dict[str, Any]:
        op = draw(pick(["gte", "gt", "lt", "lte", "eq", "ne", "between", "at_least", "at_most"]))
        if op == "between":
            low = draw(pick(POINTS))
            return {"op": op, "value": [low, low + draw(pick([0, 1, 400]))]}
        return {"op": op, "value": draw(pick(POINTS))}

    if kind == "tier":
        out: dict[str, Any] = {"kind": "tier"}
        if draw(BOOLEANS):
            out["tier_ids"] = draw(subsets(catalog.tier_ids, min_size=1))
        else:
            out["tier_names"] = draw(subsets(TIER_NAMES, min_size=1))
        member = draw(pick([None, True, False]))
        return out if member is None else {**out, "member": member}
    if kind == "points_balance":
        return {"kind": "points_balance", **points_comparison()}
    if kind == "points_expiring":
        out = {"kind": "points_expiring", "within_days": draw(pick([1, 7, 30]))}
        return out if draw(BOOLEANS) else {**out, **points_comparison()}
    if kind == "coupon":
        out = {"kind": "coupon"}
        if draw(BOOLEANS):
            out["template_ids"] = draw(subsets(catalog.template_ids, min_size=1))
        state = draw(pick([None, "unused", "redeemed", "any"]))
        if state is not None:
            out["state"] = state
        has = draw(pick([None, True, False]))
        return out if has is None else {**out, "has": has}
    value = draw(pick([None, True, False]))
    return {"kind": kind} if value is None else {"kind": kind, "value": value}


@dataclass
class LoyaltyRows:
    members: list[dict[str, Any]]
    lots: list[dict[str, Any]]
    """`{"customer_id", "remaining", "expires_in"}`."""
    coupons: list[dict[str, Any]]
    """`{"customer_id", "template_id", "state", "expires_in"}`."""


@st.composite
def loyalty_rows(draw: st.DrawFn, catalog: Catalog, customer_ids: tuple[int, ...]) -> LoyaltyRows:
    members, lots, coupons = [], [], []
    for customer_id in customer_ids:
        if draw(BOOLEANS):
            first = draw(BOOLEANS)
            members.append(
                {
                    "customer_id": customer_id,
                    "tier_id": draw(pick((None, *catalog.tier_ids))),
                    "points_balance": draw(pick(POINTS)),
                    "has_first_order": first,
                    "is_repurchaser": first and draw(BOOLEANS),
                }
            )
            for _ in range(draw(ints(0, 2))):
                remaining, expires_in = draw(pick(POINTS)), draw(pick(EXPIRY_OFFSETS))
                lots.append({"customer_id": customer_id, "remaining": remaining, "expires_in": expires_in})
        for _ in range(draw(ints(0, 2))):
            coupons.append(
                {
                    "customer_id": customer_id,
                    "template_id": draw(pick(catalog.template_ids)),
                    "state": draw(pick(["issued", "redeemed", "expired", "void"])),
                    "expires_in": draw(pick(EXPIRY_OFFSETS)),
                }
            )
    return LoyaltyRows(members, lots, coupons)
