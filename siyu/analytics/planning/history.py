"""Measured history of the private domain: the figures the fit check and the KPI planner start from.

The pool here is the WeCom friend pool: distinct customers (merged profiles left out) with a friend
edge open at the instant. Orders are private-domain orders (`pool_sequence IS NOT NULL`, status not
`refunded`), GMV is `total_fen - refunded_fen`. Counts are per brand-local day in SQL and folded
into months in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Subquery, and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from siyu.analytics.periods import add_months, brand_today, local_day, utc_start, workspace_zone
from siyu.analytics.scope import NET_FEN, counted_orders, live_edges
from siyu.analytics.tables import Kind, ReportTable, columns, ratio
from siyu.auth.permissions import Actor, Scope
from siyu.channels.repository import dialect, plus_days
from siyu.kit.clock import Clock
from siyu.models import Order, Relationship

HISTORY_MONTHS = 12
CONVERSION_DAYS = (30, 90)
REPURCHASE_DAYS = 365


@dataclass
class MonthFigures:
    """One brand-local month: friend-edge flow, the pool at its end, and private-domain orders."""

    month: date
    adds: int = 0
    """Distinct customers whose first-ever friend edge was added in the month (re-adds and second
    staff edges of a customer already met are not new members)."""
    deletions: int = 0
    """Distinct customers who lost their last open friend edge in the month (left the pool; a
    deleted second staff edge of a customer still in the pool is not a deletion)."""
    open_at_start: int = 0
    """Distinct customers with an open friend edge at the month's first instant (the pool at the
    month's start: the deletion rate's denominator)."""
    pool_end: int = 0
    """Distinct customers with an open friend edge at the month's last instant (or now, this month)."""
    orders: int = 0
    gmv_fen: int = 0

    @property
    def deletion_rate(self) -> float | None:
        return ratio(self.deletions, self.open_at_start)


@dataclass(frozen=True)
class Measure:
    """A measured rate or mean with the numbers it came from."""

    value: float | None
    numerator: float
    denominator: float
    basis: str
    """How it was measured, in words (shown next to the figure)."""


@dataclass
class History:
    """The last complete months (up to 12) and the rates measured over them."""

    as_of: date
    months: list[MonthFigures]
    pool_now: int
    buyers_in_pool: int
    """Customers in the pool now with at least one private-domain order."""
    deletion_rate: Measure
    monthly_adds: Measure
    conversion: dict[int, Measure]
    """First-order conversion within 30 and 90 days of joining the pool."""
    repurchase_rate: Measure
    cycle_days: Measure
    aov: Measure
    orders_per_member_year: Measure
    acquisition_cost_fen: int | None = None
    """Measured channel cost ÷ adds (customers whose first-ever edge is in the months), in fen;
    None without costs or adds, or when the actor may not read channels."""
    channel_cost_fen: int | None = None
    """The channel cost over the months that `acquisition_cost_fen` divides."""
    notes: list[str] = field(default_factory=list)

    @property
    def orders(self) -> int:
        return sum(m.orders for m in self.months)

    @property
    def gmv_fen(self) -> int:
        return sum(m.gmv_fen for m in self.months)


def _pool_orders(workspace_id: int) -> list[ColumnElement[bool]]:
    return counted_orders(workspace_id, pool_only=True)


def _open_at(at: datetime) -> ColumnElement[bool]:
    return and_(Relationship.added_at <= at, or_(Relationship.removed_at.is_(None), Relationship.removed_at > at))


def _first_adds(workspace_id: int) -> Subquery:
    """Each customer in scope with the instant of their first-ever friend edge (`customer_id`, `added`)."""
    return (
        select(Relationship.customer_id.label("customer_id"), func.min(Relationship.added_at).label("added"))
        .where(*live_edges(workspace_id))
        .group_by(Relationship.customer_id)
        .subquery()
    )


def _nth_orders(workspace_id: int, sequence: int) -> Subquery:
    """Each customer's private-domain order number `sequence` (`customer_id`, `paid`)."""
    return (
        select(Order.customer_id.label("customer_id"), func.min(Order.paid_at).label("paid"))
        .where(*_pool_orders(workspace_id), Order.pool_sequence == sequence)
        .group_by(Order.customer_id)
        .subquery()
    )


def _pool_at_instants(session: Session, workspace_id: int, instants: list[datetime]) -> list[int]:
    """Distinct customers with an open friend edge at each of `instants`, in one pass over the edges."""
    if not instants:
        return []
    aggregates = [func.count(func.distinct(case((_open_at(t), Relationship.customer_id)))) for t in instants]
    row = session.execute(
        select(*aggregates).where(*live_edges(workspace_id), Relationship.added_at <= max(instants))
    ).one()
    return [int(v or 0) for v in row]


def _leaves_by_month(
    session: Session, workspace_id: int, zone: ZoneInfo, start: datetime, end: datetime, now: datetime
) -> list[tuple[str, int]]:
    """(brand-local "YYYY-MM", distinct customers) for customers who lost their last open friend edge
    in `[start, end)`: an edge removed at t while no other edge of theirs is open at t."""
    other = aliased(Relationship)
    still_open = (
        select(other.id)
        .where(
            other.customer_id == Relationship.customer_id,
            other.id != Relationship.id,
            other.added_at <= Relationship.removed_at,
            or_(other.removed_at.is_(None), other.removed_at > Relationship.removed_at),
        )
        .exists()
    )
    month = func.substr(local_day(session, Relationship.removed_at, zone, now), 1, 7)
    rows = session.execute(
        select(month, func.count(func.distinct(Relationship.customer_id)))
        .where(
            *live_edges(workspace_id),
            Relationship.removed_at >= start,
            Relationship.removed_at < end,
            ~still_open,
        )
        .group_by(month)
    )
    return [(str(text), int(count)) for text, count in rows]


def monthly_figures(
    session: Session, *, workspace_id: int, zone: ZoneInfo, first: date, last: date, now: datetime
) -> list[MonthFigures]:
    """Figures for each month `first`..`last` (first days of months); a month not over uses `now` as its end."""
    months = []
    month = first
    while month <= last:
        months.append(MonthFigures(month))
        month = add_months(month, 1)
    if not months:
        return []
    start, end = utc_start(first, zone), min(utc_start(add_months(last, 1), zone), now)
    by_month = {m.month: m for m in months}

    def fold(rows: object, attr: str, extra: str | None = None) -> None:
        for day_text, count, *rest in rows:  # type: ignore[attr-defined]
            target = by_month.get(date.fromisoformat(day_text).replace(day=1))
            if target is not None:
                setattr(target, attr, getattr(target, attr) + int(count))
                if extra is not None:
                    setattr(target, extra, getattr(target, extra) + int(rest[0] or 0))

    first_adds = _first_adds(workspace_id)
    added = local_day(session, first_adds.c.added, zone, now)
    fold(
        session.execute(
            select(added, func.count()).where(first_adds.c.added >= start, first_adds.c.added < end).group_by(added)
        ),
        "adds",
    )
    for month_text, count in _leaves_by_month(session, workspace_id, zone, start, end, now):
        target = by_month.get(date.fromisoformat(month_text + "-01"))
        if target is not None:
            target.deletions += count
    paid = local_day(session, Order.paid_at, zone, now)
    fold(
        session.execute(
            select(paid, func.count(), func.sum(NET_FEN))
            .where(*_pool_orders(workspace_id), Order.paid_at >= start, Order.paid_at < end)
            .group_by(paid)
        ),
        "orders",
        "gmv_fen",
    )
    started = [m for m in months if utc_start(m.month, zone) <= now]
    starts = [utc_start(m.month, zone) for m in started]
    ends = [min(utc_start(add_months(m.month, 1), zone) - timedelta(microseconds=1), now) for m in started]
    pools = _pool_at_instants(session, workspace_id, starts + ends)
    for figures, pool_start, pool_end in zip(started, pools[: len(started)], pools[len(started) :], strict=True):
        figures.open_at_start, figures.pool_end = pool_start, pool_end
    return months


def _first_data_month(session: Session, workspace_id: int, zone: ZoneInfo) -> date | None:
    first_add = session.scalar(select(func.min(Relationship.added_at)).where(*live_edges(workspace_id)))
    first_order = session.scalar(select(func.min(Order.paid_at)).where(*_pool_orders(workspace_id)))
    firsts = [t for t in (first_add, first_order) if t is not None]
    if not firsts:
        return None
    return min(firsts).astimezone(zone).date().replace(day=1)


def _conversion(session: Session, workspace_id: int, since: datetime, now: datetime) -> dict[int, Measure]:
    """Share of customers who joined the pool (first friend edge) since `since` and placed their
    first private-domain order within N days; only joiners at least N days ago count (counted in SQL)."""
    joined = _first_adds(workspace_id)
    first_orders = _nth_orders(workspace_id, 1)
    result = {}
    for days in CONVERSION_DAYS:
        window = timedelta(days=days)
        in_time = case((first_orders.c.paid <= plus_days(session, joined.c.added, days), 1), else_=0)
        cohort, converted = session.execute(
            select(func.count(), func.coalesce(func.sum(in_time), 0))
            .select_from(joined.outerjoin(first_orders, first_orders.c.customer_id == joined.c.customer_id))
            .where(joined.c.added >= since, joined.c.added <= now - window)
        ).one()
        result[days] = Measure(
            ratio(int(converted), int(cohort)),
            int(converted),
            int(cohort),
            f"joined the pool since {since.date()} and at least {days} days ago; first order within {days} days",
        )
    return result


def _repurchase(session: Session, workspace_id: int, since: datetime, end: datetime, now: datetime) -> Measure:
    """Share of first-time buyers with a second private-domain order within 365 days (counted in SQL)."""
    first, second = _nth_orders(workspace_id, 1), _nth_orders(workspace_id, 2)
    pairs = first.outerjoin(second, second.c.customer_id == first.c.customer_id)
    year = timedelta(days=REPURCHASE_DAYS)
    within = case((second.c.paid <= plus_days(session, first.c.paid, REPURCHASE_DAYS), 1), else_=0)
    mature, again = session.execute(
        select(func.count(), func.coalesce(func.sum(within), 0))
        .select_from(pairs)
        .where(first.c.paid >= now - 2 * year, first.c.paid <= now - year)
    ).one()
    if mature:
        basis = "first order 365–730 days ago; second order within 365 days"
        return Measure(ratio(int(again), int(mature)), int(again), int(mature), basis)
    recent, again = session.execute(
        select(func.count(), func.count(second.c.paid))
        .select_from(pairs)
        .where(first.c.paid >= since, first.c.paid < end)
    ).one()
    basis = "no first order is 365 days old yet: first orders in the months, second order so far (a lower bound)"
    return Measure(ratio(int(again), int(recent)), int(again), int(recent), basis)


def _gap_days(session: Session, later: Any, earlier: Any) -> ColumnElement[Any]:
    """Days (fractional) from `earlier` to `later`, two UTC timestamp columns, on both databases."""
    if dialect(session) == "postgresql":
        return func.extract("epoch", later - earlier) / 86400
    return func.julianday(later) - func.julianday(earlier)


def weighted_median(counts: list[tuple[float, int]]) -> float | None:
    """The median of values given as (value, how many times), in any order; None when empty."""
    ordered = sorted((v, n) for v, n in counts if n > 0)
    total = sum(n for _, n in ordered)
    if not total:
        return None

    def nth(index: int) -> float:
        seen = 0
        for value, n in ordered:
            seen += n
            if index < seen:
                return value
        raise IndexError(index)  # pragma: no cover

    if total % 2:
        return nth(total // 2)
    return (nth(total // 2 - 1) + nth(total // 2)) / 2


def _cycle(session: Session, workspace_id: int, since: datetime, now: datetime) -> Measure:
    """Median days between a customer's consecutive private-domain orders (later order in the months).

    The gaps come from LAG() in SQL, grouped by hundredths of a day, so Python sees at most a few
    tens of thousands of rows whatever the order count."""
    ordered = (
        select(
            Order.paid_at.label("paid"),
            func.lag(Order.paid_at)
            .over(partition_by=Order.customer_id, order_by=(Order.paid_at, Order.id))
            .label("previous"),
        )
        .where(
            *_pool_orders(workspace_id),
            Order.paid_at >= since - timedelta(days=REPURCHASE_DAYS),
            Order.paid_at < now,
        )
        .subquery()
    )
    gap = _gap_days(session, ordered.c.paid, ordered.c.previous)
    gaps = (
        select(func.round(gap * 100).label("bucket"), gap.label("gap"))
        .where(ordered.c.previous.is_not(None), ordered.c.paid >= since)
        .subquery()
    )
    rows = session.execute(select(gaps.c.bucket, func.count(), func.sum(gaps.c.gap)).group_by(gaps.c.bucket)).all()
    median = weighted_median([(float(bucket) / 100, int(n)) for bucket, n, _ in rows])
    count = sum(int(n) for _, n, _ in rows)
    total = sum(float(s or 0) for _, _, s in rows)
    value = round(median, 1) if median is not None else None
    return Measure(value, total, count, "median gap between consecutive orders of a customer")


def _channel_cost(session: Session, actor: Actor, clock: Clock, first: date, last: date) -> int | None:
    """Channel cost over the brand-local days `first`..`last`, when the actor may read channels."""
    if not actor.can(Scope.ACQUISITION_READ):
        return None
    from siyu.channels.metrics import channel_report

    report = channel_report(session, actor=actor, date_from=first, date_to=last, clock=clock)
    return report.totals.cost_fen or None


def acquisition_cost(cost_fen: int | None, adds: int) -> int | None:
    """Cost per new member in whole fen (half up): channel cost ÷ customers whose first-ever edge
    fell in the same months. The channel report's own CAC divides by edge adds (a second staff
    edge or a re-add counts there), which is not a member."""
    if not cost_fen or adds <= 0:
        return None
    return (2 * cost_fen + adds) // (2 * adds)


def measure_history(session: Session, *, actor: Actor, clock: Clock) -> History:
    """The last complete months (up to 12, trimmed to when data starts) and the rates over them."""
    actor.require(Scope.ANALYTICS_READ)
    workspace_id = actor.workspace_id
    zone = workspace_zone(session, workspace_id)
    now = clock.now()
    today = brand_today(session, workspace_id, clock)
    this_month = today.replace(day=1)
    first = add_months(this_month, -HISTORY_MONTHS)
    data_month = _first_data_month(session, workspace_id, zone)
    if data_month is not None and data_month > first:
        first = data_month
    last = add_months(this_month, -1)
    months = (
        monthly_figures(session, workspace_id=workspace_id, zone=zone, first=first, last=last, now=now)
        if data_month is not None
        else []
    )
    since = utc_start(first, zone)
    end = utc_start(this_month, zone)
    (pool_now,) = _pool_at_instants(session, workspace_id, [now])
    buyers = session.scalar(
        select(func.count(func.distinct(Relationship.customer_id))).where(
            *live_edges(workspace_id),
            _open_at(now),
            select(Order.id).where(*_pool_orders(workspace_id), Order.customer_id == Relationship.customer_id).exists(),
        )
    )
    deletions = sum(m.deletions for m in months)
    opened = sum(m.open_at_start for m in months)
    adds = sum(m.adds for m in months)
    orders = sum(m.orders for m in months)
    gmv = sum(m.gmv_fen for m in months)
    pools = [m.pool_end for m in months]
    average_pool = sum(pools) / len(pools) if pools else 0
    yearly_orders = orders / len(months) * 12 if months else 0
    history = History(
        as_of=today,
        months=months,
        pool_now=pool_now,
        buyers_in_pool=int(buyers or 0),
        deletion_rate=Measure(
            ratio(deletions, opened),
            deletions,
            opened,
            "customers who left the pool (lost their last open friend edge) in the months ÷ pool at each month start",
        ),
        monthly_adds=Measure(
            ratio(adds, len(months)),
            adds,
            len(months),
            "customers whose first-ever friend edge falls in the month, per month",
        ),
        conversion=_conversion(session, workspace_id, since, now) if months else _empty_conversion(),
        repurchase_rate=_repurchase(session, workspace_id, since, end, now),
        cycle_days=_cycle(session, workspace_id, since, end) if months else Measure(None, 0, 0, "no months yet"),
        aov=Measure(ratio(gmv, orders), gmv, orders, "GMV ÷ orders in the months (fen)"),
        orders_per_member_year=Measure(
            ratio(yearly_orders, average_pool),
            yearly_orders,
            average_pool,
            "orders per month × 12 ÷ mean pool at month ends",
        ),
    )
    if months:
        history.channel_cost_fen = _channel_cost(session, actor, clock, first, this_month - timedelta(days=1))
        history.acquisition_cost_fen = acquisition_cost(history.channel_cost_fen, adds)
    if not months:
        history.notes.append("no complete month of data yet")
    return history


def _empty_conversion() -> dict[int, Measure]:
    return {days: Measure(None, 0, 0, "no months yet") for days in CONVERSION_DAYS}


def months_table(history: History) -> ReportTable:
    """The monthly history as a report table (exported from the fit page)."""
    table = ReportTable(
        "月度历史",
        columns(
            ("month", "月份", Kind.DATE),
            ("adds", "添加", Kind.INT),
            ("deletions", "删除（离开私域的人）", Kind.INT),
            ("open_at_start", "月初私域人数", Kind.INT),
            ("deletion_rate", "删除率", Kind.RATE),
            ("pool_end", "月末私域人数", Kind.INT),
            ("orders", "订单", Kind.INT),
            ("gmv", "GMV", Kind.FEN),
        ),
    )
    for m in history.months:
        table.rows.append(
            {
                "month": m.month,
                "adds": m.adds,
                "deletions": m.deletions,
                "open_at_start": m.open_at_start,
                "deletion_rate": m.deletion_rate,
                "pool_end": m.pool_end,
                "orders": m.orders,
                "gmv": m.gmv_fen,
            }
        )
    if history.months:
        table.footer = {
            "month": "合计",
            "adds": history.monthly_adds.numerator,
            "deletions": history.deletion_rate.numerator,
            "open_at_start": history.deletion_rate.denominator,
            "deletion_rate": history.deletion_rate.value,
            "pool_end": history.pool_now,
            "orders": history.orders,
            "gmv": history.gmv_fen,
        }
    return table


def history_json(history: History) -> dict[str, object]:
    """The history for the API: every measure with its numerator, denominator and basis."""

    def measure(m: Measure) -> dict[str, object]:
        return {"value": m.value, "numerator": m.numerator, "denominator": m.denominator, "basis": m.basis}

    return {
        "as_of": history.as_of.isoformat(),
        "pool_now": history.pool_now,
        "buyers_in_pool": history.buyers_in_pool,
        "months": [
            {
                "month": m.month.isoformat(),
                "adds": m.adds,
                "deletions": m.deletions,
                "open_at_start": m.open_at_start,
                "deletion_rate": m.deletion_rate,
                "pool_end": m.pool_end,
                "orders": m.orders,
                "gmv_fen": m.gmv_fen,
            }
            for m in history.months
        ],
        "deletion_rate": measure(history.deletion_rate),
        "monthly_adds": measure(history.monthly_adds),
        "conversion": {f"{days}d": measure(m) for days, m in history.conversion.items()},
        "repurchase_rate": measure(history.repurchase_rate),
        "cycle_days": measure(history.cycle_days),
        "aov_fen": measure(history.aov),
        "orders_per_member_year": measure(history.orders_per_member_year),
        "acquisition_cost_fen": history.acquisition_cost_fen,
        "channel_cost_fen": history.channel_cost_fen,
        "notes": history.notes,
    }
