"""Channel ROI: the channel report's cost and GMV, plus what an acquired customer is worth after N days.

Definitions (docs/analytics-performance.md):
- acquired customer of a channel: a customer (not merged away) whose first friend edge ever was
  added in the period, through that channel;
- GMV per acquired customer over N days: their orders' net GMV (total − refunded, fully refunded
  orders excluded) paid within N days after that first add, divided by the acquired customers
  whose add is at least N days old ("mature"); None ("未满 N 天") when none is;
- ROI: (attributed GMV × margin − cost) / cost when a gross margin is set, else GMV / cost;
- cost per acquired customer: the channel's cost in the period ÷ its acquired customers (not ÷ adds:
  a re-add or a second staff member's edge costs money but acquires nobody);
- payback: the first N (1–365 days) where the mature customers' GMV per customer within N days
  × margin (1 when unset) reaches the cost per acquired customer; None ("尚未回本") when it never
  does, and when the channel acquired nobody.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, case, cast, func, literal, select
from sqlalchemy.orm import Session

from siyu.analytics.performance.common import reader
from siyu.analytics.periods import Period, workspace_zone
from siyu.analytics.scope import NET_FEN, counted_orders, live_edges
from siyu.analytics.settings import current_settings
from siyu.auth.permissions import Actor, Scope
from siyu.campaigns.results.counts import plus_days
from siyu.channels.metrics import ChannelRow, channel_report
from siyu.kit.clock import Clock
from siyu.kit.errors import NotFound
from siyu.models import Channel, Order, Relationship
from siyu.models.base import UTCDateTime

WINDOWS = (30, 90, 365)
MAX_PAYBACK_DAYS = 365
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Acquired:
    """One acquired customer: when their first edge was added and their orders after it."""

    customer_id: int
    added_at: datetime
    orders: list[tuple[datetime, int]] = field(default_factory=list)
    """(paid_at, net GMV in fen) of orders paid at or after `added_at`."""


@dataclass(frozen=True)
class ChannelRoi:
    channel_id: int
    name: str
    adds: int
    cost_fen: int
    cac_fen: int | None
    first_orders: int
    gmv_fen: int
    roi: float | None
    acquired: int
    cost_per_acquired_fen: int | None
    """Cost ÷ acquired customers (rounded half up); None when nobody was acquired."""
    gmv_per_customer: dict[int, int | None]
    """N → fen per mature acquired customer (rounded half up); None when no cohort is N days old."""
    mature: dict[int, int]
    """N → acquired customers whose add is at least N days old."""
    payback_days: int | None


@dataclass(frozen=True)
class RoiResult:
    period: Period
    margin_bp: int | None
    """Gross margin in basis points from the analytics settings; None: ROI and payback use GMV."""
    channels: list[ChannelRoi]


def _fen_per(total: int, count: int) -> int | None:
    return (2 * total + count) // (2 * count) if count else None


@dataclass(frozen=True)
class Curve:
    """For N = 1..365: customers at least N days past their add, and their GMV within N days after it."""

    mature: list[int]
    gmv_fen: list[int]

    def at(self, days: int) -> tuple[int, int]:
        return self.mature[days - 1], self.gmv_fen[days - 1]


def curve(people: list[Acquired], now: datetime) -> Curve:
    """Both series in one pass with difference arrays (linear in customers + orders).

    In whole days: a customer is mature for N when age = ⌊(now − added_at) / 1 day⌋ ≥ N; an order
    is within N days when offset = ⌊(paid_at − added_at) / 1 day⌋ < N. So a customer counts for
    N in 1..age and an order for N in offset+1..age.
    """
    size = MAX_PAYBACK_DAYS + 2
    count_diff, gmv_diff = [0] * size, [0] * size
    for person in people:
        age = min((now - person.added_at) // DAY, MAX_PAYBACK_DAYS)
        if age < 1:
            continue
        count_diff[1] += 1
        count_diff[age + 1] -= 1
        for paid, amount in person.orders:
            first = (paid - person.added_at) // DAY + 1
            if first <= age:
                gmv_diff[first] += amount
                gmv_diff[age + 1] -= amount
    return _running(count_diff, gmv_diff)


def _running(count_diff: list[int], gmv_diff: list[int]) -> Curve:
    mature, gmv = [], []
    running_count = running_gmv = 0
    for days in range(1, MAX_PAYBACK_DAYS + 1):
        running_count += count_diff[days]
        running_gmv += gmv_diff[days]
        mature.append(running_count)
        gmv.append(running_gmv)
    return Curve(mature, gmv)


def window_gmv(people: list[Acquired], days: int, now: datetime) -> tuple[int, int]:
    """(customers whose add is `days` old, their GMV in fen within `days` after the add)."""
    return curve(people, now).at(days)


def payback_days(people: list[Acquired], cost_fen: int, margin: float, now: datetime) -> int | None:
    """The first N in 1..365 where mature customers' GMV per customer within N days × margin ≥
    `cost_fen` ÷ len(people) (the cost per acquired customer)."""
    return _payback(curve(people, now), cost_fen, len(people), margin)


def _payback(series: Curve, cost_fen: int, acquired: int, margin: float) -> int | None:
    """Exact in integers and the margin: total / count × margin ≥ cost / acquired, cross-multiplied."""
    if acquired == 0:
        return None
    if cost_fen == 0:
        return 0
    for days in range(1, MAX_PAYBACK_DAYS + 1):
        count, total = series.at(days)
        if count == 0:
            return None  # no cohort this old yet: the curve stops here
        if total * margin * acquired >= cost_fen * count:
            return days
    return None


def whole_days(session: Session, later: Any, earlier: Any) -> ColumnElement[int]:
    """⌊(later − earlier) / 1 day⌋ in SQL, exact to the microsecond on both databases (for later ≥ earlier).

    PostgreSQL: the day field of the (justified) interval. SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff"
    text: whole seconds from `strftime('%s')` plus the fraction, in integer microseconds.
    """
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("day", later - earlier), Integer)

    def micros(column: Any) -> ColumnElement[int]:
        seconds = cast(func.strftime("%s", func.substr(column, 1, 19)), Integer)
        return seconds * 1_000_000 + cast(func.substr(column, 21, 6), Integer)

    return (micros(later) - micros(earlier)) // literal(86_400_000_000)


def _acquired_query(session: Session, workspace_id: int, period: Period) -> Any:
    """(customer_id, channel_id, added_at) of customers whose first edge ever was added in `period`.

    Two edges added at the same instant: the older row (lowest id) gives the channel.
    """
    start, end = period.utc_bounds(workspace_zone(session, workspace_id))
    first = (
        select(Relationship.customer_id, func.min(Relationship.added_at).label("first_at"))
        .where(Relationship.workspace_id == workspace_id)
        .group_by(Relationship.customer_id)
        .subquery()
    )
    first_edge = (
        select(func.min(Relationship.id).label("edge_id"))
        .join(
            first,
            and_(first.c.customer_id == Relationship.customer_id, first.c.first_at == Relationship.added_at),
        )
        .where(Relationship.workspace_id == workspace_id, first.c.first_at >= start, first.c.first_at < end)
        .group_by(Relationship.customer_id)
        .subquery()
    )
    return (
        select(Relationship.customer_id, Relationship.channel_id, Relationship.added_at)
        .join(first_edge, first_edge.c.edge_id == Relationship.id)
        .where(*live_edges(workspace_id), Relationship.channel_id.is_not(None))
        .subquery("acquired")
    )


@dataclass
class _Groups:
    acquired: int = 0
    count_diff: list[int] = field(default_factory=lambda: [0] * (MAX_PAYBACK_DAYS + 2))
    gmv_diff: list[int] = field(default_factory=lambda: [0] * (MAX_PAYBACK_DAYS + 2))

    def curve(self) -> Curve:
        return _running(self.count_diff, self.gmv_diff)


def acquired_curves(session: Session, workspace_id: int, period: Period, now: datetime) -> dict[int, _Groups]:
    """Channel id → acquired customers and their N-day curve, from three grouped queries.

    Python sees at most channels × 366 rows per query: customers grouped by (channel, age in whole
    days capped at 365); their orders' net GMV grouped by (channel, order-day offset) and by
    (channel, capped age), for orders with offset < capped age (the difference array's two ends).
    Same figures as `curve` over `Acquired` lists.
    """
    acquired = _acquired_query(session, workspace_id, period)
    age_days = whole_days(session, literal(now, UTCDateTime()), acquired.c.added_at)
    age = case((age_days > MAX_PAYBACK_DAYS, MAX_PAYBACK_DAYS), else_=age_days)
    out: dict[int, _Groups] = defaultdict(_Groups)
    people = select(acquired.c.channel_id, age.label("age"), func.count().label("n")).group_by(
        acquired.c.channel_id, age
    )
    for channel_id, days, n in session.execute(people):
        groups = out[int(channel_id)]
        groups.acquired += int(n)
        days = int(days)
        if days >= 1:
            groups.count_diff[1] += int(n)
            groups.count_diff[days + 1] -= int(n)
    offset = whole_days(session, Order.paid_at, acquired.c.added_at)
    orders = (
        select(
            acquired.c.channel_id,
            offset.label("offset"),
            age.label("age"),
            NET_FEN.label("net"),
        )
        .join(acquired, acquired.c.customer_id == Order.customer_id)
        .where(
            *counted_orders(workspace_id, pool_only=False),
            Order.paid_at >= acquired.c.added_at,
            Order.paid_at < plus_days(session, acquired.c.added_at, MAX_PAYBACK_DAYS),
            offset < age,
        )
        .subquery("orders")
    )
    by_offset = select(orders.c.channel_id, orders.c.offset, func.sum(orders.c.net)).group_by(
        orders.c.channel_id, orders.c.offset
    )
    for channel_id, days, amount in session.execute(by_offset):
        out[int(channel_id)].gmv_diff[int(days) + 1] += int(amount or 0)
    by_age = select(orders.c.channel_id, orders.c.age, func.sum(orders.c.net)).group_by(
        orders.c.channel_id, orders.c.age
    )
    for channel_id, days, amount in session.execute(by_age):
        out[int(channel_id)].gmv_diff[int(days) + 1] -= int(amount or 0)
    return dict(out)


def channel_roi(session: Session, *, actor: Actor, period: Period, clock: Clock) -> RoiResult:
    """Per channel over `period`: adds, cost, CPA, attributed GMV, ROI, N-day GMV per acquired customer, payback."""
    as_reader = reader(actor, Scope.ACQUISITION_READ)
    report = channel_report(session, actor=as_reader, date_from=period.start, date_to=period.end, clock=clock)
    margin_bp = current_settings(session, actor.workspace_id, clock).gross_margin_bp
    margin = margin_bp / 10_000 if margin_bp is not None else 1.0
    acquired = acquired_curves(session, actor.workspace_id, period, clock.now())
    return RoiResult(
        period=period,
        margin_bp=margin_bp,
        channels=[_row(row, acquired.get(row.channel.id, _Groups()), margin_bp, margin) for row in report.channels],
    )


def _row(row: ChannelRow, groups: _Groups, margin_bp: int | None, margin: float) -> ChannelRoi:
    t = row.totals
    series = groups.curve()
    gmv_per: dict[int, int | None] = {}
    mature: dict[int, int] = {}
    for days in WINDOWS:
        count, total = series.at(days)
        mature[days] = count
        gmv_per[days] = _fen_per(total, count)
    if t.cost_fen == 0:
        roi = None
    elif margin_bp is None:
        roi = t.gmv_fen / t.cost_fen
    else:
        roi = (t.gmv_fen * margin - t.cost_fen) / t.cost_fen
    return ChannelRoi(
        channel_id=row.channel.id,
        name=row.channel.name,
        adds=t.adds,
        cost_fen=t.cost_fen,
        cac_fen=t.cac_fen,
        first_orders=t.first_orders,
        gmv_fen=t.gmv_fen,
        roi=roi,
        acquired=groups.acquired,
        cost_per_acquired_fen=_fen_per(t.cost_fen, groups.acquired),
        gmv_per_customer=gmv_per,
        mature=mature,
        payback_days=_payback(series, t.cost_fen, groups.acquired, margin),
    )


def acquired_customers(session: Session, *, actor: Actor, period: Period, channel_id: int) -> list[int]:
    """The acquired customers of one channel in `period` (the 新获客户 cell), recomputed for a drill-down."""
    reader(actor)
    ws = actor.workspace_id
    if session.scalar(select(Channel.id).where(Channel.id == channel_id, Channel.workspace_id == ws)) is None:
        raise NotFound(f"channel {channel_id} not found", details={"field": "channel_id"})
    acquired = _acquired_query(session, ws, period)
    ids = session.scalars(select(acquired.c.customer_id).where(acquired.c.channel_id == channel_id).distinct())
    return sorted(int(i) for i in ids)
