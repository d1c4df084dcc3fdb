"""One query per step: who did it and when (UTC seconds, row id), with the channel, staff and variant
it carried. Later steps and exclusions are restricted in SQL to the entrants (a subquery on the first
step), event property filters run in SQL where the key allows, and rows are streamed."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, null, select
from sqlalchemy.orm import Session

from siyu.analytics.funnels.engine import Occurrence
from siyu.analytics.funnels.schemas import StepKind, StepSpec
from siyu.analytics.scope import merged_ids
from siyu.models import CustomerEvent, GroupMember, LiveCodeScan, Order, OrderStatus, Relationship
from siyu.segments.sqlparts import _JSON_KEY, json_bool_literal, json_value

Attrs = tuple[int | None, int | None, str | None, int | None]
"""(channel_id, staff_id, variant, live_code_id) of an occurrence; None where the step's table has no
such column. A variant key means something only with its live code (every experiment has an "A")."""

STREAM_ROWS = 50_000


@dataclass
class Occurrences:
    """Sorted (UTC seconds, row id) per customer, and the attributes of each customer's first occurrence."""

    times: dict[int, list[Occurrence]] = field(default_factory=dict)
    first_attrs: dict[int, Attrs] = field(default_factory=dict)


def _table(spec: StepSpec) -> tuple[Any, Any, Any, list[ColumnElement[bool]]]:
    """(customer column, time column, id column, conditions other than the time range) of a step."""
    if spec.kind == StepKind.SCAN:
        return (
            LiveCodeScan.customer_id,
            LiveCodeScan.scanned_at,
            LiveCodeScan.id,
            [LiveCodeScan.customer_id.is_not(None)],
        )
    if spec.kind == StepKind.ADDED:
        return Relationship.customer_id, Relationship.added_at, Relationship.id, []
    if spec.kind == StepKind.EVENT:
        return (
            CustomerEvent.customer_id,
            CustomerEvent.occurred_at,
            CustomerEvent.id,
            [CustomerEvent.type == spec.event_type],
        )
    if spec.kind == StepKind.ORDER:
        conds: list[ColumnElement[bool]] = [Order.status != OrderStatus.REFUNDED]
        if spec.nth is not None:
            conds.append(Order.pool_sequence == spec.nth)
        return Order.customer_id, Order.paid_at, Order.id, conds
    return GroupMember.customer_id, GroupMember.joined_at, GroupMember.id, [GroupMember.customer_id.is_not(None)]


def _workspace_column(spec: StepSpec) -> Any:
    model: dict[StepKind, Any] = {
        StepKind.SCAN: LiveCodeScan,
        StepKind.ADDED: Relationship,
        StepKind.EVENT: CustomerEvent,
        StepKind.ORDER: Order,
        StepKind.JOINED_GROUP: GroupMember,
    }
    return model[spec.kind].workspace_id


def _sql_properties(spec: StepSpec, dialect: str) -> tuple[list[ColumnElement[bool]], tuple[tuple[str, Any], ...]]:
    """Property filters as SQL conditions (keys the JSON path allows), and the ones left for Python."""
    conds: list[ColumnElement[bool]] = []
    rest: list[tuple[str, Any]] = []
    doc = CustomerEvent.properties
    for key, value in spec.properties:
        if not _JSON_KEY.match(key) or (isinstance(value, int | float) and abs(value) >= 1e300):
            rest.append((key, value))
        elif isinstance(value, bool):
            conds.append(json_value(doc, key, "boolean", dialect) == json_bool_literal(value, dialect))
        elif isinstance(value, int | float):
            conds.append(json_value(doc, key, "number", dialect) == float(value))
        else:
            conds.append(json_value(doc, key, "string", dialect) == value)
    return conds, tuple(rest)


def entrants(spec: StepSpec, workspace_id: int, lo: datetime, hi: datetime) -> Select[Any]:
    """The ids of the customers who did the first step in `[lo, hi)` (not merged away), as a subquery."""
    customer, at, _id, conds = _table(spec)
    query = select(customer).where(_workspace_column(spec) == workspace_id, at >= lo, at < hi, *conds)
    # event property filters are left out: a superset of the entrants only widens the later fetches
    return query.where(customer.not_in(merged_ids(workspace_id)))


def _same(a: Any, b: Any) -> bool:
    """JSON equality: numbers as numbers (100 == 100.0), booleans only equal booleans, text only text."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isfinite(a) and a == b
    return type(a) is type(b) and a == b


def _matches(properties: Any, wanted: tuple[tuple[str, Any], ...]) -> bool:
    if not isinstance(properties, dict):
        return False
    return all(k in properties and _same(properties[k], v) for k, v in wanted)


def occurrences(
    session: Session,
    spec: StepSpec,
    *,
    workspace_id: int,
    lo: datetime,
    hi: datetime,
    among: Select[Any] | None = None,
) -> Occurrences:
    """Every time a customer (never a merged-away one; only those `among` the subquery when given) did
    `spec` in `[lo, hi)`, sorted by time then row id (ties at one instant resolve by id)."""
    dialect = session.get_bind().dialect.name
    customer, at, row_id, conds = _table(spec)
    is_event = spec.kind == StepKind.EVENT
    rest: tuple[tuple[str, Any], ...] = ()
    if is_event and spec.properties:
        prop_conds, rest = _sql_properties(spec, dialect)
        conds = conds + prop_conds
    extra: list[Any]
    if is_event:
        extra = [CustomerEvent.properties if rest else null()]
    elif spec.kind == StepKind.ORDER:
        extra = [null(), Order.staff_id, null(), null()]
    elif spec.kind == StepKind.SCAN:
        extra = [LiveCodeScan.channel_id, LiveCodeScan.staff_id, LiveCodeScan.variant, LiveCodeScan.live_code_id]
    elif spec.kind == StepKind.ADDED:
        extra = [Relationship.channel_id, Relationship.staff_id, Relationship.variant, Relationship.live_code_id]
    else:
        extra = []
    query = (
        select(customer, at, row_id, *extra)
        .where(_workspace_column(spec) == workspace_id, at >= lo, at < hi, *conds)
        .where(customer.in_(among) if among is not None else customer.not_in(merged_ids(workspace_id)))
        .order_by(at, row_id)
    )
    times: dict[int, list[Occurrence]] = defaultdict(list)
    attrs: dict[int, Attrs] = {}
    with_attrs = len(extra) == 4
    for row in session.execute(query, execution_options={"yield_per": STREAM_ROWS}):
        customer_id = row[0]
        if rest and not _matches(row[3], rest):
            continue
        times[customer_id].append((row[1].timestamp(), row[2]))
        if with_attrs and customer_id not in attrs:
            attrs[customer_id] = (row[3], row[4], row[5], row[6])
    return Occurrences(dict(times), attrs)
