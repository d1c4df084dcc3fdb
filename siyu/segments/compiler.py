"""Compiling a definition to one SQL statement over `customers`.

Every condition becomes a predicate that is never NULL, so `not` is an exact complement:
- profile fields and custom attributes: a test on the customer row, guarded by "is set";
- everything kept in other tables (tags, identities, relationships, consent, events, orders,
  purchases, other segments): `customers.id IN (subquery of customer ids)` or `NOT IN`. The
  subquery reads one index range (e.g. events by workspace, type and time) and, for counts and
  amounts, groups by customer with a HAVING test. Conditions that hold for customers with no rows
  at all (an event "at most 2 times", an order total "< 100 yuan") compile to `NOT IN` the
  customers whose rows fail the test, so customers without rows are counted exactly;
- a referenced dynamic segment is one CTE, however often it is referred to.

Subqueries are uncorrelated: SQLite builds each one once and probes it (or drives the outer loop
from it); PostgreSQL turns those under AND into semi-joins and hashes the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    CTE,
    ColumnElement,
    Select,
    and_,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)

from siyu.models import (
    Consent,
    Customer,
    CustomerEvent,
    CustomerTag,
    Identity,
    Order,
    OrderItem,
    OrderStatus,
    Relationship,
    SegmentMember,
)
from siyu.segments import sqlparts
from siyu.segments.analytics_conditions import AnalyticsConditions
from siyu.segments.compiler_loyalty import LoyaltyConditions
from siyu.segments.definition import (
    Comparison,
    ConsentCondition,
    DefinitionError,
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
    walk,
)
from siyu.segments.fields import PROFILE_FIELDS, FieldSpec, FieldType
from siyu.segments.semantics import (
    SAMPLE_MODULUS,
    anniversary_month_days,
    compare,
    count_shape,
    sample_parameters,
)

SegmentLoader = Callable[[int], tuple[str, Node | None]]
"""Gives a referenced segment's kind ("dynamic" / "static") and, for dynamic ones, its parsed definition."""


@dataclass
class CompileScope:
    """What a compilation depends on besides the definition."""

    workspace_id: int
    now: datetime
    tz: ZoneInfo
    dialect: str
    fields: dict[str, FieldSpec]
    load_segment: SegmentLoader
    only_customer_id: int | None = None
    """Evaluate for one customer: every subquery is narrowed to them (incremental membership)."""


@dataclass
class SegmentCompiler(LoyaltyConditions, AnalyticsConditions):
    scope: CompileScope
    _ctes: dict[int, CTE] = field(default_factory=dict)
    _stack: list[int] = field(default_factory=list)
    _refs: dict[int, int] | None = None
    """How often each dynamic segment is referred to in the whole (expanded) definition."""
    # Where the condition being compiled sits (see `_member_of`).
    _drive: bool = True
    _driver_present: bool = False
    _selective: bool = False

    # --- entry points ---------------------------------------------------------------------------

    def pool(self) -> ColumnElement[bool]:
        """Customers a segment can hold: the workspace's, not merged away."""
        clauses = [Customer.workspace_id == self.scope.workspace_id, Customer.merged_into_id.is_(None)]
        if self.scope.only_customer_id is not None:
            clauses.append(Customer.id == self.scope.only_customer_id)
        return and_(*clauses)

    def members(self, node: Node) -> Select[Any]:
        """`SELECT customers.id` of the segment's members."""
        return select(Customer.id).where(self.pool(), self.predicate(node))

    def predicate(self, node: Node) -> ColumnElement[bool]:
        """The node as a two-valued predicate on `customers` (the first call's node is the root)."""
        if self._refs is None:
            self._refs = {}
            self._count_references(node, set())
        return self._predicate(node, drive=True, driver_present=False)

    # --- placement ------------------------------------------------------------------------------

    def _predicate(self, node: Node, *, drive: bool, driver_present: bool) -> ColumnElement[bool]:
        """`drive`: the node is a conjunct of the top-level AND (no OR or NOT above it), where an
        `IN (list)` may drive the query; `driver_present`: a selective sibling will drive it."""
        if isinstance(node, Group):
            if node.combinator == "all":
                selective = drive and any(self._is_selective(child) for child in node.children)
                parts = [
                    self._predicate(child, drive=drive, driver_present=driver_present or selective)
                    for child in node.children
                ]
                return and_(*parts)
            parts = [self._predicate(child, drive=False, driver_present=False) for child in node.children]
            return not_(parts[0]) if node.combinator == "not" else or_(*parts)
        saved = (self._drive, self._driver_present, self._selective)
        self._drive, self._driver_present, self._selective = drive, driver_present, self._is_selective(node)
        try:
            method = getattr(self, f"_{type(node).__name__}")
            result: ColumnElement[bool] = method(node)
        finally:
            self._drive, self._driver_present, self._selective = saved
        return result

    def _is_selective(self, node: Node) -> bool:
        """Whether a condition reads a narrow index range that can drive the query: tags, events
        and orders within a window, purchases, static lists."""
        if isinstance(node, Group):
            return node.combinator == "all" and any(self._is_selective(c) for c in node.children)
        if isinstance(node, TagCondition):
            return node.match != "none"
        if isinstance(node, EventCondition | OrderCondition):
            counts_zero = node.measure in ("count", "total_fen") and compare(0, node.comparison)
            return node.window is not None and not counts_zero
        if isinstance(node, PurchaseCondition):
            return node.bought
        if isinstance(node, SegmentCondition):
            return node.member and self.scope.load_segment(node.segment_id)[0] == "static"
        return False

    def _count_references(self, node: Node, expanded: set[int]) -> None:
        assert self._refs is not None
        for ref in (n for n in walk(node) if isinstance(n, SegmentCondition)):
            self._refs[ref.segment_id] = self._refs.get(ref.segment_id, 0) + 1
            if ref.segment_id in expanded:
                continue
            expanded.add(ref.segment_id)
            kind, definition = self.scope.load_segment(ref.segment_id)
            if kind == "dynamic" and definition is not None:
                self._count_references(definition, expanded)

    # --- helpers --------------------------------------------------------------------------------

    def _narrow(self, customer_column: Any) -> list[ColumnElement[bool]]:
        if self.scope.only_customer_id is None:
            return []
        return [customer_column == self.scope.only_customer_id]

    def _member_of(self, subquery: Select[Any], positive: bool = True) -> ColumnElement[bool]:
        """Membership in a subquery of customer ids, in the SQL shape its placement calls for.

        A positive, selective condition of the top-level AND (or one with no selective sibling)
        is `customers.id IN (list)`: the list is read once and can drive the query. Everywhere
        else — under OR or NOT, negated, or next to a selective sibling that drives — a correlated
        `EXISTS` tests only the candidates left, each with one index probe by customer.
        """
        if positive and self._drive and (self._selective or not self._driver_present):
            return Customer.id.in_(subquery)
        customer_column = subquery.selected_columns[0]
        correlated = exists(subquery.where(customer_column == Customer.id))
        return correlated if positive else not_(correlated)

    def _window(self, column: Any, window: Window | None) -> list[ColumnElement[bool]]:
        if window is None:
            return []
        if window.last_days is not None:
            return [column >= self.scope.now - timedelta(days=window.last_days), column <= self.scope.now]
        clauses = []
        if window.start is not None:
            clauses.append(column >= sqlparts.local_start(window.start, self.scope.tz))
        if window.end is not None:
            clauses.append(column < sqlparts.local_start(window.end + timedelta(days=1), self.scope.tz))
        return clauses

    def _moment(self, expr: Any, comparison: Comparison) -> ColumnElement[bool]:
        """First / last occurrence tests on a UTC timestamp expression."""
        tz, now = self.scope.tz, self.scope.now
        match comparison.op:
            case "before":
                return expr < sqlparts.local_start(comparison.value, tz)
            case "after":
                return expr >= sqlparts.local_start(comparison.value + timedelta(days=1), tz)
            case "between":
                return and_(
                    expr >= sqlparts.local_start(comparison.value, tz),
                    expr < sqlparts.local_start(comparison.upper + timedelta(days=1), tz),
                )
            case "within_last":
                return and_(expr >= now - timedelta(days=comparison.value), expr <= now)
            case "more_than_ago":
                return expr < now - timedelta(days=comparison.value)
        raise DefinitionError("$", f"unknown moment operator {comparison.op}")

    @staticmethod
    def _number(expr: Any, comparison: Comparison, scale: Any = None) -> ColumnElement[bool]:
        """`expr op value` (values multiplied by `scale` when given, for averages as sums)."""

        def bound(value: Any) -> Any:
            return value if scale is None else scale * value

        match comparison.op:
            case "eq":
                return expr == bound(comparison.value)
            case "ne":
                return expr != bound(comparison.value)
            case "gt":
                return expr > bound(comparison.value)
            case "gte":
                return expr >= bound(comparison.value)
            case "lt":
                return expr < bound(comparison.value)
            case "lte":
                return expr <= bound(comparison.value)
            case "between":
                return and_(expr >= bound(comparison.value), expr <= bound(comparison.upper))
        raise DefinitionError("$", f"unknown operator {comparison.op}")

    def _counted(self, rows: Select[Any], customer_column: Any, comparison: Comparison) -> ColumnElement[bool]:
        """A count of rows per customer compared with a number, customers without rows counting 0."""
        zero, rest = count_shape(comparison)
        if rest == "all":
            return true() if zero else self._member_of(rows)
        if rest == "none":
            return self._member_of(rows, positive=False) if zero else false()
        count = func.count()
        grouped = rows.group_by(customer_column)
        if zero:  # customers without rows match: exclude those whose count fails
            return self._member_of(grouped.having(not_(self._number(count, comparison))), positive=False)
        return self._member_of(grouped.having(self._number(count, comparison)))

    # --- conditions -----------------------------------------------------------------------------

    def _FieldCondition(self, node: FieldCondition) -> ColumnElement[bool]:
        spec = self.scope.fields.get(node.field) or PROFILE_FIELDS.get(node.field)
        if spec is None:
            raise DefinitionError(f"{node.path}.field", f"unknown field {node.field!r}")
        return FieldCompiler(self.scope, spec).predicate(node)

    def _IdentityCondition(self, node: IdentityCondition) -> ColumnElement[bool]:
        rows = select(Identity.customer_id).where(
            Identity.workspace_id == self.scope.workspace_id,
            Identity.type == node.type,
            *self._narrow(Identity.customer_id),
        )
        return self._member_of(rows, node.present)

    def _TagCondition(self, node: TagCondition) -> ColumnElement[bool]:
        def holders(tag_ids: tuple[int, ...]) -> Select[Any]:
            only = CustomerTag.tag_id == tag_ids[0] if len(tag_ids) == 1 else CustomerTag.tag_id.in_(tag_ids)
            return select(CustomerTag.customer_id).where(only, *self._narrow(CustomerTag.customer_id))

        if node.match == "all":
            return and_(*(self._member_of(holders((tag_id,))) for tag_id in node.tag_ids))
        return self._member_of(holders(node.tag_ids), positive=node.match == "any")

    def _RelationshipCondition(self, node: RelationshipCondition) -> ColumnElement[bool]:
        clauses: list[ColumnElement[bool]] = [Relationship.workspace_id == self.scope.workspace_id]
        if node.staff_ids is not None:
            clauses.append(Relationship.staff_id.in_(node.staff_ids))
        if node.channel_ids is not None:
            clauses.append(Relationship.channel_id.in_(node.channel_ids))
        if node.status == "active":
            clauses.append(Relationship.removed_at.is_(None))
        elif node.status == "removed":
            clauses.append(Relationship.removed_at.is_not(None))
        if node.removed_by is not None:
            clauses.append(Relationship.removed_by == node.removed_by)
        moment = Relationship.removed_at if node.status == "removed" else Relationship.added_at
        clauses += self._window(moment, node.window)
        return self._member_of(
            select(Relationship.customer_id).where(*clauses, *self._narrow(Relationship.customer_id))
        )

    def _ConsentCondition(self, node: ConsentCondition) -> ColumnElement[bool]:
        rows = select(Consent.customer_id).where(
            Consent.workspace_id == self.scope.workspace_id,
            Consent.channel == node.channel,
            Consent.status == node.status,
            *self._narrow(Consent.customer_id),
        )
        return self._member_of(rows)

    def _EventCondition(self, node: EventCondition) -> ColumnElement[bool]:
        rows = select(CustomerEvent.customer_id).where(
            CustomerEvent.workspace_id == self.scope.workspace_id,
            CustomerEvent.type == node.type,
            *self._window(CustomerEvent.occurred_at, node.window),
            *(self._property(f) for f in node.where),
            *self._narrow(CustomerEvent.customer_id),
        )
        if node.measure == "count":
            return self._counted(rows, CustomerEvent.customer_id, node.comparison)
        moment = func.min(CustomerEvent.occurred_at) if node.measure == "first" else func.max(CustomerEvent.occurred_at)
        return self._member_of(rows.group_by(CustomerEvent.customer_id).having(self._moment(moment, node.comparison)))

    def _property(self, flt: PropertyFilter) -> ColumnElement[bool]:
        dialect = self.scope.dialect
        doc = CustomerEvent.properties

        def typed(value: Any) -> tuple[str, Any]:
            if isinstance(value, bool):
                return "boolean", sqlparts.json_bool_literal(value, dialect)
            if isinstance(value, int | float):
                return "number", value
            return "string", value

        def equals(value: Any) -> ColumnElement[bool]:
            kind, operand = typed(value)
            extracted = sqlparts.json_value(doc, flt.property, kind, dialect)
            return and_(extracted.is_not(None), extracted == operand)

        match flt.op:
            case "is_set" | "is_not_set":
                kinds = ("string", "number", "boolean")
                present = or_(*(sqlparts.json_value(doc, flt.property, k, dialect).is_not(None) for k in kinds))
                return present if flt.op == "is_set" else not_(present)
            case "eq":
                return equals(flt.value)
            case "ne":
                return not_(equals(flt.value))
            case "in":
                return or_(*(equals(v) for v in flt.value))
            case "not_in":
                return not_(or_(*(equals(v) for v in flt.value)))
            case "contains" | "starts_with":
                text = sqlparts.json_value(doc, flt.property, "string", dialect)
                test = (
                    sqlparts.contains(text, flt.value, dialect)
                    if flt.op == "contains"
                    else sqlparts.starts_with(text, flt.value)
                )
                return and_(text.is_not(None), test)
        kind, operand = typed(flt.value)
        extracted = sqlparts.json_value(doc, flt.property, kind, dialect)
        if kind == "string":
            extracted = sqlparts.byte_order(extracted, dialect)
        return and_(extracted.is_not(None), self._number(extracted, Comparison(flt.op, operand)))

    def _orders(self, window: Window | None, platforms: tuple[str, ...] | None) -> list[ColumnElement[bool]]:
        clauses = [
            Order.workspace_id == self.scope.workspace_id,
            Order.status != OrderStatus.REFUNDED,
            *self._window(Order.paid_at, window),
        ]
        if platforms:
            clauses.append(Order.platform.in_(platforms))
        return clauses

    def _OrderCondition(self, node: OrderCondition) -> ColumnElement[bool]:
        rows = select(Order.customer_id).where(
            *self._orders(node.window, node.platforms), *self._narrow(Order.customer_id)
        )
        grouped = rows.group_by(Order.customer_id)
        comparison = node.comparison
        match node.measure:
            case "count":
                return self._counted(rows, Order.customer_id, comparison)
            case "total_fen":
                total = func.sum(Order.total_fen - Order.refunded_fen)
                if compare(0, comparison):
                    return self._member_of(grouped.having(not_(self._number(total, comparison))), positive=False)
                return self._member_of(grouped.having(self._number(total, comparison)))
            case "average_fen":
                # sum ≷ value × count: exact integers, no division that rounds differently per database
                total = func.sum(Order.total_fen - Order.refunded_fen)
                return self._member_of(grouped.having(self._number(total, comparison, scale=func.count())))
            case "first_paid_at":
                return self._member_of(grouped.having(self._moment(func.min(Order.paid_at), comparison)))
            case _:
                return self._member_of(grouped.having(self._moment(func.max(Order.paid_at), comparison)))

    def _PurchaseCondition(self, node: PurchaseCondition) -> ColumnElement[bool]:
        what = []
        if node.skus:
            what.append(OrderItem.sku.in_(node.skus))
        if node.categories:
            what.append(OrderItem.category.in_(node.categories))
        rows = (
            select(OrderItem.customer_id)
            .join(Order, Order.id == OrderItem.order_id)
            .where(
                OrderItem.workspace_id == self.scope.workspace_id,
                or_(*what),
                *self._orders(node.window, None),
                *self._narrow(OrderItem.customer_id),
            )
        )
        return self._member_of(rows, node.bought)

    def _SegmentCondition(self, node: SegmentCondition) -> ColumnElement[bool]:
        kind, definition = self.scope.load_segment(node.segment_id)
        if kind == "static":
            rows = select(SegmentMember.customer_id).where(
                SegmentMember.segment_id == node.segment_id, *self._narrow(SegmentMember.customer_id)
            )
            return self._member_of(rows, node.member)
        if definition is None:
            raise DefinitionError(f"{node.path}.segment_id", f"segment {node.segment_id} has no definition")
        if node.segment_id in self._stack:
            raise DefinitionError(f"{node.path}.segment_id", "segments refer to each other in a cycle")
        if (self._refs or {}).get(node.segment_id, 0) <= 1:
            # Referred to once: its predicate goes in place (the outer customer is already in the
            # pool), so the planner sees one query instead of a list of the whole segment.
            self._stack.append(node.segment_id)
            try:
                drive = self._drive and node.member
                inner = self._predicate(definition, drive=drive, driver_present=self._driver_present and drive)
            finally:
                self._stack.pop()
            return inner if node.member else not_(inner)
        cte = self._ctes.get(node.segment_id)
        if cte is None:
            self._stack.append(node.segment_id)
            try:
                body = self._predicate(definition, drive=True, driver_present=False)
                statement = select(Customer.id.label("customer_id")).where(self.pool(), body)
            finally:
                self._stack.pop()
            cte = statement.cte(f"segment_{node.segment_id}")
            self._ctes[node.segment_id] = cte
        # A CTE has no index: test membership by hashing its list, never by probing it per row.
        listed = select(cte.c.customer_id)
        return Customer.id.in_(listed) if node.member else Customer.id.not_in(listed)

    def _SampleCondition(self, node: SampleCondition) -> ColumnElement[bool]:
        multiplier, offset = sample_parameters(node.seed)
        bucket = ((Customer.id % SAMPLE_MODULUS) * multiplier + offset) % SAMPLE_MODULUS
        return bucket * 10_000 < round(node.percent * 100) * SAMPLE_MODULUS


@dataclass
class FieldCompiler:
    """A condition on one profile field or custom attribute."""

    scope: CompileScope
    spec: FieldSpec

    def value(self) -> Any:
        """The field's value as SQL, NULL when unset (or, for attributes, stored with another type)."""
        attribute = self.spec.attribute
        if attribute is None:
            return getattr(Customer, self.spec.key)
        kind = {
            FieldType.INTEGER: "number",
            FieldType.NUMBER: "number",
            FieldType.BOOLEAN: "boolean",
        }.get(self.spec.type, "string")
        return sqlparts.json_value(Customer.attributes, attribute, kind, self.scope.dialect)

    def is_set(self, value: Any) -> ColumnElement[bool]:
        if self.spec.type in (FieldType.STRING, FieldType.ENUM) or (
            self.spec.type is FieldType.DATE and self.spec.attribute is not None
        ):
            return and_(value.is_not(None), value != "")
        return value.is_not(None)

    def operand(self, raw: Any) -> Any:
        """A checked value as the SQL side stores it (date attributes are ISO strings)."""
        if self.spec.type is FieldType.DATE and self.spec.attribute is not None:
            return raw.isoformat()
        if self.spec.type is FieldType.BOOLEAN and self.spec.attribute is not None:
            return sqlparts.json_bool_literal(raw, self.scope.dialect)
        if self.spec.type in (FieldType.NUMBER, FieldType.INTEGER):
            # Floats throughout, like the attribute read as SQL: an IN list takes the type of its
            # first value, and an integer first value makes PostgreSQL read 1.5 as 2 and refuse
            # 2⁴⁰ as out of range for int4. Values are within ±2⁵³, so floats are exact.
            return float(raw)
        return raw

    def predicate(self, node: FieldCondition) -> ColumnElement[bool]:
        value = self.value()
        is_set = self.is_set(value)
        if node.op == "is_set":
            return is_set
        if node.op == "is_not_set":
            return not_(is_set)
        negative = {"ne": "eq", "not_in": "in"}
        if node.op in negative:
            return not_(self._positive(value, negative[node.op], node))
        return self._positive(value, node.op, node)

    def _positive(self, value: Any, op: str, node: FieldCondition) -> ColumnElement[bool]:
        return and_(self.is_set(value), self._test(value, op, node))

    def _test(self, value: Any, op: str, node: FieldCondition) -> ColumnElement[bool]:
        dialect, tz, now = self.scope.dialect, self.scope.tz, self.scope.now
        if self.spec.type is FieldType.DATETIME:
            return self._datetime_test(value, op, node)
        textual = self.spec.type is FieldType.STRING or (
            self.spec.type is FieldType.DATE and self.spec.attribute is not None
        )
        ordered = sqlparts.byte_order(value, dialect) if textual else value
        if op in ("within_last", "more_than_ago", "anniversary_within_next"):
            today = sqlparts.local_today(now, tz)
            if op == "anniversary_within_next":
                days = anniversary_month_days(today, node.value)
                if days is None:
                    return true()
                column = self.spec.attribute is None
                return sqlparts.month_day(value, is_date_column=column, dialect=dialect).in_(sorted(days))
            edge = self.operand(today - timedelta(days=node.value))
            if op == "within_last":
                return and_(ordered >= edge, ordered <= self.operand(today))
            return ordered < edge
        if op == "in":
            return value.in_([self.operand(v) for v in node.value])
        if op == "contains":
            return sqlparts.contains(value, node.value, dialect)
        if op == "starts_with":
            return sqlparts.starts_with(value, node.value)
        if op == "between":
            return and_(ordered >= self.operand(node.value), ordered <= self.operand(node.upper))
        return SegmentCompiler._number(ordered if op != "eq" else value, Comparison(op, self.operand(node.value)))

    def _datetime_test(self, value: Any, op: str, node: FieldCondition) -> ColumnElement[bool]:
        """Datetime fields compare by brand-local day: `created_at eq 2026-11-01` is that whole day."""
        tz, now = self.scope.tz, self.scope.now
        if op == "within_last":
            return and_(value >= now - timedelta(days=node.value), value <= now)
        if op == "more_than_ago":
            return value < now - timedelta(days=node.value)

        def start(day: Any) -> datetime:
            return sqlparts.local_start(day, tz)

        one = timedelta(days=1)
        match op:
            case "eq":
                return and_(value >= start(node.value), value < start(node.value + one))
            case "gt":
                return value >= start(node.value + one)
            case "gte":
                return value >= start(node.value)
            case "lt":
                return value < start(node.value)
            case "lte":
                return value < start(node.value + one)
            case "between":
                return and_(value >= start(node.value), value < start(node.upper + one))
        raise DefinitionError(f"{node.path}.op", f"{op} does not apply to a datetime field")
