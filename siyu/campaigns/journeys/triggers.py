"""Enrolment: turning trigger rows into journey entries, exactly once.

Event-like triggers read their source table in id order above the journey's `watermark`, skipping
rows that already have (or no longer may have) an enrolment, in the same transaction as the
enrolments they insert; the journey row is locked for that transaction, so two ticks never enrol
from the same rows. Ids are not commit order: on PostgreSQL a transaction holding a lower id can
commit after a higher one was read. So the watermark is only an optimisation that trails the
rows' recorded times: it moves past a row only once it was recorded more than `WATERMARK_LAG` ago
(by then every row with a lower id has committed), and everything above it is read again each tick. Daily triggers
(birthday, inactive, points_expiring) keep the brand-local date they last ran as the watermark (yyyymmdd) and use
date-based entry keys. Inserts are insert-or-ignore on (journey, customer, entry key): a batch
replayed after a crash enrols nobody twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, cast, exists, extract, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

from siyu.kit.clock import Clock, as_utc
from siyu.kit.sql import insert_or_ignore
from siyu.loyalty.program import last_valid_day
from siyu.models import (
    Customer,
    CustomerEvent,
    CustomerTag,
    EnrolmentStatus,
    Journey,
    JourneyEnrolment,
    Member,
    Order,
    OrderItem,
    OrderStatus,
    PointsLot,
    SegmentMembershipEvent,
    Workspace,
)
from siyu.models.segment import MembershipChange

INACTIVE_LOOKBACK_DAYS = 7
"""Inactive customers are enrolled when their last event crossed the threshold within this many
days: a week of scheduler downtime loses nobody, and long-dormant customers are not swept in
again every day."""


SETTLE = timedelta(hours=24)
"""Longest a source row's transaction may stay open (recorded time to commit), clock skew included."""
WATERMARK_LAG = 2 * SETTLE
"""The watermark passes a row recorded before now − lag: its id was allocated within SETTLE of its
recorded time, and any transaction still open now began after now − SETTLE, so every id it holds
is higher."""


@dataclass
class Candidate:
    """A trigger row: who it enrols, under which key, and what the steps may want to know."""

    source_id: int
    customer_id: int
    entry_key: str
    context: dict[str, Any] = field(default_factory=dict)


def brand_zone(session: Session, workspace_id: int) -> ZoneInfo:
    workspace = session.get(Workspace, workspace_id)
    return ZoneInfo(workspace.timezone if workspace else "Asia/Shanghai")


def source_query(journey: Journey) -> Any:
    """`SELECT id, customer_id, …` of the trigger's source rows, in id order (None for daily triggers).

    Typed `Any`: the selects have different column tuples."""
    trigger = journey.trigger
    kind = trigger["type"]
    ws = journey.workspace_id
    if kind in ("relationship_added", "group_joined"):
        event_type = "relationship.added" if kind == "relationship_added" else "group.joined"
        return (
            select(CustomerEvent.id, CustomerEvent.customer_id, CustomerEvent.properties)
            .where(CustomerEvent.workspace_id == ws, CustomerEvent.type == event_type)
            .order_by(CustomerEvent.id)
        )
    if kind == "tag_added":
        return (
            select(CustomerTag.id, CustomerTag.customer_id)
            .where(CustomerTag.workspace_id == ws, CustomerTag.tag_id == trigger["tag_id"])
            .order_by(CustomerTag.id)
        )
    if kind == "segment_entered":
        return (
            select(SegmentMembershipEvent.id, SegmentMembershipEvent.customer_id)
            .where(
                SegmentMembershipEvent.workspace_id == ws,
                SegmentMembershipEvent.segment_id == trigger["segment_id"],
                SegmentMembershipEvent.change == MembershipChange.ENTERED,
            )
            .order_by(SegmentMembershipEvent.id)
        )
    if kind == "first_order":
        earlier = aliased(Order)
        return (
            select(Order.id, Order.customer_id)
            .where(
                Order.workspace_id == ws,
                ~exists().where(
                    earlier.customer_id == Order.customer_id,
                    or_(earlier.paid_at < Order.paid_at, and_(earlier.paid_at == Order.paid_at, earlier.id < Order.id)),
                ),
            )
            .order_by(Order.id)
        )
    if kind == "product_ordered":
        return (
            select(Order.id, Order.customer_id)
            .where(
                Order.workspace_id == ws,
                Order.status != OrderStatus.REFUNDED,
                exists().where(OrderItem.order_id == Order.id, OrderItem.sku == trigger["sku"]),
            )
            .order_by(Order.id)
        )
    return None


def recorded_column(journey: Journey) -> Any:
    """When a source row was written (not a business time): what the watermark lag is measured on."""
    kind = journey.trigger["type"]
    if kind in ("relationship_added", "group_joined"):
        return CustomerEvent.recorded_at
    if kind == "tag_added":
        return CustomerTag.assigned_at
    if kind == "segment_entered":
        return SegmentMembershipEvent.occurred_at
    return Order.created_at


KEY_PREFIX = {
    "relationship_added": "event:",
    "group_joined": "event:",
    "tag_added": "tag:",
    "segment_entered": "segment:",
    "first_order": "order:",
    "product_ordered": "order:",
}


def _not_enrolled(journey: Journey, id_column: Any, customer_column: Any) -> Any:
    """Rows still to decide: no enrolment from this row, and none that settles it.

    Without re-entry any enrolment of the customer settles it. With re-entry a row is settled by an
    entry that was still running when the row was recorded (or started later): re-entry is only
    after the previous entry ended, and the row is not deferred until it does."""
    entry_key = literal(KEY_PREFIX[journey.trigger["type"]]).concat(cast(id_column, String))
    mine = and_(JourneyEnrolment.journey_id == journey.id, JourneyEnrolment.customer_id == customer_column)
    if not journey.reentry:
        return ~exists().where(mine)
    recorded = recorded_column(journey)
    return and_(
        ~exists().where(mine, JourneyEnrolment.entry_key == entry_key),
        ~exists().where(mine, or_(JourneyEnrolment.finished_at.is_(None), JourneyEnrolment.finished_at > recorded)),
    )


def high_water(session: Session, journey: Journey) -> int:
    """The newest source row now: activation starts after it, so history is not replayed."""
    statement = source_query(journey)
    if statement is None:
        return 0
    id_column = statement.selected_columns[0]
    return int(session.scalar(statement.with_only_columns(func.max(id_column)).order_by(None)) or 0)


def _candidate(journey: Journey, row: Any) -> Candidate | None:
    trigger = journey.trigger
    kind = trigger["type"]
    if kind in ("relationship_added", "group_joined"):
        props = row.properties or {}
        if trigger.get("staff_ids") and props.get("staff_id") not in trigger["staff_ids"]:
            return None
        if trigger.get("channel_ids") and props.get("channel_id") not in trigger["channel_ids"]:
            return None
        if trigger.get("group_ids") and props.get("group_id") not in trigger["group_ids"]:
            return None
        found = {k: props[k] for k in ("staff_id", "group_id", "channel_id") if props.get(k) is not None}
        return Candidate(row.id, row.customer_id, f"event:{row.id}", {"event_id": row.id, **found})
    if kind == "tag_added":
        return Candidate(row.id, row.customer_id, f"tag:{row.id}", {"tag_id": trigger["tag_id"]})
    if kind == "segment_entered":
        return Candidate(row.id, row.customer_id, f"segment:{row.id}", {"segment_id": trigger["segment_id"]})
    context: dict[str, Any] = {"order_id": row.id}
    if kind == "product_ordered":
        context.update(sku=trigger["sku"], cycle_days=trigger.get("cycle_days"))
    return Candidate(row.id, row.customer_id, f"order:{row.id}", context)


def enrol(session: Session, journey: Journey, candidates: Sequence[Candidate], clock: Clock) -> int:
    """Insert enrolments for candidates, honouring `reentry`; returns how many were inserted.

    The caller holds the journey row lock, so the checks below cannot race another enroller.
    """
    if not candidates:
        return 0
    now = clock.now()
    ids = sorted({c.customer_id for c in candidates})
    live = set(
        session.scalars(
            select(Customer.id).where(
                Customer.id.in_(ids), Customer.merged_into_id.is_(None), Customer.erased_at.is_(None)
            )
        )
    )
    history: dict[int, set[str]] = {}
    for customer_id, status in session.execute(
        select(JourneyEnrolment.customer_id, JourneyEnrolment.status).where(
            JourneyEnrolment.journey_id == journey.id, JourneyEnrolment.customer_id.in_(ids)
        )
    ):
        history.setdefault(customer_id, set()).add(str(status))
    inserted = 0
    for candidate in candidates:
        seen = history.get(candidate.customer_id, set())
        if candidate.customer_id not in live:
            continue
        if seen and not journey.reentry:
            continue  # one entry ever
        if EnrolmentStatus.ACTIVE in seen:
            continue  # re-entry only after the previous entry ended
        added = insert_or_ignore(
            session,
            JourneyEnrolment,
            {
                "workspace_id": journey.workspace_id,
                "journey_id": journey.id,
                "customer_id": candidate.customer_id,
                "entry_key": candidate.entry_key,
                "status": str(EnrolmentStatus.ACTIVE),
                "step_index": 0,
                "next_run_at": now,
                "context": candidate.context,
                "enrolled_at": now,
            },
            ["journey_id", "customer_id", "entry_key"],
        )
        if added:
            inserted += 1
            history.setdefault(candidate.customer_id, set()).add(str(EnrolmentStatus.ACTIVE))
    return inserted


def enrol_from_source(
    session: Session, journey: Journey, clock: Clock, *, batch_size: int, after: int | None = None
) -> tuple[int, int, int]:
    """One batch of an event-like trigger: rows above `after` (default: the watermark) not yet
    enrolled; returns (rows read, enrolled, last id read — the next batch's `after`).

    Re-reading is harmless (the entry key is unique and settled rows are filtered out), so the
    watermark may trail far behind; it moves only over rows recorded before now − WATERMARK_LAG,
    and only up to what this batch covered (or to the end when the source is drained)."""
    statement = source_query(journey)
    if statement is None:
        return 0, 0, 0
    id_column = statement.selected_columns[0]
    customer_column = statement.selected_columns[1]
    start = max(journey.watermark, after or 0)
    rows = session.execute(
        statement.where(id_column > start, _not_enrolled(journey, id_column, customer_column)).limit(batch_size)
    ).all()
    candidates = [c for row in rows if (c := _candidate(journey, row)) is not None]
    enrolled = enrol(session, journey, candidates, clock)
    last = int(rows[-1][0]) if rows else start
    settled = statement.where(id_column > journey.watermark, recorded_column(journey) < clock.now() - WATERMARK_LAG)
    if len(rows) == batch_size:
        settled = settled.where(id_column <= last)  # rows above this batch were not read yet
    safe = session.scalar(settled.with_only_columns(func.max(id_column)).order_by(None))
    if safe is not None and int(safe) > journey.watermark:
        journey.watermark = int(safe)
    return len(rows), enrolled, last


def local_day_key(day: date) -> int:
    return day.year * 10_000 + day.month * 100 + day.day


def enrol_daily(session: Session, journey: Journey, clock: Clock) -> int:
    """Birthday and inactive triggers: once per brand-local day; returns how many were enrolled."""
    zone = brand_zone(session, journey.workspace_id)
    today = clock.now().astimezone(zone).date()
    if journey.watermark >= local_day_key(today):
        return 0
    kind = journey.trigger["type"]
    candidates: list[Candidate] = []
    if kind == "birthday":
        days = [(today.month, today.day)]
        if today.month == 2 and today.day == 28 and not _is_leap(today.year):
            days.append((2, 29))  # 29 February birthdays are celebrated on the 28th in other years
        match = or_(
            *[and_(extract("month", Customer.birthday) == m, extract("day", Customer.birthday) == d) for m, d in days]
        )
        for (customer_id,) in session.execute(
            select(Customer.id).where(
                Customer.workspace_id == journey.workspace_id,
                Customer.birthday.is_not(None),
                Customer.merged_into_id.is_(None),
                Customer.erased_at.is_(None),
                match,
            )
        ):
            candidates.append(Candidate(0, customer_id, f"birthday:{today.year}", {"year": today.year}))
    elif kind == "inactive":
        start_of_today = datetime.combine(today, time(0), zone)
        cutoff = start_of_today - timedelta(days=int(journey.trigger["days"]))
        floor = cutoff - timedelta(days=INACTIVE_LOOKBACK_DAYS)
        last = func.max(CustomerEvent.occurred_at)
        rows = session.execute(
            select(CustomerEvent.customer_id, last)
            .where(CustomerEvent.workspace_id == journey.workspace_id)
            .group_by(CustomerEvent.customer_id)
            .having(last < cutoff, last >= floor)
        ).all()
        for customer_id, last_at in rows:
            last_day = as_utc(last_at).astimezone(zone).date()
            candidates.append(
                Candidate(0, customer_id, f"inactive:{last_day.isoformat()}", {"last_event_at": last_day.isoformat()})
            )
    elif kind == "points_expiring":
        candidates = _points_expiring(session, journey, clock, zone)
    enrolled = 0
    for start in range(0, len(candidates), 1000):
        enrolled += enrol(session, journey, candidates[start : start + 1000], clock)
    journey.watermark = local_day_key(today)
    return enrolled


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _points_expiring(session: Session, journey: Journey, clock: Clock, zone: ZoneInfo) -> list[Candidate]:
    """Members with points expiring within `within_days`: one candidate per customer, for their
    soonest expiry, keyed by its last valid day so each expiry date enrols a customer once."""
    now = clock.now()
    within = timedelta(days=int(journey.trigger.get("within_days", 7)))
    rows = session.execute(
        select(Member.customer_id, PointsLot.expires_at, func.sum(PointsLot.remaining))
        .join(Member, Member.id == PointsLot.member_id)
        .where(
            PointsLot.workspace_id == journey.workspace_id,
            PointsLot.remaining > 0,
            PointsLot.expires_at > now,
            PointsLot.expires_at <= now + within,
        )
        .group_by(Member.customer_id, PointsLot.expires_at)
        .order_by(Member.customer_id, PointsLot.expires_at)
    ).all()
    candidates: dict[int, Candidate] = {}
    for customer_id, expires_at, points in rows:
        if customer_id in candidates or expires_at is None:
            continue  # the soonest expiry only
        last_day = last_valid_day(expires_at, zone).isoformat()
        candidates[customer_id] = Candidate(
            0, customer_id, f"points_expiring:{last_day}", {"expires_on": last_day, "points": int(points)}
        )
    return list(candidates.values())
