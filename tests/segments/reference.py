"""A second, deliberately naive implementation of the segment language, written from
docs/segments.md and not from the compiler: plain Python over plain rows, one customer at a time.

The property tests compare it with the SQL the compiler produces. It shares only the parser
(`siyu.segments.definition`) and the sampling hash (`in_sample`), which the docs define by formula.
Everything else — what "set" means, how negatives treat unset fields, brand-local days, windows,
counts with zero, amounts, anniversaries — is written again here, as the docs state it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from siyu.segments.definition import (
    Comparison,
    ConsentCondition,
    EventCondition,
    FieldCondition,
    Group,
    IdentityCondition,
    Node,
    OrderCondition,
    PropertyFilter,
    PurchaseCondition,
    RelationshipCondition,
    SampleCondition,
    SegmentCondition,
    TagCondition,
    Window,
    parse_definition,
)
from siyu.segments.loyalty_conditions import (
    CouponCondition,
    MemberFlagCondition,
    PointsBalanceCondition,
    PointsExpiringCondition,
    TierCondition,
)
from siyu.segments.semantics import in_sample

LOYALTY = (TierCondition, PointsBalanceCondition, PointsExpiringCondition, CouponCondition, MemberFlagCondition)

# The profile fields and their types, as docs/segments.md lists them.
PROFILE_TYPES = {
    "name": "string",
    "gender": "enum",
    "birthday": "date",
    "province": "string",
    "city": "string",
    "phone": "string",
    "email": "string",
    "lifecycle_stage": "enum",
    "owner_staff_id": "staff",
    "first_channel": "string",
    "created_at": "datetime",
}


# --- plain rows ----------------------------------------------------------------------------------


@dataclass
class Person:
    """A customer row."""

    id: int
    workspace_id: int
    created_at: datetime
    name: str | None = None
    gender: str | None = None
    birthday: date | None = None
    province: str | None = None
    city: str | None = None
    phone: str | None = None
    email: str | None = None
    lifecycle_stage: str = "new"
    owner_staff_id: int | None = None
    first_channel: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    merged_into_id: int | None = None
    erased_at: datetime | None = None
    """Erased customers stay in the pool (they match on what is left of them)."""


@dataclass(frozen=True)
class Edge:
    """A friend edge between a staff member and a customer."""

    customer_id: int
    staff_id: int
    added_at: datetime
    channel_id: int | None = None
    removed_at: datetime | None = None
    removed_by: str | None = None


@dataclass(frozen=True)
class Happening:
    """A behaviour event."""

    customer_id: int
    type: str
    occurred_at: datetime
    properties: dict[str, Any]


@dataclass(frozen=True)
class Sale:
    """An order."""

    id: int
    customer_id: int
    platform: str
    status: str
    total_fen: int
    refunded_fen: int
    paid_at: datetime


@dataclass(frozen=True)
class Line:
    """An order item."""

    order_id: int
    sku: str
    category: str | None


@dataclass(frozen=True)
class Membership:
    """A loyalty member row (customers without one are no members)."""

    customer_id: int
    tier_id: int | None
    points_balance: int
    has_first_order: bool
    is_repurchaser: bool


@dataclass(frozen=True)
class Lot:
    """Points earned together: what is left of them and when they expire (None: never)."""

    customer_id: int
    remaining: int
    expires_at: datetime | None


@dataclass(frozen=True)
class Voucher:
    """An issued coupon."""

    customer_id: int
    template_id: int
    state: str
    expires_at: datetime | None


@dataclass
class SavedSegment:
    """A segment another definition may refer to: dynamic (a raw definition) or static (members)."""

    id: int
    kind: str
    definition: dict[str, Any] | None = None
    members: set[int] = field(default_factory=set)


@dataclass
class World:
    """Everything a definition can look at, for any number of workspaces."""

    customers: list[Person] = field(default_factory=list)
    tags: set[tuple[int, int]] = field(default_factory=set)
    """(customer id, tag id)."""
    identities: set[tuple[int, str]] = field(default_factory=set)
    """(customer id, identity type)."""
    relationships: list[Edge] = field(default_factory=list)
    consents: dict[tuple[int, str], str] = field(default_factory=dict)
    """(customer id, channel) → current status."""
    events: list[Happening] = field(default_factory=list)
    orders: list[Sale] = field(default_factory=list)
    items: list[Line] = field(default_factory=list)
    segments: dict[int, SavedSegment] = field(default_factory=dict)
    attribute_types: dict[str, str] = field(default_factory=dict)
    """Custom attribute key → its defined type (of the workspace evaluated)."""
    members: dict[int, Membership] = field(default_factory=dict)
    lots: list[Lot] = field(default_factory=list)
    coupons: list[Voucher] = field(default_factory=list)
    tier_names: dict[int, tuple[int, str]] = field(default_factory=dict)
    """Tier id → (workspace id, name)."""


# --- evaluation ----------------------------------------------------------------------------------


def evaluate(node: Node, world: World, *, workspace_id: int, now: datetime, tz: ZoneInfo) -> set[int]:
    """Ids of the customers of `workspace_id` the definition selects."""
    return Reference(world, workspace_id, now, tz).members(node)


def node_matches(node: Node, world: World, *, workspace_id: int, now: datetime, tz: ZoneInfo) -> dict[int, bool]:
    """Whether each customer of the pool matches `node` on its own."""
    ref = Reference(world, workspace_id, now, tz)
    return {person.id: ref.holds(node, person) for person in ref.pool}


class Reference:
    """One evaluation: the pool of a workspace at `now`, in the brand's time zone `tz`."""

    def __init__(self, world: World, workspace_id: int, now: datetime, tz: ZoneInfo) -> None:
        self.world, self.now, self.tz = world, now, tz
        self.today = now.astimezone(tz).date()
        self.pool = [p for p in world.customers if p.workspace_id == workspace_id and p.merged_into_id is None]
        self.tags: dict[int, set[int]] = defaultdict(set)
        for customer_id, tag_id in world.tags:
            self.tags[customer_id].add(tag_id)
        self.identities: dict[int, set[str]] = defaultdict(set)
        for customer_id, kind in world.identities:
            self.identities[customer_id].add(kind)
        self.edges: dict[int, list[Edge]] = defaultdict(list)
        for edge in world.relationships:
            self.edges[edge.customer_id].append(edge)
        self.events: dict[int, list[Happening]] = defaultdict(list)
        for event in world.events:
            self.events[event.customer_id].append(event)
        self.orders: dict[int, list[Sale]] = defaultdict(list)
        for order in world.orders:
            self.orders[order.customer_id].append(order)
        self.lines: dict[int, list[Line]] = defaultdict(list)
        for line in world.items:
            self.lines[line.order_id].append(line)
        self._segments: dict[int, set[int]] = {}

    def members(self, node: Node) -> set[int]:
        return {person.id for person in self.pool if self.holds(node, person)}

    def holds(self, node: Node, person: Person) -> bool:
        if isinstance(node, Group):
            results = [self.holds(child, person) for child in node.children]
            if node.combinator == "not":
                return not results[0]
            return all(results) if node.combinator == "all" else any(results)
        if isinstance(node, FieldCondition):
            return self.field(node, person)
        if isinstance(node, IdentityCondition):
            return (node.type in self.identities[person.id]) == node.present
        if isinstance(node, TagCondition):
            carried = self.tags[person.id]
            wanted = set(node.tag_ids)
            if node.match == "any":
                return bool(carried & wanted)
            if node.match == "all":
                return wanted <= carried
            return not carried & wanted
        if isinstance(node, RelationshipCondition):
            return any(self.edge_fits(node, edge) for edge in self.edges[person.id])
        if isinstance(node, ConsentCondition):
            return self.world.consents.get((person.id, node.channel)) == node.status
        if isinstance(node, EventCondition):
            return self.event(node, person)
        if isinstance(node, OrderCondition):
            return self.order(node, person)
        if isinstance(node, PurchaseCondition):
            return self.bought(node, person) == node.bought
        if isinstance(node, SegmentCondition):
            return (person.id in self.segment(node.segment_id)) == node.member
        if isinstance(node, LOYALTY):
            return self.loyalty(node, person)
        if isinstance(node, SampleCondition):
            return in_sample(person.id, node.percent, node.seed)
        raise AssertionError(f"unknown node {node!r}")

    # --- time ------------------------------------------------------------------------------------

    def loyalty(self, node: Any, person: Person) -> bool:
        """As docs/order-import.md states: non-members have 0 points, no tier, no flags."""
        member = self.world.members.get(person.id)
        if isinstance(node, TierCondition):
            names = {
                tier_id
                for tier_id, (ws, name) in self.world.tier_names.items()
                if ws == person.workspace_id and name in node.tier_names
            }
            wanted = set(node.tier_ids) | names
            inside = member is not None and member.tier_id is not None and member.tier_id in wanted
            return inside == node.member
        if isinstance(node, PointsBalanceCondition):
            return compare_number(member.points_balance if member else 0, node.comparison)
        if isinstance(node, PointsExpiringCondition):
            end = self.now + timedelta(days=node.within_days)
            expiring = sum(
                lot.remaining
                for lot in self.world.lots
                if member is not None
                and lot.customer_id == person.id
                and lot.remaining > 0
                and lot.expires_at is not None
                and self.now < lot.expires_at <= end
            )
            return compare_number(expiring, node.comparison)
        if isinstance(node, CouponCondition):
            held = any(
                voucher.customer_id == person.id
                and (node.template_ids is None or voucher.template_id in node.template_ids)
                and (
                    node.state == "any"
                    or (node.state == "redeemed" and voucher.state == "redeemed")
                    or (
                        node.state == "unused"
                        and voucher.state == "issued"
                        and (voucher.expires_at is None or voucher.expires_at > self.now)
                    )
                )
                for voucher in self.world.coupons
            )
            return held == node.has
        assert isinstance(node, MemberFlagCondition)
        flag = member is not None and (member.has_first_order if node.flag == "first_order" else member.is_repurchaser)
        return flag == node.value

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def in_window(self, moment: datetime, window: Window | None) -> bool:
        if window is None:
            return True
        if window.last_days is not None:
            return self.now - timedelta(days=window.last_days) <= moment <= self.now
        day = self.local_day(moment)
        return (window.start is None or day >= window.start) and (window.end is None or day <= window.end)

    def moment_fits(self, moment: datetime, comparison: Comparison) -> bool:
        """The first/last-occurrence operators (events and order dates)."""
        day, operand = self.local_day(moment), comparison.value
        match comparison.op:
            case "before":
                return day < as_date(operand)
            case "after":
                return day > as_date(operand)
            case "between":
                return as_date(operand) <= day <= as_date(comparison.upper)
            case "within_last":
                return self.now - timedelta(days=operand) <= moment <= self.now
            case "more_than_ago":
                return moment < self.now - timedelta(days=operand)
        raise AssertionError(comparison.op)

    # --- fields ----------------------------------------------------------------------------------

    def field_type(self, name: str) -> str:
        if name.startswith("attributes."):
            return self.world.attribute_types[name.removeprefix("attributes.")]
        return PROFILE_TYPES[name]

    def field_value(self, name: str, kind: str, person: Person) -> Any:
        """The field's value, or None when it is unset (empty, missing or stored with another JSON type)."""
        if not name.startswith("attributes."):
            value = getattr(person, name)
            return None if value is None or (kind in ("string", "enum") and value == "") else value
        raw = person.attributes.get(name.removeprefix("attributes."))
        if kind == "string":
            return raw if isinstance(raw, str) and raw != "" else None
        if kind in ("integer", "number"):
            return raw if isinstance(raw, int | float) and not isinstance(raw, bool) else None
        if kind == "boolean":
            return raw if isinstance(raw, bool) else None
        if kind == "date":
            return date.fromisoformat(raw) if isinstance(raw, str) and raw != "" else None
        raise AssertionError(kind)

    def field(self, node: FieldCondition, person: Person) -> bool:
        kind = self.field_type(node.field)
        value = self.field_value(node.field, kind, person)
        match node.op:
            case "is_set":
                return value is not None
            case "is_not_set":
                return value is None
            case "ne":
                return not self.positive("eq", node, kind, value)
            case "not_in":
                return not self.positive("in", node, kind, value)
        return self.positive(node.op, node, kind, value)

    def positive(self, op: str, node: FieldCondition, kind: str, value: Any) -> bool:
        if value is None:
            return False
        operand, upper = node.value, node.upper
        if kind == "datetime":
            if op == "within_last":
                return self.now - timedelta(days=operand) <= value <= self.now
            if op == "more_than_ago":
                return bool(value < self.now - timedelta(days=operand))
            value = self.local_day(value)  # everything else compares brand-local days
        if kind in ("date", "datetime"):
            if op == "within_last":
                return self.today - timedelta(days=operand) <= value <= self.today
            if op == "more_than_ago":
                return bool(value < self.today - timedelta(days=operand))
            if op == "anniversary_within_next":
                return anniversary_within(value, self.today, operand)
            operand = as_date(operand) if operand is not None else None
            upper = as_date(upper) if upper is not None else None
        match op:
            case "eq":
                return bool(value == operand)
            case "in":
                return any(value == (as_date(v) if kind in ("date", "datetime") else v) for v in operand)
            case "contains":
                return operand in value
            case "starts_with":
                return bool(value.startswith(operand))
            case "gt":
                return bool(value > operand)
            case "gte":
                return bool(value >= operand)
            case "lt":
                return bool(value < operand)
            case "lte":
                return bool(value <= operand)
            case "between":
                return bool(operand <= value <= upper)
        raise AssertionError(op)

    # --- relationships ---------------------------------------------------------------------------

    def edge_fits(self, node: RelationshipCondition, edge: Edge) -> bool:
        if node.staff_ids is not None and edge.staff_id not in node.staff_ids:
            return False
        if node.channel_ids is not None and edge.channel_id not in node.channel_ids:
            return False
        if node.status == "active" and edge.removed_at is not None:
            return False
        if node.status == "removed" and edge.removed_at is None:
            return False
        if node.removed_by is not None and edge.removed_by != node.removed_by:
            return False
        if node.window is None:
            return True
        moment = edge.removed_at if node.status == "removed" else edge.added_at
        return moment is not None and self.in_window(moment, node.window)

    # --- events ----------------------------------------------------------------------------------

    def event(self, node: EventCondition, person: Person) -> bool:
        moments = [
            e.occurred_at
            for e in self.events[person.id]
            if e.type == node.type
            and self.in_window(e.occurred_at, node.window)
            and all(property_passes(f, e.properties) for f in node.where)
        ]
        if node.measure == "count":
            return compare_number(len(moments), node.comparison)
        if not moments:
            return False
        return self.moment_fits(min(moments) if node.measure == "first" else max(moments), node.comparison)

    # --- orders ----------------------------------------------------------------------------------

    def counted_orders(self, person: Person, window: Window | None, platforms: Iterable[str] | None) -> list[Sale]:
        """Orders that count: not fully refunded, paid within the window, on one of the platforms."""
        wanted = None if platforms is None else set(platforms)
        return [
            o
            for o in self.orders[person.id]
            if o.status != "refunded" and self.in_window(o.paid_at, window) and (not wanted or o.platform in wanted)
        ]

    def order(self, node: OrderCondition, person: Person) -> bool:
        orders = self.counted_orders(person, node.window, node.platforms)
        total = sum(o.total_fen - o.refunded_fen for o in orders)
        comparison = node.comparison
        match node.measure:
            case "count":
                return compare_number(len(orders), comparison)
            case "total_fen":
                return compare_number(total, comparison)
            case "average_fen":
                if not orders:
                    return False
                # exactly: total ≷ value × count, never a rounded division
                scaled = Comparison(
                    comparison.op,
                    comparison.value * len(orders),
                    None if comparison.upper is None else comparison.upper * len(orders),
                )
                return compare_number(total, scaled)
            case "first_paid_at" | "last_paid_at":
                if not orders:
                    return False
                moments = [o.paid_at for o in orders]
                chosen = min(moments) if node.measure == "first_paid_at" else max(moments)
                return self.moment_fits(chosen, comparison)
        raise AssertionError(node.measure)

    def bought(self, node: PurchaseCondition, person: Person) -> bool:
        for order in self.counted_orders(person, node.window, None):
            for line in self.lines[order.id]:
                if line.sku in node.skus or (line.category is not None and line.category in node.categories):
                    return True
        return False

    # --- other segments --------------------------------------------------------------------------

    def segment(self, segment_id: int) -> set[int]:
        if segment_id not in self._segments:
            saved = self.world.segments[segment_id]
            if saved.kind == "static":
                self._segments[segment_id] = set(saved.members)
            else:
                assert saved.definition is not None
                self._segments[segment_id] = self.members(parse_definition(saved.definition))
        return self._segments[segment_id]


# --- small pure rules ------------------------------------------------------------------------------


def as_date(value: Any) -> date:
    """A date operand: parsed trees from `parse_definition` (stored definitions) keep ISO strings."""
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


def compare_number(value: float, comparison: Comparison) -> bool:
    """Counts and amounts; the count aliases map to their comparison."""
    op = {"at_least": "gte", "at_most": "lte", "exactly": "eq"}.get(comparison.op, comparison.op)
    operand = comparison.value
    match op:
        case "eq":
            return bool(value == operand)
        case "ne":
            return bool(value != operand)
        case "gt":
            return bool(value > operand)
        case "gte":
            return bool(value >= operand)
        case "lt":
            return bool(value < operand)
        case "lte":
            return bool(value <= operand)
        case "between":
            return bool(operand <= value <= comparison.upper)
    raise AssertionError(op)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def anniversary_within(day: date, today: date, days: int) -> bool:
    """The month and day of `day` fall within today … today + days; 29 February is kept on
    28 February in years without one; 365 days or more cover every date."""
    if days >= 365:
        return True
    for offset in range(days + 1):
        candidate = today + timedelta(days=offset)
        if (candidate.month, candidate.day) == (day.month, day.day):
            return True
        leap_day_moved = (day.month, day.day) == (2, 29) and not _is_leap(candidate.year)
        if leap_day_moved and (candidate.month, candidate.day) == (2, 28):
            return True
    return False


def _json_kind(value: Any) -> str | None:
    """The JSON type of a property: "string", "number", "boolean" or None (unset: null, arrays, objects)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _property_equals(stored: Any, operand: Any) -> bool:
    kind = _json_kind(stored)
    return kind is not None and kind == _json_kind(operand) and stored == operand


def property_passes(flt: PropertyFilter, properties: dict[str, Any]) -> bool:
    """One `where` filter on an event's properties: the operand's type decides how the property is read."""
    stored: Any = properties.get(flt.property)
    kind = _json_kind(stored)
    match flt.op:
        case "is_set":
            return kind is not None
        case "is_not_set":
            return kind is None
        case "eq":
            return _property_equals(stored, flt.value)
        case "ne":
            return not _property_equals(stored, flt.value)
        case "in":
            return any(_property_equals(stored, v) for v in flt.value)
        case "not_in":
            return not any(_property_equals(stored, v) for v in flt.value)
        case "contains":
            return kind == "string" and flt.value in stored
        case "starts_with":
            return kind == "string" and stored.startswith(flt.value)
    if kind is None or kind != _json_kind(flt.value):
        return False
    return compare_number(stored, Comparison(flt.op, flt.value))
