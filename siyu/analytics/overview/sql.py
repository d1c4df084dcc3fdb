"""The SQL pieces the overview and its drill-downs share (so a drill recomputes exactly the figure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import Subquery

from siyu.analytics import scope as shared
from siyu.analytics.overview.scope import Scope
from siyu.models import (
    Consent,
    ConsentChannel,
    ConsentStatus,
    CustomerEvent,
    GroupMember,
    Order,
    Relationship,
)
from siyu.models.base import UTCDateTime

KIND_WECOM, KIND_GROUP, KIND_OFFICIAL_ACCOUNT, KIND_SMS = 1, 2, 3, 4


def at(value: datetime) -> ColumnElement[Any]:
    """A UTC instant as a bound parameter typed like the timestamp columns."""
    return literal(value, UTCDateTime())


def pool_intervals(scope: Scope) -> Subquery:
    """(cid, kind, start, stop) for every way a customer in scope can be reached.

    WeCom friend edges (added → removed), group stays (joined → left), and granted official-account
    and SMS consents (changed_at → open ended: only the current consent is stored, so a consent later
    withdrawn is not counted at any past day either).
    """
    ws = scope.workspace_id
    no_stop = cast(null(), UTCDateTime())

    def consent(channel: ConsentChannel, kind: int) -> Select[Any]:
        statement: Any = select(Consent.customer_id, literal_column(str(kind)), Consent.changed_at, no_stop).where(
            Consent.workspace_id == ws,
            Consent.channel == channel,
            Consent.status == ConsentStatus.GRANTED,
            Consent.customer_id.in_(scope.customers),
        )
        return statement

    edges: Any = select(
        Relationship.customer_id.label("cid"),
        literal_column(str(KIND_WECOM)).label("kind"),
        Relationship.added_at.label("start"),
        Relationship.removed_at.label("stop"),
    ).where(Relationship.workspace_id == ws, Relationship.customer_id.in_(scope.customers))
    stays: Any = select(
        GroupMember.customer_id, literal_column(str(KIND_GROUP)), GroupMember.joined_at, GroupMember.left_at
    ).where(
        GroupMember.workspace_id == ws,
        GroupMember.customer_id.is_not(None),
        GroupMember.customer_id.in_(scope.customers),
    )
    return union_all(
        edges,
        stays,
        consent(ConsentChannel.OFFICIAL_ACCOUNT, KIND_OFFICIAL_ACCOUNT),
        consent(ConsentChannel.SMS, KIND_SMS),
    ).subquery("intervals")


def open_at(start: Any, stop: Any, instant: datetime) -> ColumnElement[bool]:
    """Open just before `instant`: started before it and not stopped before it."""
    return and_(start < at(instant), or_(stop.is_(None), stop >= at(instant)))


def in_range(column: Any, lo: datetime, hi: datetime) -> ColumnElement[bool]:
    return and_(column >= at(lo), column < at(hi))


def counted_orders(scope: Scope) -> list[ColumnElement[bool]]:
    """Private-domain orders of customers in scope (the overview's filters), fully refunded ones left out."""
    return [*shared.counted_orders(scope.workspace_id, pool_only=True), Order.customer_id.in_(scope.customers)]


def activity(session: Session, scope: Scope, lo: datetime, hi: datetime, day: Any) -> Subquery:
    """(cid, day) for every event or order of a customer in scope in [lo, hi); `day(column)` gives local days."""
    ws = scope.workspace_id
    events = select(CustomerEvent.customer_id.label("cid"), day(CustomerEvent.occurred_at).label("day")).where(
        CustomerEvent.workspace_id == ws,
        in_range(CustomerEvent.occurred_at, lo, hi),
        CustomerEvent.customer_id.in_(scope.customers),
    )
    orders = select(Order.customer_id, day(Order.paid_at)).where(
        Order.workspace_id == ws, in_range(Order.paid_at, lo, hi), Order.customer_id.in_(scope.customers)
    )
    return union_all(events, orders).subquery("activity")


def held_by_staff(scope: Scope, *, earlier: datetime, later: datetime) -> Subquery:
    """(cid, prev, cur): per customer with a friend edge (of the filtered staff/channel), 1 when one
    was open just before `earlier` / just before `later`, else 0 — one grouped pass over the edges."""
    parts = [Relationship.workspace_id == scope.workspace_id, Relationship.added_at < at(later)]
    if scope.filters.staff_id is not None:
        parts.append(Relationship.staff_id == scope.filters.staff_id)
    if scope.filters.channel_id is not None:
        parts.append(Relationship.channel_id == scope.filters.channel_id)

    def flag(instant: datetime) -> ColumnElement[Any]:
        return func.max(case((open_at(Relationship.added_at, Relationship.removed_at, instant), 1), else_=0))

    return (
        select(Relationship.customer_id.label("cid"), flag(earlier).label("prev"), flag(later).label("cur"))
        .where(*parts)
        .group_by(Relationship.customer_id)
        .subquery("held")
    )


def first_orders(scope: Scope, prev_lo: datetime, cur_lo: datetime, cur_hi: datetime) -> Subquery:
    """(cid, prev, cur): customers whose first private-domain order (pool_sequence = 1, not refunded)
    was paid in [prev_lo, cur_lo) → prev = 1, or in [cur_lo, cur_hi) → cur = 1."""

    def flag(lo: datetime, hi: datetime) -> ColumnElement[Any]:
        return func.max(case((in_range(Order.paid_at, lo, hi), 1), else_=0))

    return (
        select(Order.customer_id.label("cid"), flag(prev_lo, cur_lo).label("prev"), flag(cur_lo, cur_hi).label("cur"))
        .where(
            *shared.counted_orders(scope.workspace_id, pool_only=True),
            Order.pool_sequence == 1,
            in_range(Order.paid_at, prev_lo, cur_hi),
        )
        .group_by(Order.customer_id)
        .subquery("firsts")
    )
