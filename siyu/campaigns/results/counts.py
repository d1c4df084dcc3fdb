"""Grouped SQL over delivery rows: status counts, clicks, unsubscribes, and goal conversions with GMV.

Both broadcasts and journey steps are "a set of delivery rows" (a `where` clause); everything here
takes that set and answers with a few GROUP BY queries, whatever its size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import ColumnElement, Interval, and_, case, func, literal, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from siyu.kit.errors import InvalidInput
from siyu.models import (
    CustomerEvent,
    Delivery,
    DeliveryStatus,
    Order,
    OrderStatus,
    ShortLinkClick,
)
from siyu.models.base import UTCDateTime

DEFAULT_GOAL: dict[str, Any] = {"type": "order", "days": 7}
"""Measured when a broadcast or journey names no goal: an order within 7 days of the message."""
SENT_STATES = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ)
DELIVERED_STATES = (DeliveryStatus.DELIVERED, DeliveryStatus.READ)


@dataclass
class StatusCounts:
    """Delivery numbers of one group of rows (a broadcast, a variant, a journey step)."""

    planned: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    suppressed_by_reason: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    clicked: int = 0
    unsubscribed: int = 0

    def add_group(self, status: str, reason: str | None, row: Any) -> None:
        """Fold in one GROUP BY row: rows, with sent_at, delivered_at, read_at, clicked, unsubscribed."""
        n = int(row.rows)
        self.planned += n
        self.by_status[status] += n
        if status == DeliveryStatus.SUPPRESSED:
            self.suppressed_by_reason[reason or "unknown"] += n
        # A provider may report "read" without "delivered" and a failure after the send: the
        # status says the furthest a row got, the timestamps say what happened on the way.
        self.sent += n if status in SENT_STATES else int(row.with_sent_at or 0)
        self.delivered += n if status in DELIVERED_STATES else int(row.with_delivered_at or 0)
        self.read += n if status == DeliveryStatus.READ else int(row.with_read_at or 0)
        self.failed += n if status == DeliveryStatus.FAILED else 0
        self.clicked += int(row.clicked or 0)
        self.unsubscribed += int(row.unsubscribed or 0)


def status_groups(session: Session, where: Sequence[ColumnElement[bool]], extra: Sequence[Any] = ()) -> list[Any]:
    """One row per (status, reason, *extra) with the counts `StatusCounts.add_group` folds in."""
    columns = [Delivery.status, Delivery.reason, *extra]
    statement = (
        select(
            *columns,
            func.count().label("rows"),
            func.count(Delivery.sent_at).label("with_sent_at"),
            func.count(Delivery.delivered_at).label("with_delivered_at"),
            func.count(Delivery.read_at).label("with_read_at"),
            # Unsubscribed through this message's own link (the link sets `unsubscribed_at` and
            # withdraws consent); a withdrawal elsewhere is not attributed to the message.
            func.count(Delivery.unsubscribed_at).label("unsubscribed"),
        )
        .where(*where)
        .group_by(*columns)
    )
    groups = {tuple(row[: len(columns)]): row._asdict() | {"clicked": 0} for row in session.execute(statement)}
    # Clicked: rows whose per-recipient link has at least one click. A join of its own (rather
    # than EXISTS per row) lets the database start from the clicks, which are far fewer.
    clicked = (
        select(*columns, func.count(func.distinct(Delivery.id)).label("clicked"))
        .join(ShortLinkClick, ShortLinkClick.link_id == Delivery.short_link_id)
        .where(*where)
        .group_by(*columns)
    )
    for row in session.execute(clicked):
        key = tuple(row[: len(columns)])
        if key in groups:
            groups[key]["clicked"] = int(row.clicked)
    return [SimpleNamespace(**values) for values in groups.values()]


def normalise_goal(goal: dict[str, Any] | None) -> dict[str, Any]:
    """The goal as measured: the default when none is set, `days` filled in."""
    if not goal or not goal.get("type"):
        return dict(DEFAULT_GOAL) | {"is_default": True}
    kind = goal["type"]
    if kind not in ("order", "click", "event"):
        raise InvalidInput(f"unknown goal type {kind!r}", details={"field": "goal.type"})
    if kind == "event" and not goal.get("event_type"):
        raise InvalidInput("an event goal names its event type", details={"field": "goal.event_type"})
    return {"days": int(DEFAULT_GOAL["days"])} | dict(goal) | {"is_default": False}


def plus_days(session: Session, column: Any, days: int) -> ColumnElement[Any]:
    """`column + days` for a UTC timestamp expression, exact to the microsecond on both databases
    (SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff" text: shift the whole seconds, keep the fraction)."""
    if session.get_bind().dialect.name == "postgresql":
        return column + literal(timedelta(days=days), Interval())
    return func.datetime(func.substr(column, 1, 19), f"+{days} days").op("||")(func.substr(column, 20))


@dataclass(frozen=True)
class Outcome:
    """Goal conversions and GMV of one group of rows (an arm, a variant, an arm × variant)."""

    conversions: int = 0
    gmv_fen: int = 0


def conversions(
    session: Session,
    *,
    workspace_id: int,
    where: Sequence[ColumnElement[bool]],
    goal: dict[str, Any],
    fallback_anchor: datetime | ColumnElement[Any] | InstrumentedAttribute[Any],
    group: Sequence[Any],
    since: datetime | None = None,
) -> dict[tuple[Any, ...], Outcome]:
    """Goal conversions and GMV per `group` key over the delivery rows in `where`.

    Each row's window is [anchor, anchor + goal days): the anchor is the row's `sent_at`, or
    `fallback_anchor` for rows never sent (holdout, suppressed, failed) — the moment they would
    have been sent — so both arms of an intention-to-treat comparison are measured alike. A row
    converts when its customer has, within the window: a paid order not refunded in full (goal
    "order"); a click on the row's own short link ("click"); a timeline event of the goal's type
    ("event"). GMV is `total_fen - refunded_fen` of the customer's orders in the window, whatever
    the goal. Conversions count rows (one per customer per broadcast; per enrolment in journeys).
    `since`, when no window can start earlier, lets the database skip the orders before it.
    """
    fallback: Any = (
        literal(fallback_anchor, UTCDateTime()) if isinstance(fallback_anchor, datetime) else fallback_anchor
    )
    keys = [column.label(f"k{n}") for n, column in enumerate(group)]
    rows = (
        select(
            Delivery.id.label("delivery_id"),
            Delivery.customer_id,
            Delivery.short_link_id,
            func.coalesce(Delivery.sent_at, fallback).label("anchor"),
            *keys,
        )
        .where(*where)
        .subquery("audience")
    )
    start = rows.c.anchor
    end = plus_days(session, rows.c.anchor, int(goal["days"]))
    key_columns = [rows.c[f"k{n}"] for n in range(len(group))]
    net = Order.total_fen - Order.refunded_fen
    per_row = (
        select(
            rows.c.delivery_id,
            *key_columns,
            func.sum(net).label("gmv"),
            func.sum(case((Order.status != OrderStatus.REFUNDED, 1), else_=0)).label("orders"),
        )
        .join(
            Order,
            and_(
                Order.customer_id == rows.c.customer_id,
                Order.workspace_id == workspace_id,
                Order.paid_at >= start,
                Order.paid_at < end,
                *([Order.paid_at >= since] if since is not None else []),
            ),
        )
        .group_by(rows.c.delivery_id, *key_columns)
        .subquery("ordered")
    )
    totals = select(
        *[per_row.c[f"k{n}"] for n in range(len(group))],
        func.sum(case((per_row.c.orders > 0, 1), else_=0)).label("converted"),
        func.sum(per_row.c.gmv).label("gmv"),
    ).group_by(*[per_row.c[f"k{n}"] for n in range(len(group))])
    found: dict[tuple[Any, ...], Outcome] = {}
    for row in session.execute(totals):
        key = tuple(row[: len(group)])
        converted = int(row.converted or 0) if goal["type"] == "order" else 0
        found[key] = Outcome(conversions=converted, gmv_fen=int(row.gmv or 0))
    if goal["type"] == "order":
        return found
    if goal["type"] == "click":
        hit = (
            select(ShortLinkClick.id)
            .where(
                ShortLinkClick.link_id == rows.c.short_link_id,
                ShortLinkClick.clicked_at >= start,
                ShortLinkClick.clicked_at < end,
            )
            .exists()
        )
    else:
        hit = (
            select(CustomerEvent.id)
            .where(
                CustomerEvent.workspace_id == workspace_id,
                CustomerEvent.customer_id == rows.c.customer_id,
                CustomerEvent.type == str(goal["event_type"]),
                CustomerEvent.occurred_at >= start,
                CustomerEvent.occurred_at < end,
            )
            .exists()
        )
    met = select(*key_columns, func.count().label("converted")).select_from(rows).where(hit).group_by(*key_columns)
    for row in session.execute(met):
        key = tuple(row[: len(group)])
        before = found.get(key, Outcome())
        found[key] = Outcome(conversions=int(row.converted), gmv_fen=before.gmv_fen)
    return found
