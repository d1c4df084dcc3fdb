"""Staff performance (员工绩效): per staff member over a period, what they hold, add, lose, send and sell.

Definitions (docs/analytics-performance.md):
- held: distinct customers (not merged away) with an open edge to the staff member at the end of
  the period (added before the end, not removed before it);
- adds: distinct customers (not merged away) with an edge to the staff member added in the period
  (a customer re-added twice counts once, as in the drill-down's segment);
- deletions: edges removed in the period, split by who removed; an edge handed to another staff
  member (在职/离职继承, removed_by TRANSFERRED) is not a deletion, and the takeover edge
  (`channel` "transfer") is not an add — the customer is held by the takeover member from then on;
- messages: deliveries assigned to the staff member (`Delivery.staff_id`) planned in the period,
  except the ones the contact policy suppressed (never the staff member's to send), and how many
  of them went out;
- tasks: staff tasks due in the period and already past due (due before the period's end and
  before now, so a task due later today is not yet counted), done, and done by their due time
  ("on_time_rate" = done on time ÷ due: its own column, never mixed with WeCom's reply rate);
- WeCom behaviour (`StaffBehaviorDay`, fetched by the WeCom sync; days are China days): customers
  chatted with and messages sent, summed over the period's days; "reply_rate" is WeCom's daily reply
  percentage averaged over the days weighted by max(chats, 1) — WeCom gives no denominator, so a
  day without chats still counts once; average first-reply minutes weighted by the day's replied
  chats (chats × reply percentage). None without behaviour data;
- first orders / GMV: orders attributed to the staff member (`Order.staff_id`) paid in the period,
  fully refunded ones excluded; first orders are private-domain first orders (pool_sequence = 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, or_, select
from sqlalchemy.orm import Session

from siyu.analytics.performance.common import reader
from siyu.analytics.periods import Period, workspace_zone
from siyu.analytics.scope import NET_FEN, counted_orders, live_edges
from siyu.analytics.tables import ratio
from siyu.auth.permissions import Actor
from siyu.campaigns.results.counts import SENT_STATES
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput, NotFound
from siyu.models import (
    Delivery,
    DeliveryStatus,
    Order,
    Relationship,
    RemovedBy,
    Staff,
    StaffBehaviorDay,
    StaffTask,
    StaffTaskStatus,
    Store,
)

SORT_KEYS = (
    "held",
    "adds",
    "deleted",
    "deleted_by_customer",
    "deleted_by_staff",
    "messages_assigned",
    "messages_sent",
    "send_rate",
    "tasks_due",
    "tasks_done",
    "tasks_on_time",
    "on_time_rate",
    "reply_rate",
    "first_orders",
    "gmv_fen",
    "chats",
    "wecom_messages",
)


class Cell(StrEnum):
    """The figures whose customers a drill-down turns into a segment."""

    HELD = "held"
    ADDS = "adds"
    FIRST_ORDERS = "first_orders"


@dataclass(frozen=True)
class StaffRow:
    staff_id: int
    name: str
    store: str | None
    held: int = 0
    adds: int = 0
    deleted: int = 0
    deleted_by_customer: int = 0
    deleted_by_staff: int = 0
    messages_assigned: int = 0
    messages_sent: int = 0
    tasks_due: int = 0
    tasks_done: int = 0
    tasks_on_time: int = 0
    first_orders: int = 0
    gmv_fen: int = 0
    behavior_days: int = 0
    """Days of the period with WeCom behaviour data (0: none reported)."""
    chats: int = 0
    wecom_messages: int = 0
    reply_chats: int = 0
    """Σ max(chats, 1) over the days WeCom reported a reply percentage for (the weight of `reply_weighted`)."""
    reply_weighted: float = 0.0
    """Σ daily reply percentage (0–100) × max(that day's chats, 1)."""
    reply_time_chats: float = 0.0
    """Σ replied chats (chats × reply percentage) over the days with an average reply time."""
    reply_time_weighted: float = 0.0
    """Σ daily average first-reply minutes × that day's replied chats."""

    @property
    def send_rate(self) -> float | None:
        return ratio(self.messages_sent, self.messages_assigned)

    @property
    def has_behavior(self) -> bool:
        return self.behavior_days > 0

    @property
    def reply_rate(self) -> float | None:
        """WeCom's reply percentage as a fraction over the period (None without behaviour data)."""
        return self.reply_weighted / self.reply_chats / 100 if self.reply_chats else None

    @property
    def avg_reply_time(self) -> float | None:
        """Average minutes to the first reply, weighted by replied chats over the period."""
        return self.reply_time_weighted / self.reply_time_chats if self.reply_time_chats else None

    @property
    def on_time_rate(self) -> float | None:
        """Tasks done by their due time ÷ tasks due."""
        return ratio(self.tasks_on_time, self.tasks_due)

    def value(self, key: str) -> Any:
        return getattr(self, key)


@dataclass(frozen=True)
class StaffResult:
    period: Period
    store_id: int | None
    sort: str
    rows: list[StaffRow]
    """Ranked by `sort`, highest first (ties by name); rank = position + 1."""


def parse_sort(value: str | None) -> str:
    """The ranking column; `InvalidInput` naming "sort" for anything not in `SORT_KEYS`."""
    if not value:
        return "held"
    if value not in SORT_KEYS:
        raise InvalidInput(f"sort must be one of {', '.join(SORT_KEYS)}", details={"field": "sort"})
    return value


def _staff(session: Session, workspace_id: int, store_id: int | None) -> list[tuple[int, str, str | None, bool]]:
    if (
        store_id is not None
        and session.scalar(select(Store.id).where(Store.id == store_id, Store.workspace_id == workspace_id)) is None
    ):
        raise NotFound(f"store {store_id} not found", details={"field": "store_id"})
    query = (
        select(Staff.id, Staff.name, Store.name, Staff.is_active)
        .outerjoin(Store, Store.id == Staff.store_id)
        .where(Staff.workspace_id == workspace_id)
        .order_by(Staff.id)
    )
    if store_id is not None:
        query = query.where(Staff.store_id == store_id)
    return [(int(i), n, s, bool(a)) for i, n, s, a in session.execute(query)]


def held_query(workspace_id: int, end: datetime) -> Select[int, int]:
    """(staff_id, customer_id) of edges open at `end`."""
    return select(Relationship.staff_id, Relationship.customer_id).where(
        *live_edges(workspace_id),
        Relationship.added_at < end,
        or_(Relationship.removed_at.is_(None), Relationship.removed_at >= end),
    )


TAKEOVER_CHANNEL = "transfer"
"""`Relationship.channel` of an edge opened by a WeCom transfer (siyu.integrations.wecom.sync.transfers)."""


def not_takeover() -> ColumnElement[bool]:
    """Edges that are real adds: not the takeover side of a transfer."""
    return or_(Relationship.channel.is_(None), Relationship.channel != TAKEOVER_CHANNEL)


def not_transferred() -> ColumnElement[bool]:
    """Removed edges that are deletions: not handed to another staff member."""
    return or_(Relationship.removed_by.is_(None), Relationship.removed_by != RemovedBy.TRANSFERRED)


def adds_query(workspace_id: int, start: datetime, end: datetime) -> Select[int, int]:
    """(staff_id, customer_id) of edges added in [start, end), takeover edges of transfers excluded."""
    return select(Relationship.staff_id, Relationship.customer_id).where(
        *live_edges(workspace_id), Relationship.added_at >= start, Relationship.added_at < end, not_takeover()
    )


def first_orders_query(workspace_id: int, start: datetime, end: datetime) -> Select[int | None, int]:
    """(staff_id, customer_id) of private-domain first orders attributed to staff, paid in [start, end)."""
    return select(Order.staff_id, Order.customer_id).where(
        *counted_orders(workspace_id, pool_only=False),
        Order.pool_sequence == 1,
        Order.paid_at >= start,
        Order.paid_at < end,
    )


def staff_performance(
    session: Session,
    *,
    actor: Actor,
    period: Period,
    clock: Clock,
    store_id: int | None = None,
    sort: str | None = None,
) -> StaffResult:
    """Every staff member (of `store_id` if given) with their figures for `period`, ranked by `sort`.

    Six grouped queries whatever the number of staff. Inactive staff appear only when they have
    a figure in the period.
    """
    reader(actor)
    key = parse_sort(sort)
    ws = actor.workspace_id
    start, end = period.utc_bounds(workspace_zone(session, ws))
    people = _staff(session, ws, store_id)
    figures: dict[int, dict[str, int]] = {sid: {} for sid, *_ in people}

    def put(rows: Any, *names: str) -> None:
        for staff_id, *values in rows:
            if staff_id in figures:
                figures[staff_id].update({n: int(v or 0) for n, v in zip(names, values, strict=True)})

    held = held_query(ws, end).subquery()
    put(
        session.execute(
            select(held.c.staff_id, func.count(func.distinct(held.c.customer_id))).group_by(held.c.staff_id)
        ),
        "held",
    )
    adds = adds_query(ws, start, end).subquery()
    put(
        session.execute(
            select(adds.c.staff_id, func.count(func.distinct(adds.c.customer_id))).group_by(adds.c.staff_id)
        ),
        "adds",
    )
    by_customer = case((Relationship.removed_by == RemovedBy.CUSTOMER, 1), else_=0)
    by_staff = case((Relationship.removed_by == RemovedBy.STAFF, 1), else_=0)
    put(
        session.execute(
            select(Relationship.staff_id, func.count(), func.sum(by_customer), func.sum(by_staff))
            .where(*live_edges(ws), Relationship.removed_at >= start, Relationship.removed_at < end, not_transferred())
            .group_by(Relationship.staff_id)
        ),
        "deleted",
        "deleted_by_customer",
        "deleted_by_staff",
    )
    sent = case((Delivery.status.in_(SENT_STATES) | Delivery.sent_at.is_not(None), 1), else_=0)
    put(
        session.execute(
            select(Delivery.staff_id, func.count(), func.sum(sent))
            .where(
                Delivery.workspace_id == ws,
                Delivery.staff_id.is_not(None),
                Delivery.status != DeliveryStatus.SUPPRESSED,
                Delivery.planned_at >= start,
                Delivery.planned_at < end,
            )
            .group_by(Delivery.staff_id)
        ),
        "messages_assigned",
        "messages_sent",
    )
    done = case((StaffTask.status == StaffTaskStatus.DONE, 1), else_=0)
    on_time = case(((StaffTask.status == StaffTaskStatus.DONE) & (StaffTask.done_at <= StaffTask.due_at), 1), else_=0)
    put(
        session.execute(
            select(StaffTask.staff_id, func.count(), func.sum(done), func.sum(on_time))
            .where(
                StaffTask.workspace_id == ws,
                StaffTask.staff_id.is_not(None),
                StaffTask.status != StaffTaskStatus.CANCELLED,
                StaffTask.due_at >= start,
                StaffTask.due_at < min(end, clock.now()),
            )
            .group_by(StaffTask.staff_id)
        ),
        "tasks_due",
        "tasks_done",
        "tasks_on_time",
    )
    first = case((Order.pool_sequence == 1, 1), else_=0)
    put(
        session.execute(
            select(Order.staff_id, func.sum(first), func.sum(NET_FEN))
            .where(
                *counted_orders(ws, pool_only=False),
                Order.staff_id.is_not(None),
                Order.paid_at >= start,
                Order.paid_at < end,
            )
            .group_by(Order.staff_id)
        ),
        "first_orders",
        "gmv_fen",
    )
    behavior = _behavior(session, ws, period)
    rows = [
        StaffRow(staff_id=sid, name=name, store=store, **figures[sid], **behavior.get(sid, {}))
        for sid, name, store, active in people
        if active or any(figures[sid].values()) or sid in behavior  # staff who left: only with figures
    ]
    rows.sort(key=lambda r: r.name)
    rows.sort(key=lambda r: (r.value(key) is not None, r.value(key) or 0), reverse=True)
    return StaffResult(period=period, store_id=store_id, sort=key, rows=rows)


def _behavior(session: Session, workspace_id: int, period: Period) -> dict[int, dict[str, Any]]:
    """Per staff member, WeCom behaviour figures summed over the period's brand-local days."""
    has_pct = StaffBehaviorDay.reply_percentage.is_not(None)
    has_time = StaffBehaviorDay.avg_reply_time.is_not(None)
    chat = StaffBehaviorDay.chat_cnt
    day_weight = case((chat > 0, chat), else_=1)
    replied = case((has_pct, chat * StaffBehaviorDay.reply_percentage / 100.0), else_=chat * 1.0)
    rows = session.execute(
        select(
            StaffBehaviorDay.staff_id,
            func.count(),
            func.sum(chat),
            func.sum(StaffBehaviorDay.message_cnt),
            func.sum(case((has_pct, day_weight), else_=0)),
            func.sum(case((has_pct, StaffBehaviorDay.reply_percentage * day_weight), else_=0)),
            func.sum(case((has_time, replied), else_=0)),
            func.sum(case((has_time, StaffBehaviorDay.avg_reply_time * replied), else_=0)),
        )
        .where(
            StaffBehaviorDay.workspace_id == workspace_id,
            StaffBehaviorDay.day >= period.start,
            StaffBehaviorDay.day <= period.end,
        )
        .group_by(StaffBehaviorDay.staff_id)
    )
    return {
        int(sid): {
            "behavior_days": int(days or 0),
            "chats": int(chats or 0),
            "wecom_messages": int(messages or 0),
            "reply_chats": int(pct_chats or 0),
            "reply_weighted": float(pct or 0),
            "reply_time_chats": float(time_chats or 0),
            "reply_time_weighted": float(minutes or 0),
        }
        for sid, days, chats, messages, pct_chats, pct, time_chats, minutes in rows
    }


def cell_customers(session: Session, *, actor: Actor, period: Period, staff_id: int, cell: str) -> list[int]:
    """The customers behind one staff cell (held at the end, added in the period, first orders), recomputed."""
    reader(actor)
    try:
        kind = Cell(cell)
    except ValueError:
        raise InvalidInput("cell must be held, adds or first_orders", details={"field": "cell"}) from None
    ws = actor.workspace_id
    if session.scalar(select(Staff.id).where(Staff.id == staff_id, Staff.workspace_id == ws)) is None:
        raise NotFound(f"staff {staff_id} not found", details={"field": "staff_id"})
    start, end = period.utc_bounds(workspace_zone(session, ws))
    query = {
        Cell.HELD: held_query(ws, end),
        Cell.ADDS: adds_query(ws, start, end),
        Cell.FIRST_ORDERS: first_orders_query(ws, start, end),
    }[kind].subquery()
    ids = session.scalars(select(query.c.customer_id).where(query.c.staff_id == staff_id).distinct())
    return sorted(int(i) for i in ids)
