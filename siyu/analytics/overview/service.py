"""The overview dashboard (经营概览): pool, growth, orders and activity for a period, with trends.

A fixed number of queries whatever the data size: per-day counts in SQL over the period and the
previous one (folded into buckets in Python), distinct counts grouped by bucket in SQL, the pool
at every bucket end in one pass over the reachability intervals, and the three rates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, distinct, func, literal_column, or_, select, union_all
from sqlalchemy.orm import Session

from siyu.analytics.overview import sql
from siyu.analytics.overview.rates import three_rates
from siyu.analytics.overview.schemas import Filters, Overview, PoolCounts, Stat, TrendRow
from siyu.analytics.overview.scope import Scope, build_scope
from siyu.analytics.periods import Grain, Period, bucket_of, local_day, workspace_zone
from siyu.analytics.scope import NET_FEN
from siyu.analytics.tables import change, ratio
from siyu.auth.permissions import Actor
from siyu.auth.permissions import Scope as Perm
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.models import Order, Relationship, RemovedBy

_FOREVER = "9999-12-31"
"""The stop day of a span still open (ISO text compares as dates)."""

MAX_DAY_BUCKETS = 186
"""Day grain covers at most about six months (the pool is computed at every bucket end)."""


TAKEOVER_CHANNEL = "transfer"
"""`Relationship.channel` of the edge a WeCom transfer opens (siyu.integrations.wecom.sync.transfers)."""


def _real_add() -> ColumnElement[bool]:
    """Edges that count as adds: not the takeover side of a transfer (the customer was held already)."""
    return or_(Relationship.channel.is_(None), Relationship.channel != TAKEOVER_CHANNEL)


def _real_deletion() -> ColumnElement[bool]:
    """Removed edges that count as deletions: not handed to another staff member (RemovedBy.TRANSFERRED)."""
    return or_(Relationship.removed_by.is_(None), Relationship.removed_by != RemovedBy.TRANSFERRED)


def parse_grain(text: str | None) -> Grain:
    """ "day" | "week" | "month" (blank: day); `InvalidInput` on "grain" otherwise."""
    try:
        return Grain((text or "day").strip() or "day")
    except ValueError:
        raise InvalidInput("grain must be day, week or month", details={"field": "grain"}) from None


def check_grain(period: Period, grain: Grain) -> None:
    if grain == Grain.DAY and period.days > MAX_DAY_BUCKETS:
        raise InvalidInput(
            f"day grain covers at most {MAX_DAY_BUCKETS} days; choose week or month", details={"field": "grain"}
        )


def bucket_case(day: Any, buckets: list[date]) -> ColumnElement[Any]:
    """SQL mapping an ISO day text to the ISO start of its bucket (days on or after buckets[0]).

    Always a CASE, never a bare constant: PostgreSQL refuses to group by a constant.
    """
    bounds = [*buckets[1:], date.max]

    def text(d: date) -> ColumnElement[Any]:
        return literal_column(f"'{d.isoformat()}'")

    return case(*[(day < text(nxt), text(b)) for b, nxt in zip(buckets, bounds, strict=True)])


def _bucket_ends(period: Period, grain: Grain) -> list[date]:
    """The last day of each bucket of the period (clipped to the period's end)."""
    buckets = period.buckets(grain)
    return [min(period.end, nxt - timedelta(days=1)) if nxt else period.end for nxt in [*buckets[1:], None]]


def pool_at(
    session: Session, scope: Scope, period: Period, ends: list[date], day: Callable[[Any], ColumnElement[str]]
) -> tuple[PoolCounts, list[PoolCounts]]:
    """The pool and its channels just before the period starts and at the end of each day in `ends`.

    One query: per customer (kind 0) and per customer and channel kind, the reachable spans as
    brand-local days [first day, day it stopped) are merged into islands (gaps and islands over a
    window); the query returns how many islands were open the day before the period and how many
    start and stop on each day of the period. The pool at each day's end is then the running sum.
    Open at the end of day D (just before the next midnight) ⇔ first day ≤ D < stop day.
    """
    iv = sql.pool_intervals(scope)
    before = (period.start - timedelta(days=1)).isoformat()
    lo, hi = period.start.isoformat(), period.end.isoformat()

    def text(value: str) -> ColumnElement[str]:
        return literal_column(f"'{value}'")

    start = day(iv.c.start)
    stop = func.coalesce(day(iv.c.stop), text(_FOREVER))
    useful = and_(start <= text(hi), stop >= text(lo), stop > start)
    each_kind = select(iv.c.cid, iv.c.kind, start.label("s"), stop.label("e")).where(useful)
    any_kind = select(iv.c.cid, literal_column("0"), start, stop).where(useful)
    spans = union_all(each_kind, any_kind).subquery("spans")
    # one window pass, ordered by first day: a span starts an island when it begins after every
    # earlier span stopped; it ends one when the next span begins after every span so far stopped
    # (the island's stop day is then the largest stop so far). Identical spans give one island.
    key, order = (spans.c.cid, spans.c.kind), (spans.c.s, spans.c.e)
    reach_before = func.max(spans.c.e).over(partition_by=key, order_by=order, rows=(None, -1))
    reach = func.max(spans.c.e).over(partition_by=key, order_by=order, rows=(None, 0))
    next_start = func.lead(spans.c.s).over(partition_by=key, order_by=order)
    island_start = case((or_(reach_before.is_(None), spans.c.s > reach_before), spans.c.s))
    island_stop = case((or_(next_start.is_(None), next_start > reach), reach))
    marked = select(
        spans.c.kind,
        case((island_start < text(lo), text(before)), else_=island_start).label("starts"),
        case((island_stop <= text(hi), island_stop)).label("stops"),
    ).subquery("marked")
    change: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for kind, starts, stops, n in session.execute(
        select(marked.c.kind, marked.c.starts, marked.c.stops, func.count())
        .where(or_(marked.c.starts.is_not(None), marked.c.stops.is_not(None)))
        .group_by(marked.c.kind, marked.c.starts, marked.c.stops)
    ):
        if starts is not None:
            change[int(kind)][str(starts)] += int(n)
        if stops is not None:
            change[int(kind)][str(stops)] -= int(n)

    def counts(kind: int) -> list[int]:
        per_day = change.get(kind, {})
        running = per_day.get(before, 0)
        out = [running]
        wanted = set(ends)
        for one in period.each_day():
            running += per_day.get(one.isoformat(), 0)
            if one in wanted:
                out.append(running)
        return out

    columns = {k: counts(k) for k in (0, sql.KIND_WECOM, sql.KIND_GROUP, sql.KIND_OFFICIAL_ACCOUNT, sql.KIND_SMS)}
    pools = [
        PoolCounts(
            pool=columns[0][i],
            wecom=columns[sql.KIND_WECOM][i],
            group=columns[sql.KIND_GROUP][i],
            official_account=columns[sql.KIND_OFFICIAL_ACCOUNT][i],
            sms=columns[sql.KIND_SMS][i],
        )
        for i in range(len(ends) + 1)
    ]
    return pools[0], pools[1:]


def _stat(
    key: str,
    cur: float | int | None,
    prev: float | int | None,
    kind: str = "int",
    *,
    customers: tuple[int | None, int | None] = (None, None),
) -> Stat:
    return Stat(
        key=key,
        value=cur,
        previous=prev,
        change=change(cur, prev),
        kind=kind,
        customers=customers[0],
        previous_customers=customers[1],
    )


def customers_per_card(
    session: Session, scope: Scope, prev_lo: datetime, cur_lo: datetime, cur_hi: datetime
) -> dict[tuple[str, int], int]:
    """{(card, 1 current / 0 previous): distinct customers} for the edge and order cards (one query).

    The cards count friend edges and orders; a customer with two edges added (or two repurchases)
    is one member of the drill-down's segment, so the page shows this figure beside the count.
    """
    edge = scope.edge_condition()
    removed_by_customer = Relationship.removed_by == RemovedBy.CUSTOMER
    added, deleted = _real_add(), _real_deletion()

    def flag(column: Any) -> ColumnElement[Any]:
        return case((column < sql.at(cur_lo), literal_column("0")), else_=literal_column("1"))

    def rows(card: str, cid: Any, when: Any, *where: Any) -> Any:
        return select(literal_column(f"'{card}'").label("card"), flag(when).label("f"), cid.label("cid")).where(
            *where, sql.in_range(when, prev_lo, cur_hi)
        )

    orders = sql.counted_orders(scope)
    parts = union_all(
        rows("adds", Relationship.customer_id, Relationship.added_at, edge, added),
        rows("deleted_by_customer", Relationship.customer_id, Relationship.removed_at, edge, removed_by_customer),
        rows(
            "deleted_by_staff",
            Relationship.customer_id,
            Relationship.removed_at,
            edge,
            deleted,
            or_(~removed_by_customer, Relationship.removed_by.is_(None)),
        ),
        rows("first_orders", Order.customer_id, Order.paid_at, *orders, Order.pool_sequence == 1),
        rows("repurchases", Order.customer_id, Order.paid_at, *orders, Order.pool_sequence >= 2),
    ).subquery("cards")
    return {
        (str(card), int(f)): int(n)
        for card, f, n in session.execute(
            select(parts.c.card, parts.c.f, func.count(distinct(parts.c.cid))).group_by(parts.c.card, parts.c.f)
        )
    }


def overview(
    session: Session,
    *,
    actor: Actor,
    period: Period,
    grain: Grain,
    filters: Filters,
    clock: Clock,
) -> Overview:
    """Every figure of the dashboard for `period`, compared with the period just before it."""
    actor.require(Perm.ANALYTICS_READ)
    check_grain(period, grain)
    ws = actor.workspace_id
    zone = workspace_zone(session, ws)
    scope = build_scope(session, actor=actor, filters=filters, clock=clock)
    previous = period.previous()
    span_lo, _ = previous.utc_bounds(zone)
    cur_lo, cur_hi = period.utc_bounds(zone)
    now = clock.now()

    def day(column: Any) -> ColumnElement[str]:
        return local_day(session, column, zone, now)

    # friend edges: adds and removals per day over both periods, and edges open at the span's start
    edge = scope.edge_condition()
    add_day = day(Relationship.added_at)
    adds: dict[date, int] = defaultdict(int)
    for d, n in session.execute(
        select(add_day, func.count())
        .where(edge, _real_add(), sql.in_range(Relationship.added_at, span_lo, cur_hi))
        .group_by(add_day)
    ):
        adds[date.fromisoformat(d)] += int(n)
    del_day = day(Relationship.removed_at)
    by_customer: dict[date, int] = defaultdict(int)
    by_staff: dict[date, int] = defaultdict(int)
    for d, who, n in session.execute(
        select(del_day, Relationship.removed_by, func.count())
        .where(edge, _real_deletion(), sql.in_range(Relationship.removed_at, span_lo, cur_hi))
        .group_by(del_day, Relationship.removed_by)
    ):
        target = by_customer if who == RemovedBy.CUSTOMER else by_staff
        target[date.fromisoformat(d)] += int(n)
    open_at_span = int(
        session.scalar(
            select(func.count()).where(edge, sql.open_at(Relationship.added_at, Relationship.removed_at, span_lo))
        )
        or 0
    )

    # private-domain orders per day
    pay_day = day(Order.paid_at)
    first: dict[date, int] = defaultdict(int)
    repeat: dict[date, int] = defaultdict(int)
    gmv: dict[date, int] = defaultdict(int)
    for d, n_first, n_repeat, fen in session.execute(
        select(
            pay_day,
            func.sum(case((Order.pool_sequence == 1, 1), else_=0)),
            func.sum(case((Order.pool_sequence >= 2, 1), else_=0)),
            func.sum(NET_FEN),
        )
        .where(*sql.counted_orders(scope), sql.in_range(Order.paid_at, span_lo, cur_hi))
        .group_by(pay_day)
    ):
        key = date.fromisoformat(d)
        first[key], repeat[key], gmv[key] = int(n_first or 0), int(n_repeat or 0), int(fen or 0)

    # active members: distinct per bucket, and per period
    act = sql.activity(session, scope, span_lo, cur_hi, day)
    buckets = period.buckets(grain)
    bucket = act.c.day if grain == Grain.DAY else bucket_case(act.c.day, buckets)
    active_by_bucket = {
        date.fromisoformat(b): int(n)
        for b, n in session.execute(
            select(bucket, func.count(distinct(act.c.cid)))
            .where(act.c.day >= literal_column(f"'{period.start.isoformat()}'"))
            .group_by(bucket)
        )
    }
    which = case(
        (act.c.day < literal_column(f"'{period.start.isoformat()}'"), literal_column("0")), else_=literal_column("1")
    )
    active_total = {
        int(w): int(n) for w, n in session.execute(select(which, func.count(distinct(act.c.cid))).group_by(which))
    }

    # the pool at the previous period's end and at every bucket end
    ends = _bucket_ends(period, grain)
    previous_pool, bucket_pools = pool_at(session, scope, period, ends, day)

    # distinct customers behind the count cards (what their drill-downs hold), both periods
    customers = customers_per_card(session, scope, span_lo, cur_lo, cur_hi)

    # trend rows
    trend: list[TrendRow] = []
    open_now = open_at_span + sum(adds[d] - by_customer[d] - by_staff[d] for d in previous.each_day())
    open_at_period_start = open_now
    per_bucket: dict[date, list[date]] = defaultdict(list)
    for one_day in period.each_day():
        per_bucket[bucket_of(one_day, grain)].append(one_day)
    for b, last, pool in zip(buckets, ends, bucket_pools, strict=True):
        days = per_bucket[b]
        a = sum(adds[d] for d in days)
        dc = sum(by_customer[d] for d in days)
        ds = sum(by_staff[d] for d in days)
        trend.append(
            TrendRow(
                bucket=b,
                start=max(b, period.start),
                end=last,
                pool=pool.pool,
                adds=a,
                deleted_by_customer=dc,
                deleted_by_staff=ds,
                net_growth=a - dc - ds,
                open_at_start=open_now,
                deletion_rate=ratio(dc + ds, open_now),
                first_orders=sum(first[d] for d in days),
                repurchases=sum(repeat[d] for d in days),
                gmv_fen=sum(gmv[d] for d in days),
                active=active_by_bucket.get(b, 0),
            )
        )
        open_now += a - dc - ds

    def total(counts: dict[date, int], p: Period) -> int:
        return sum(counts[d] for d in p.each_day())

    cur_del = total(by_customer, period) + total(by_staff, period)
    prev_del = total(by_customer, previous) + total(by_staff, previous)
    pool_now = bucket_pools[-1]

    def cust(key: str) -> tuple[int | None, int | None]:
        return customers.get((key, 1), 0), customers.get((key, 0), 0)

    stats = [
        _stat("pool", pool_now.pool, previous_pool.pool),
        _stat("adds", total(adds, period), total(adds, previous), customers=cust("adds")),
        _stat(
            "deleted_by_customer",
            total(by_customer, period),
            total(by_customer, previous),
            customers=cust("deleted_by_customer"),
        ),
        _stat(
            "deleted_by_staff", total(by_staff, period), total(by_staff, previous), customers=cust("deleted_by_staff")
        ),
        _stat("net_growth", total(adds, period) - cur_del, total(adds, previous) - prev_del),
        _stat("deletion_rate", ratio(cur_del, open_at_period_start), ratio(prev_del, open_at_span), "rate"),
        _stat("first_orders", total(first, period), total(first, previous), customers=cust("first_orders")),
        _stat("repurchases", total(repeat, period), total(repeat, previous), customers=cust("repurchases")),
        _stat("gmv", total(gmv, period), total(gmv, previous), "fen"),
        _stat("active", active_total.get(1, 0), active_total.get(0, 0)),
    ]
    rates = three_rates(session, scope, period=period, zone=zone, now=now)
    return Overview(
        period=period,
        grain=grain,
        filters=filters,
        pool=pool_now,
        previous_pool=previous_pool,
        stats={s.key: s for s in stats},
        trend=trend,
        rates=rates,
    )
