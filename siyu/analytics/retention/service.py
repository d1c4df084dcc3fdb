"""Cohort retention: who came back, week by week or month by month, after they joined.

A cohort is the customers whose entry (first friend add, first pool order or first order) fell in
the same brand-local week or month of the report's period. Offset k is the k-th week/month after
the cohort's own (offset 0 is the cohort's bucket itself). Two measures:

- return: the customer did the return event (order, check-in, any event, or a named event type)
  on a brand-local day in offset k, on or after their entry day ("on"), or in offset k or any
  later one up to today ("on or after");
- friend: the customer still has an open friend edge (any staff) at the end of offset k (at
  "now" for the offset in progress).

Offsets that have not started yet (their first day is after today) are None, not 0. The offset
in progress (started, not finished) is flagged and left out of the average. The entry range starts
on the first day of a week/month, so the first cohort is never partial.
Entry days and activity days are computed in SQL (one row per customer; one per customer-day for
"on", the latest day per customer for "on or after"); the folding into offsets is done in Python.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from siyu.analytics import periods
from siyu.analytics.periods import (
    Grain,
    Period,
    add_months,
    brand_today,
    bucket_of,
    local_day,
    utc_start,
    workspace_zone,
)
from siyu.analytics.retention.schemas import (
    CHECKIN_TYPE,
    CohortBy,
    Criterion,
    Measure,
    RetentionConfig,
    ReturnEvent,
    parse_config,
)
from siyu.analytics.scope import counted_orders, merged_ids
from siyu.analytics.tables import Column, Kind, ReportTable, ratio
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.models import CustomerEvent, Order, Relationship

LIFECYCLE_EVENT_TYPES = frozenset(
    {
        "relationship.added",
        "relationship.removed",
        "group.joined",
        "group.left",
        "consent.changed",
        "welcome.sent",
        "welcome.failed",
        "order.refunded",
    }
)
"""Event types siyu writes to the timeline about the relationship itself (an add, a removal, a group
stay, a consent change, the automatic welcome, a refund): not a return, so `any_event` ignores them.
A report that names one of them explicitly (`return_event = event`) still counts it."""


@dataclass(frozen=True)
class CohortRow:
    """One cohort: its first day, its size, and per offset the customers retained and the rate.

    `in_progress` is the offset that has started but not finished today (its figure can still
    change; it is left out of the average), or None."""

    start: date
    size: int
    counts: list[int | None]
    rates: list[float | None]
    in_progress: int | None = None


@dataclass(frozen=True)
class CohortResult:
    config: RetentionConfig
    period: Period
    today: date
    cohorts: list[CohortRow]
    average: list[float | None]
    """Per offset: retained ÷ size summed over the cohorts that have finished it (size-weighted)."""

    @property
    def size(self) -> int:
        return sum(c.size for c in self.cohorts)

    @property
    def offsets(self) -> list[int]:
        return list(range(self.config.offsets + 1))


# --- calendar arithmetic ------------------------------------------------------------------------


def offset_start(cohort: date, k: int, grain: Grain) -> date:
    """The first day of offset `k` of the cohort starting on `cohort` (a Monday or a 1st)."""
    if grain == Grain.WEEK:
        return cohort + timedelta(days=7 * k)
    return add_months(cohort, k)


def offset_of(cohort: date, day: date, grain: Grain) -> int:
    """Which offset of the cohort `day` falls in (negative before the cohort)."""
    if grain == Grain.WEEK:
        return (bucket_of(day, grain) - cohort).days // 7
    return (day.year - cohort.year) * 12 + day.month - cohort.month


# --- SQL ----------------------------------------------------------------------------------------


@dataclass
class _Frame:
    session: Session
    workspace_id: int
    config: RetentionConfig
    period: Period
    today: date
    now: datetime

    def __post_init__(self) -> None:
        self.zone = workspace_zone(self.session, self.workspace_id)
        self.lo, self.hi = self.period.utc_bounds(self.zone)

    def day(self, column: Any) -> Any:
        return local_day(self.session, column, self.zone, self.now)


def _entry_query(f: _Frame) -> Select[int, datetime]:
    """(customer_id, first entry time) of customers whose entry falls in the period (merged
    customers left out by `NOT IN`, so the big tables are never joined to `customers`)."""
    if f.config.cohort == CohortBy.ADDED:
        first = func.min(Relationship.added_at)
        query = (
            select(Relationship.customer_id.label("customer_id"), first.label("entered_at"))
            .where(
                Relationship.workspace_id == f.workspace_id,
                Relationship.customer_id.not_in(merged_ids(f.workspace_id)),
            )
            .group_by(Relationship.customer_id)
        )
    else:
        first = func.min(Order.paid_at)
        query = (
            select(Order.customer_id.label("customer_id"), first.label("entered_at"))
            .where(*counted_orders(f.workspace_id, pool_only=False))
            .group_by(Order.customer_id)
        )
        if f.config.cohort == CohortBy.FIRST_POOL_ORDER:
            query = query.where(Order.pool_sequence == 1)
    return query.having(first >= f.lo, first < f.hi)


def _entries(f: _Frame) -> dict[int, date]:
    """Customer id → brand-local entry day, for the customers entering within the period."""
    sub = _entry_query(f).subquery()
    rows = f.session.execute(select(sub.c.customer_id, f.day(sub.c.entered_at)))
    return {cid: date.fromisoformat(day) for cid, day in rows}


def _activity_upper(f: _Frame) -> datetime:
    """Activity after this instant never changes the table: the end of the last reported offset, or now."""
    if f.config.criterion == Criterion.ON_OR_AFTER:
        return f.now
    last_cohort = bucket_of(f.period.end, f.config.grain)
    end = utc_start(offset_start(last_cohort, f.config.offsets + 1, f.config.grain), f.zone)
    return min(end, f.now)


def _activity(f: _Frame) -> Iterable[Any]:
    """(customer id, brand-local day) of the return event, for customers in the cohorts: every
    distinct day for "on", only the latest day per customer for "on or after" (all it needs)."""
    sub = _entry_query(f).subquery()
    upper = _activity_upper(f)
    latest = f.config.criterion == Criterion.ON_OR_AFTER
    if f.config.return_event == ReturnEvent.ORDER:
        day = f.day(Order.paid_at)
        query = (
            select(Order.customer_id, func.max(day) if latest else day)
            .join(sub, sub.c.customer_id == Order.customer_id)
            .where(
                *counted_orders(f.workspace_id, pool_only=False),
                Order.paid_at >= f.lo,
                Order.paid_at < upper,
            )
        )
    else:
        day = f.day(CustomerEvent.occurred_at)
        query = (
            select(CustomerEvent.customer_id, func.max(day) if latest else day)
            .join(sub, sub.c.customer_id == CustomerEvent.customer_id)
            .where(
                CustomerEvent.workspace_id == f.workspace_id,
                CustomerEvent.occurred_at >= f.lo,
                CustomerEvent.occurred_at < upper,
            )
        )
        if f.config.return_event == ReturnEvent.CHECKIN:
            query = query.where(CustomerEvent.type == CHECKIN_TYPE)
        elif f.config.return_event == ReturnEvent.EVENT:
            query = query.where(CustomerEvent.type == f.config.event_type)
        else:
            query = query.where(CustomerEvent.type.not_in(sorted(LIFECYCLE_EVENT_TYPES)))
    customer_id = query.selected_columns[0]
    query = query.group_by(customer_id) if latest else query.distinct()
    return f.session.execute(query).all()


def _edges(f: _Frame) -> Iterable[Any]:
    sub = _entry_query(f).subquery()
    query = (
        select(Relationship.customer_id, Relationship.added_at, Relationship.removed_at)
        .join(sub, sub.c.customer_id == Relationship.customer_id)
        .where(Relationship.workspace_id == f.workspace_id)
    )
    return f.session.execute(query).all()


# --- folding ------------------------------------------------------------------------------------


def _reached(f: _Frame, cohort: date) -> int:
    """How many offsets of the cohort have started by today (offset 0 always has)."""
    n = 0
    while n <= f.config.offsets and offset_start(cohort, n, f.config.grain) <= f.today:
        n += 1
    return n


def _retained(f: _Frame, entries: dict[int, date]) -> dict[int, set[int]]:
    """Customer id → the offsets (0…N) in which the customer counts as retained."""
    grain, last = f.config.grain, f.config.offsets
    out: dict[int, set[int]] = defaultdict(set)
    if f.config.measure == Measure.FRIEND:
        edges: dict[int, list[tuple[datetime, datetime | None]]] = defaultdict(list)
        for cid, added, removed in _edges(f):
            edges[cid].append((added, removed))
        instants: dict[tuple[date, int], datetime] = {}
        for cid, entered in entries.items():
            cohort = bucket_of(entered, grain)
            for k in range(_reached(f, cohort)):
                key = (cohort, k)
                if key not in instants:
                    instants[key] = min(utc_start(offset_start(cohort, k + 1, grain), f.zone), f.now)
                t = instants[key]
                if any(a <= t and (r is None or r > t) for a, r in edges[cid]):
                    out[cid].add(k)
        return out
    days: dict[str, date] = {}
    for cid, text in _activity(f):
        entry = entries.get(cid)
        if text is None:
            continue
        cached = days.get(text)
        day = cached if cached is not None else days.setdefault(text, date.fromisoformat(text))
        if entry is None or day < entry:
            continue
        k = offset_of(bucket_of(entry, grain), day, grain)
        if f.config.criterion == Criterion.ON_OR_AFTER:
            # "on or after": returning in offset k counts for every offset up to k
            for j in range(min(k, last) + 1):
                out[cid].add(j)
        elif k <= last:
            out[cid].add(k)
    return out


def _in_progress(f: _Frame, cohort: date) -> int | None:
    """The cohort's offset that has started but not finished by today, if it is one of the report's."""
    k = offset_of(cohort, f.today, f.config.grain)
    return k if 0 <= k <= f.config.offsets else None


def snap(period: Period, grain: Grain) -> Period:
    """The period with its start moved back to the first day of its week/month (whole first cohort)."""
    return Period(bucket_of(period.start, grain), period.end)


def _frame(
    session: Session, actor: Actor, config: dict[str, Any] | RetentionConfig, period: Period, clock: Clock
) -> _Frame:
    actor.require(Scope.ANALYTICS_READ)
    parsed = config if isinstance(config, RetentionConfig) else parse_config(config)
    today = brand_today(session, actor.workspace_id, clock)
    if period.end > today:
        raise InvalidInput("to cannot be after today", details={"field": "to"})
    return _Frame(session, actor.workspace_id, parsed, snap(period, parsed.grain), today, clock.now())


def cohort_table(
    session: Session, *, actor: Actor, config: dict[str, Any] | RetentionConfig, period: Period, clock: Clock
) -> CohortResult:
    """Cohorts entering within `period`, with retained counts and rates per offset.

    `config` is a definition (see `schemas.parse_config`; invalid → `InvalidInput` naming
    "config.<key>"). Needs analytics:read. Three queries at most: entries, then activity or edges.
    """
    f = _frame(session, actor, config, period, clock)
    grain = f.config.grain
    entries = _entries(f)
    retained = _retained(f, entries) if entries else {}
    sizes: dict[date, int] = defaultdict(int)
    counts: dict[date, list[int]] = {}
    for cid, entered in entries.items():
        cohort = bucket_of(entered, grain)
        sizes[cohort] += 1
        row = counts.setdefault(cohort, [0] * (f.config.offsets + 1))
        for k in retained.get(cid, ()):
            row[k] += 1
    rows: list[CohortRow] = []
    for cohort in f.period.buckets(grain):
        size = sizes.get(cohort, 0)
        reached = _reached(f, cohort)
        row_counts: list[int | None] = [
            (counts[cohort][k] if cohort in counts else 0) if k < reached else None for k in range(f.config.offsets + 1)
        ]
        rates = [None if n is None else ratio(n, size) for n in row_counts]
        rows.append(CohortRow(cohort, size, row_counts, rates, _in_progress(f, cohort)))
    average: list[float | None] = []
    for k in range(f.config.offsets + 1):
        done = [r for r in rows if r.counts[k] is not None and r.in_progress != k]
        average.append(ratio(sum(r.counts[k] or 0 for r in done), sum(r.size for r in done)))
    return CohortResult(f.config, f.period, f.today, rows, average)


def cell_members(
    session: Session,
    *,
    actor: Actor,
    config: dict[str, Any] | RetentionConfig,
    period: Period,
    clock: Clock,
    cohort: date,
    offset: int | None,
) -> list[int]:
    """The customers behind one cell, recomputed: cohort `cohort` retained in `offset`
    (None: the whole cohort). Unknown cohorts or offsets not reached → `InvalidInput`."""
    f = _frame(session, actor, config, period, clock)
    grain = f.config.grain
    if cohort not in f.period.buckets(grain):
        raise InvalidInput("cohort is not a cohort of this report", details={"field": "cohort"})
    if offset is not None and not 0 <= offset < _reached(f, cohort):
        raise InvalidInput("offset is outside the cohort's reached offsets", details={"field": "offset"})
    members = {cid: day for cid, day in _entries(f).items() if bucket_of(day, grain) == cohort}
    if offset is None or not members:
        return sorted(members)
    retained = _retained(f, members)
    return sorted(cid for cid in members if offset in retained.get(cid, ()))


# --- tables -------------------------------------------------------------------------------------


def offset_label(config: RetentionConfig, k: int, translate: Any = None) -> str:
    _ = translate or (lambda s: s)
    if not k:
        return str(_("进入当期"))
    return str(_("%(n)s 周后") if config.grain == Grain.WEEK else _("%(n)s 个月后")) % {"n": k}


def rate_table(result: CohortResult, translate: Any = None) -> ReportTable:
    """The heat-map: one row per cohort, its size, and the retention rate per offset; the average last."""
    _ = translate or (lambda s: s)
    cols = [Column("cohort", _("同期群"), Kind.DATE), Column("size", _("人数"), Kind.INT)]
    cols += [Column(f"o{k}", offset_label(result.config, k, translate), Kind.RATE) for k in result.offsets]
    rows = [{"cohort": r.start, "size": r.size} | {f"o{k}": r.rates[k] for k in result.offsets} for r in result.cohorts]
    footer = {"cohort": _("平均（按人数加权）"), "size": result.size} | {
        f"o{k}": result.average[k] for k in result.offsets
    }
    return ReportTable(_("留存率"), cols, rows, footer if result.cohorts else None)


def count_table(result: CohortResult, translate: Any = None) -> ReportTable:
    """The same grid with the number of customers retained per offset."""
    _ = translate or (lambda s: s)
    cols = [Column("cohort", _("同期群"), Kind.DATE), Column("size", _("人数"), Kind.INT)]
    cols += [Column(f"o{k}", offset_label(result.config, k, translate), Kind.INT) for k in result.offsets]
    rows = [
        {"cohort": r.start, "size": r.size} | {f"o{k}": r.counts[k] for k in result.offsets} for r in result.cohorts
    ]
    return ReportTable(_("留存人数"), cols, rows)


def result_json(result: CohortResult) -> dict[str, Any]:
    """The result for the API: rates as fractions, None where an offset has not been reached;
    per cohort `in_progress` is the offset still running today (null if none)."""
    return {
        "config": result.config.as_dict(),
        "from": result.period.start.isoformat(),
        "to": result.period.end.isoformat(),
        "today": result.today.isoformat(),
        "size": result.size,
        "offsets": result.offsets,
        "cohorts": [
            {
                "start": r.start.isoformat(),
                "size": r.size,
                "counts": r.counts,
                "rates": r.rates,
                "in_progress": r.in_progress,
            }
            for r in result.cohorts
        ],
        "average": result.average,
    }


DEFAULT_DAYS = {Grain.WEEK: 56, Grain.MONTH: 365}


def resolve_period(
    session: Session,
    *,
    actor: Actor,
    clock: Clock,
    config: RetentionConfig,
    date_from: str | date | None,
    date_to: str | date | None,
) -> Period:
    """The entry range asked for ("from"/"to" as text or dates; `InvalidInput` naming the field);
    defaults to the last 56 days (weekly) or 365 days (monthly) to today.

    The start (given or default) is moved back to the first day of its week/month, so the first
    cohort is a whole one ("from" = Wednesday 11-04 → Monday 11-02)."""
    period = periods.resolve_period(
        session, actor.workspace_id, clock, date_from, date_to, default_days=DEFAULT_DAYS[config.grain]
    )
    return snap(period, config.grain)


def cell_name(config: RetentionConfig, cohort: date, offset: int | None) -> str:
    """The default name of a cell's segment: "留存 2026-11-02 +1周"."""
    if offset is None:
        return f"留存 {cohort.isoformat()} 同期群"
    unit = "周" if config.grain == Grain.WEEK else "月"
    return f"留存 {cohort.isoformat()} +{offset}{unit}"


def cell_source(cohort: date, offset: int | None) -> str:
    return f"analytics:retention:{cohort.isoformat()}:{'all' if offset is None else offset}"
