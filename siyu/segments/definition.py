"""The segment definition language: a JSON tree of groups and conditions, parsed into typed nodes.

A definition is a node. A node is a group — `{"all": [...]}`, `{"any": [...]}`, `{"not": node}` —
or a condition, `{"kind": ...}`. Parsing checks the shape only (types, required keys, ranges);
`siyu.segments.validation` then checks the names a definition refers to (fields, tags, staff,
segments) against the workspace. Every error carries the path of the offending node, e.g.
`$.all[1].any[0].op`, so the console can point at it.

See docs/segments.md for the language with examples.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from siyu.kit.errors import InvalidInput

MAX_DEPTH = 8
"""Groups nest at most this deep (the root group is depth 1)."""
MAX_NODES = 200
"""At most this many nodes (groups and conditions) in one definition."""
MAX_LIST = 1000
"""At most this many values in one `in` list, tag list or SKU list."""
MAX_DAYS = 3660

# Operators by what they compare; which apply to a field depends on its type (see fields.py).
VALUE_OPS = {"eq", "ne", "gt", "gte", "lt", "lte"}
LIST_OPS = {"in", "not_in"}
TEXT_OPS = {"contains", "starts_with"}
PRESENCE_OPS = {"is_set", "is_not_set"}
RELATIVE_OPS = {"within_last", "more_than_ago", "anniversary_within_next"}
FIELD_OPS = VALUE_OPS | LIST_OPS | TEXT_OPS | PRESENCE_OPS | RELATIVE_OPS | {"between"}

# Aggregates (event counts, order amounts): `at_least`/`at_most`/`exactly` read better for counts.
AMOUNT_OPS = {"eq", "ne", "gt", "gte", "lt", "lte", "between"}
COUNT_ALIASES = {"at_least": "gte", "at_most": "lte", "exactly": "eq"}
# First / last occurrence (events) and first / last order date.
MOMENT_OPS = {"before", "after", "between", "within_last", "more_than_ago"}

EVENT_MEASURES = {"count", "first", "last"}
ORDER_MEASURES = {"count", "total_fen", "average_fen", "first_paid_at", "last_paid_at"}
PROPERTY_OPS = VALUE_OPS | LIST_OPS | TEXT_OPS | PRESENCE_OPS
RELATIONSHIP_STATUSES = {"active", "removed", "any"}
REMOVED_BY = {"customer", "staff"}
TAG_MATCHES = {"any", "all", "none"}
CONSENT_STATUSES = {"granted", "unsubscribed"}

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MIN_YEAR, MAX_YEAR = 1900, 2999
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
_PROPERTY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class DefinitionError(InvalidInput):
    """A definition that cannot be used; `details` holds the path of the offending node."""

    code = "invalid_segment"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}", details={"field": "definition", "path": path})
        self.path = path


# --- the tree ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A time window: the last N days (rolling), or brand-local dates `start`..`end` inclusive."""

    last_days: int | None = None
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True)
class Comparison:
    """`op` with its operand: one value, or two for `between` (inclusive)."""

    op: str
    value: Any = None
    upper: Any = None


@dataclass(frozen=True)
class Group:
    path: str
    combinator: str  # "all", "any" or "not" (one child)
    children: tuple[Node, ...]


@dataclass(frozen=True)
class FieldCondition:
    path: str
    field: str
    """A profile field ("city") or a custom attribute ("attributes.skin_type")."""
    op: str
    value: Any = None
    upper: Any = None


@dataclass(frozen=True)
class IdentityCondition:
    path: str
    type: str
    present: bool


@dataclass(frozen=True)
class TagCondition:
    path: str
    match: str  # any, all, none
    tag_ids: tuple[int, ...]


@dataclass(frozen=True)
class RelationshipCondition:
    path: str
    staff_ids: tuple[int, ...] | None
    """None: any staff member."""
    status: str
    """active: still a friend; removed: the edge ended; any: ever added."""
    removed_by: str | None
    channel_ids: tuple[int, ...] | None
    window: Window | None
    """On `added_at` (status active / any) or on `removed_at` (status removed)."""


@dataclass(frozen=True)
class PropertyFilter:
    path: str
    property: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class EventCondition:
    path: str
    type: str
    where: tuple[PropertyFilter, ...]
    measure: str  # count, first, last
    comparison: Comparison
    window: Window | None


@dataclass(frozen=True)
class OrderCondition:
    path: str
    measure: str
    comparison: Comparison
    window: Window | None
    platforms: tuple[str, ...] | None


@dataclass(frozen=True)
class PurchaseCondition:
    path: str
    skus: tuple[str, ...]
    categories: tuple[str, ...]
    window: Window | None
    bought: bool


@dataclass(frozen=True)
class ConsentCondition:
    path: str
    channel: str
    status: str


@dataclass(frozen=True)
class SegmentCondition:
    path: str
    segment_id: int
    member: bool


@dataclass(frozen=True)
class SampleCondition:
    path: str
    percent: float
    """0 < percent ≤ 100, at most two decimals."""
    seed: str


Condition = (
    FieldCondition
    | IdentityCondition
    | TagCondition
    | RelationshipCondition
    | EventCondition
    | OrderCondition
    | PurchaseCondition
    | ConsentCondition
    | SegmentCondition
    | SampleCondition
)
Node = Group | Condition


# --- parsing -----------------------------------------------------------------------------------


def parse_definition(raw: Any) -> Node:
    """Parse a definition (already JSON-decoded) into nodes, or raise `DefinitionError` with a path."""
    _refuse_nul(raw, "$", 0)
    counter = [0]
    return _node(raw, "$", 1, counter)


def _refuse_nul(value: Any, path: str, depth: int) -> None:
    """PostgreSQL cannot store or compare a NUL character; refuse it where it is, before anything else."""
    if depth > MAX_DEPTH * 3 + 4:
        return  # deeper than any valid definition: the depth check reports it
    if isinstance(value, str):
        if "\x00" in value:
            raise DefinitionError(path, "contains a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in str(key):
                raise DefinitionError(path, "a key contains a NUL character")
            _refuse_nul(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nul(item, f"{path}[{index}]", depth + 1)


def _node(raw: Any, path: str, depth: int, counter: list[int]) -> Node:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise DefinitionError(path, f"a definition holds at most {MAX_NODES} groups and conditions")
    if not isinstance(raw, dict):
        raise DefinitionError(path, "expected an object: a group (all / any / not) or a condition (kind)")
    groups = [key for key in ("all", "any", "not") if key in raw]
    if groups:
        if len(raw) != 1:
            raise DefinitionError(path, "a group holds exactly one key: all, any or not")
        combinator = groups[0]
        if depth > MAX_DEPTH:
            raise DefinitionError(path, f"groups nest at most {MAX_DEPTH} deep")
        inner = f"{path}.{combinator}"
        if combinator == "not":
            return Group(path, "not", (_node(raw["not"], inner, depth + 1, counter),))
        items = raw[combinator]
        if not isinstance(items, list) or not items:
            raise DefinitionError(inner, "expected a non-empty list of groups and conditions")
        children = tuple(_node(item, f"{inner}[{i}]", depth + 1, counter) for i, item in enumerate(items))
        return Group(path, combinator, children)
    if "kind" not in raw:
        raise DefinitionError(path, "expected a group (all / any / not) or a condition with a kind")
    kind = raw["kind"]
    parser = _CONDITIONS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise DefinitionError(f"{path}.kind", f"unknown condition kind {kind!r}; use one of {', '.join(_CONDITIONS)}")
    allowed, fn = parser
    unknown = sorted(set(raw) - allowed - {"kind"})
    if unknown:
        raise DefinitionError(f"{path}.{unknown[0]}", f"unknown key {unknown[0]!r} in a {kind} condition")
    return fn(raw, path)


# --- value helpers -----------------------------------------------------------------------------


def _required(raw: dict[str, Any], key: str, path: str) -> Any:
    if key not in raw:
        raise DefinitionError(f"{path}.{key}", "required")
    return raw[key]


def _choice(raw: dict[str, Any], key: str, path: str, choices: set[str], default: str | None = None) -> str:
    value = raw.get(key, default) if default is not None else _required(raw, key, path)
    if not isinstance(value, str) or value not in choices:
        raise DefinitionError(f"{path}.{key}", f"expected one of {', '.join(sorted(choices))}")
    return value


def _int(value: Any, path: str, *, minimum: int = 0, maximum: int = 2**53) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DefinitionError(path, "expected a whole number")
    if value < minimum or value > maximum:
        raise DefinitionError(path, f"expected a number from {minimum} to {maximum}")
    return value


def _number(value: Any, path: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DefinitionError(path, "expected a number")
    # The range first: math.isfinite(10**400) raises OverflowError on a huge integer.
    if isinstance(value, int) and abs(value) > 2**53:
        raise DefinitionError(path, "number out of range")
    if not math.isfinite(value):
        raise DefinitionError(path, "expected a number")
    if abs(value) > 2**53:
        raise DefinitionError(path, "number out of range")
    return value


def parse_date(value: Any) -> date | None:
    """A `YYYY-MM-DD` date of the years 1900–2999 (so day arithmetic never overflows), else None."""
    if not isinstance(value, str) or not _DATE.match(value):
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return day if MIN_YEAR <= day.year <= MAX_YEAR else None


def _date(value: Any, path: str) -> date:
    day = parse_date(value)
    if day is None:
        raise DefinitionError(path, f"expected a date as YYYY-MM-DD between {MIN_YEAR} and {MAX_YEAR}")
    return day


def _ids(value: Any, path: str, *, allow_empty: bool = False) -> tuple[int, ...]:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise DefinitionError(path, "expected a non-empty list of ids")
    if len(value) > MAX_LIST:
        raise DefinitionError(path, f"at most {MAX_LIST} ids")
    return tuple(sorted({_int(v, f"{path}[{i}]", minimum=1) for i, v in enumerate(value)}))


def _strings(value: Any, path: str, *, max_len: int = 200) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise DefinitionError(path, "expected a list of strings")
    if len(value) > MAX_LIST:
        raise DefinitionError(path, f"at most {MAX_LIST} values")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item or len(item) > max_len:
            raise DefinitionError(f"{path}[{i}]", f"expected a non-empty string of at most {max_len} characters")
    return tuple(sorted(set(value)))


def _days(value: Any, path: str) -> int:
    return _int(value, path, minimum=0, maximum=MAX_DAYS)


def parse_window(raw: Any, path: str) -> Window | None:
    """`{"last_days": N}` or `{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}` (either end may be left out)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw:
        raise DefinitionError(path, 'expected {"last_days": N} or {"from": date, "to": date}')
    unknown = sorted(set(raw) - {"last_days", "from", "to"})
    if unknown:
        raise DefinitionError(f"{path}.{unknown[0]}", f"unknown key {unknown[0]!r} in a window")
    if "last_days" in raw:
        if "from" in raw or "to" in raw:
            raise DefinitionError(path, "give last_days or from/to, not both")
        return Window(last_days=_int(raw["last_days"], f"{path}.last_days", minimum=1, maximum=MAX_DAYS))
    start = _date(raw["from"], f"{path}.from") if "from" in raw else None
    end = _date(raw["to"], f"{path}.to") if "to" in raw else None
    if start and end and end < start:
        raise DefinitionError(f"{path}.to", "the window ends before it starts")
    return Window(start=start, end=end)


def _text(raw: dict[str, Any], key: str, path: str, *, max_len: int = 100) -> str:
    value = _required(raw, key, path)
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise DefinitionError(f"{path}.{key}", f"expected a non-empty string of at most {max_len} characters")
    return value


def _comparison(raw: dict[str, Any], path: str, ops: set[str], operand: str) -> Comparison:
    """`op` and `value` of an aggregate. `operand` is "number" or "moment" (a date or a day count)."""
    op = raw.get("op")
    if isinstance(op, str) and operand == "number":
        op = COUNT_ALIASES.get(op, op)
    if not isinstance(op, str) or op not in ops:
        names = sorted(ops | (set(COUNT_ALIASES) if operand == "number" else set()))
        raise DefinitionError(f"{path}.op", f"expected one of {', '.join(names)}")
    value_path = f"{path}.value"
    value = _required(raw, "value", path)
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise DefinitionError(value_path, "between takes [low, high]")
        parse = _number if operand == "number" else _date
        low, high = parse(value[0], f"{value_path}[0]"), parse(value[1], f"{value_path}[1]")
        if high < low:  # type: ignore[operator]
            raise DefinitionError(value_path, "between takes [low, high] with low ≤ high")
        return Comparison(op, low, high)
    if operand == "number":
        return Comparison(op, _number(value, value_path))
    if op in ("within_last", "more_than_ago"):
        return Comparison(op, _days(value, value_path))
    return Comparison(op, _date(value, value_path))


# --- one parser per condition kind -------------------------------------------------------------


def _field(raw: dict[str, Any], path: str) -> FieldCondition:
    name = _text(raw, "field", path)
    op = _choice(raw, "op", path, FIELD_OPS)
    if op in PRESENCE_OPS:
        if "value" in raw:
            raise DefinitionError(f"{path}.value", f"{op} takes no value")
        return FieldCondition(path, name, op)
    value = _required(raw, "value", path)
    value_path = f"{path}.value"
    if op in LIST_OPS:
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise DefinitionError(value_path, f"{op} takes a non-empty list of at most {MAX_LIST} values")
        return FieldCondition(path, name, op, tuple(value))
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise DefinitionError(value_path, "between takes [low, high]")
        return FieldCondition(path, name, op, value[0], value[1])
    if op in RELATIVE_OPS:
        return FieldCondition(path, name, op, _days(value, value_path))
    return FieldCondition(path, name, op, value)


def _identity(raw: dict[str, Any], path: str) -> IdentityCondition:
    present = raw.get("present", True)
    if not isinstance(present, bool):
        raise DefinitionError(f"{path}.present", "expected true or false")
    return IdentityCondition(path, _text(raw, "type", path, max_len=40), present)


def _tag(raw: dict[str, Any], path: str) -> TagCondition:
    match = _choice(raw, "match", path, TAG_MATCHES, default="any")
    return TagCondition(path, match, _ids(_required(raw, "tag_ids", path), f"{path}.tag_ids"))


def _relationship(raw: dict[str, Any], path: str) -> RelationshipCondition:
    status = _choice(raw, "status", path, RELATIONSHIP_STATUSES, default="active")
    removed_by = raw.get("removed_by")
    if removed_by is not None:
        if removed_by not in REMOVED_BY:
            raise DefinitionError(f"{path}.removed_by", "expected customer or staff")
        if status == "active":
            raise DefinitionError(f"{path}.removed_by", "removed_by needs status removed (or any)")
    staff = raw.get("staff_ids")
    channels = raw.get("channel_ids")
    return RelationshipCondition(
        path,
        staff_ids=None if staff is None else _ids(staff, f"{path}.staff_ids"),
        status=status,
        removed_by=removed_by,
        channel_ids=None if channels is None else _ids(channels, f"{path}.channel_ids"),
        window=parse_window(raw.get("window"), f"{path}.window"),
    )


def _property_filter(raw: Any, path: str) -> PropertyFilter:
    if not isinstance(raw, dict):
        raise DefinitionError(path, "expected an object with property, op and value")
    unknown = sorted(set(raw) - {"property", "op", "value"})
    if unknown:
        raise DefinitionError(f"{path}.{unknown[0]}", f"unknown key {unknown[0]!r} in a property filter")
    name = _required(raw, "property", path)
    if not isinstance(name, str) or not _PROPERTY.match(name):
        raise DefinitionError(f"{path}.property", "expected a property name of letters, digits, _ and -")
    op = _choice(raw, "op", path, PROPERTY_OPS)
    if op in PRESENCE_OPS:
        return PropertyFilter(path, name, op)
    value = _required(raw, "value", path)
    value_path = f"{path}.value"
    values = value if op in LIST_OPS else [value]
    if op in LIST_OPS and (not isinstance(value, list) or not value or len(value) > MAX_LIST):
        raise DefinitionError(value_path, f"{op} takes a non-empty list of at most {MAX_LIST} values")
    for item in values:
        if op in TEXT_OPS and not isinstance(item, str):
            raise DefinitionError(value_path, f"{op} takes a string")
        if op in {"gt", "gte", "lt", "lte"} and (isinstance(item, bool) or not isinstance(item, int | float | str)):
            raise DefinitionError(value_path, f"{op} takes a number or a string")
        if not isinstance(item, str | int | float | bool):
            raise DefinitionError(value_path, "expected a string, number or true/false")
        if isinstance(item, int | float) and not isinstance(item, bool):
            _number(item, value_path)
        if isinstance(item, str) and len(item) > 200:
            raise DefinitionError(value_path, "expected a string of at most 200 characters")
    return PropertyFilter(path, name, op, tuple(value) if op in LIST_OPS else value)


def _event(raw: dict[str, Any], path: str) -> EventCondition:
    event_type = _text(raw, "type", path, max_len=60)
    if not _EVENT_TYPE.match(event_type):
        raise DefinitionError(f"{path}.type", "expected a dotted event type such as page.view")
    where_raw = raw.get("where", [])
    if not isinstance(where_raw, list) or len(where_raw) > 20:
        raise DefinitionError(f"{path}.where", "expected a list of at most 20 property filters")
    where = tuple(_property_filter(item, f"{path}.where[{i}]") for i, item in enumerate(where_raw))
    measure = _choice(raw, "measure", path, EVENT_MEASURES, default="count")
    if measure == "count":
        comparison = _comparison(raw, path, AMOUNT_OPS, "number")
        if comparison.value < 0 or not float(comparison.value).is_integer():
            raise DefinitionError(f"{path}.value", "an event count is a whole number ≥ 0")
    else:
        comparison = _comparison(raw, path, MOMENT_OPS, "moment")
    window = parse_window(raw.get("window"), f"{path}.window")
    return EventCondition(path, event_type, where, measure, comparison, window)


def _order(raw: dict[str, Any], path: str) -> OrderCondition:
    measure = _choice(raw, "measure", path, ORDER_MEASURES, default="count")
    if measure in ("first_paid_at", "last_paid_at"):
        comparison = _comparison(raw, path, MOMENT_OPS, "moment")
    else:
        comparison = _comparison(raw, path, AMOUNT_OPS, "number")
        for bound in (comparison.value, comparison.upper):
            if bound is not None and not float(bound).is_integer():
                raise DefinitionError(f"{path}.value", "order counts and amounts in fen are whole numbers")
    platforms = raw.get("platforms")
    if platforms is not None and not platforms:
        raise DefinitionError(f"{path}.platforms", "give at least one platform, or leave platforms out for any")
    return OrderCondition(
        path,
        measure,
        comparison,
        parse_window(raw.get("window"), f"{path}.window"),
        None if platforms is None else _strings(platforms, f"{path}.platforms", max_len=20),
    )


def _purchase(raw: dict[str, Any], path: str) -> PurchaseCondition:
    skus = _strings(raw.get("skus", []), f"{path}.skus", max_len=64)
    categories = _strings(raw.get("categories", []), f"{path}.categories", max_len=100)
    if not skus and not categories:
        raise DefinitionError(f"{path}.skus", "give at least one SKU or category")
    bought = raw.get("bought", True)
    if not isinstance(bought, bool):
        raise DefinitionError(f"{path}.bought", "expected true or false")
    return PurchaseCondition(path, skus, categories, parse_window(raw.get("window"), f"{path}.window"), bought)


def _consent(raw: dict[str, Any], path: str) -> ConsentCondition:
    from siyu.models import ConsentChannel

    channel = _choice(raw, "channel", path, {str(c) for c in ConsentChannel})
    return ConsentCondition(path, channel, _choice(raw, "status", path, CONSENT_STATUSES, default="granted"))


def _segment(raw: dict[str, Any], path: str) -> SegmentCondition:
    member = raw.get("member", True)
    if not isinstance(member, bool):
        raise DefinitionError(f"{path}.member", "expected true or false")
    return SegmentCondition(path, _int(_required(raw, "segment_id", path), f"{path}.segment_id", minimum=1), member)


def _sample(raw: dict[str, Any], path: str) -> SampleCondition:
    percent = _number(_required(raw, "percent", path), f"{path}.percent")
    # 1.1 × 100 is 110.00000000000001 in binary floating point: compare with a tolerance.
    if not 0 < percent <= 100 or abs(percent * 100 - round(percent * 100)) > 1e-6:
        raise DefinitionError(f"{path}.percent", "expected a percentage above 0 and up to 100, two decimals at most")
    seed = raw.get("seed", "")
    if not isinstance(seed, str) or len(seed) > 100:
        raise DefinitionError(f"{path}.seed", "expected a string of at most 100 characters")
    return SampleCondition(path, float(percent), seed)


_CONDITIONS: dict[str, tuple[set[str], Any]] = {
    "field": ({"field", "op", "value"}, _field),
    "identity": ({"type", "present"}, _identity),
    "tag": ({"match", "tag_ids"}, _tag),
    "relationship": ({"staff_ids", "status", "removed_by", "channel_ids", "window"}, _relationship),
    "event": ({"type", "where", "measure", "op", "value", "window"}, _event),
    "order": ({"measure", "op", "value", "window", "platforms"}, _order),
    "purchase": ({"skus", "categories", "window", "bought"}, _purchase),
    "consent": ({"channel", "status"}, _consent),
    "segment": ({"segment_id", "member"}, _segment),
    "sample": ({"percent", "seed"}, _sample),
}
# Loyalty and commerce state (tier, points, coupons, first order / repurchase): parsed in their own
# module, which uses the helpers above (`siyu.segments.__init__` imports this module first).
from siyu.segments import loyalty_conditions as _loyalty  # noqa: E402

_CONDITIONS.update(_loyalty.PARSERS)
# Predicted customer value (super users, CLV): `siyu.segments.analytics_conditions`.
from siyu.segments import analytics_conditions as _analytics  # noqa: E402

_CONDITIONS.update(_analytics.PARSERS)
CONDITION_KINDS = tuple(_CONDITIONS)


def walk(node: Node) -> list[Node]:
    """Every node of the tree, depth first, the root first."""
    out: list[Node] = [node]
    if isinstance(node, Group):
        for child in node.children:
            out.extend(walk(child))
    return out


def referenced_segments(node: Node) -> set[int]:
    """Ids of the segments a definition refers to directly."""
    return {n.segment_id for n in walk(node) if isinstance(n, SegmentCondition)}
