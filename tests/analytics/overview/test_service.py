"""The overview's figures on the hand-built scenario (see scenario.py for the data)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from siyu.analytics.drill import segment_from_ids
from siyu.analytics.overview.drill import customers_behind
from siyu.analytics.overview.schemas import Filters, Metric, PoolCounts
from siyu.analytics.overview.service import overview
from siyu.analytics.periods import Grain, Period
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import Role
from tests.analytics.overview.scenario import PERIOD, build
from tests.factories import actor_for, make_workspace


def _run(db: Session, clock: FrozenClock, ws_actor, grain: Grain = Grain.DAY, **filters: int):  # type: ignore[no-untyped-def]
    return overview(db, actor=ws_actor, period=PERIOD, grain=grain, filters=Filters(**filters), clock=clock)


def test_stat_cards_and_changes(db: Session, clock: FrozenClock) -> None:
    w = build(db, clock, make_workspace(db, clock=clock))
    o = _run(db, clock, actor_for(w.ws, role=Role.ANALYST))
    values = {k: (s.value, s.previous) for k, s in o.stats.items()}
    assert values == {
        # pool at 11-23 00:00: c2, c7 (edges), c3 (SMS), c4 (group), c5 (OA) = 5;
        # at 11-16 00:00: c1, c7 (edges), c3 (SMS) = 3
        "pool": (5, 3),
        "adds": (2, 1),  # c2 11-17, c3 11-18 (c6 is merged) | c1 11-10
        "deleted_by_customer": (1, 0),  # c1 11-17
        "deleted_by_staff": (1, 0),  # c3 11-21
        "net_growth": (0, 1),  # 2 − 2 | 1 − 0
        # open edges at 11-16 00:00: c1, c7 → 2 deletions / 2; at 11-09: c7 → 0 / 1
        "deletion_rate": (1.0, 0.0),
        "first_orders": (2, 1),  # c1 11-18, c7 11-21 | c2 11-12
        "repurchases": (1, 0),  # c2 11-20
        "gmv": (28_000, 5_000),  # 10000 + (20000 − 5000) + 3000 | 5000; c4's refunded order left out
        "active": (4, 1),  # orders c1, c2, c7, c4 (refunded order and page.view) | c2
    }
    assert o.stats["pool"].change == pytest.approx(2 / 3)
    assert o.stats["deletion_rate"].change is None  # previous 0: no relative change
    assert o.pool == PoolCounts(pool=5, wecom=2, group=1, official_account=1, sms=1)
    assert o.previous_pool == PoolCounts(pool=3, wecom=2, group=0, official_account=0, sms=1)


def test_daily_trend(db: Session, clock: FrozenClock) -> None:
    w = build(db, clock, make_workspace(db, clock=clock))
    o = _run(db, clock, actor_for(w.ws, role=Role.ANALYST))
    rows = {r.bucket.day: r for r in o.trend}
    assert [r.bucket for r in o.trend] == PERIOD.each_day()
    # pool at each day's end: 16: c1 c3 c7; 17: c1 out, c2 in; 19: +c4; 20: +c5; 21: c3 keeps SMS
    assert [r.pool for r in o.trend] == [3, 3, 3, 4, 5, 5, 5]
    assert (rows[17].adds, rows[17].deleted_by_customer, rows[17].open_at_start) == (1, 1, 2)
    assert rows[17].deletion_rate == 0.5
    # open edges at 11-21 00:00: c7, c2, c3 = 3; c3 removed that day
    assert (rows[21].open_at_start, rows[21].deleted_by_staff, rows[21].deletion_rate) == (3, 1, pytest.approx(1 / 3))
    assert (rows[18].first_orders, rows[18].gmv_fen, rows[20].repurchases, rows[20].gmv_fen) == (1, 10_000, 1, 15_000)
    assert [r.active for r in o.trend] == [0, 0, 1, 1, 2, 1, 0]  # 18 c1; 19 c4; 20 c2, c4; 21 c7
    assert rows[16].deletion_rate == 0.0


def test_weekly_and_monthly_fold(db: Session, clock: FrozenClock) -> None:
    w = build(db, clock, make_workspace(db, clock=clock))
    analyst = actor_for(w.ws, role=Role.ANALYST)
    week = _run(db, clock, analyst, Grain.WEEK)
    assert len(week.trend) == 1
    row = week.trend[0]
    assert (row.bucket, row.pool, row.adds, row.open_at_start, row.deletion_rate, row.active) == (
        date(2026, 11, 16),
        5,
        2,
        2,
        1.0,
        4,
    )
    month = overview(
        db,
        actor=analyst,
        period=Period(date(2026, 10, 25), date(2026, 11, 22)),
        grain=Grain.MONTH,
        filters=Filters(),
        clock=clock,
    )
    # October bucket (25–31): c7 added 11-01 is November; pool at 10-31 end: c3's SMS (granted 11-01)
    # is not yet there → 0; November: adds c7, c1, c2, c3 = 4
    assert [(r.bucket, r.pool, r.adds) for r in month.trend] == [(date(2026, 10, 1), 0, 0), (date(2026, 11, 1), 5, 4)]
    assert month.trend[1].active == 4  # c1, c2 (11-12 and 11-20: counted once), c4, c7


def test_rates(db: Session, clock: FrozenClock) -> None:
    w = build(db, clock, make_workspace(db, clock=clock))
    rates = {r.key: r for r in _run(db, clock, actor_for(w.ws, role=Role.ANALYST)).rates}
    assert (rates["oa_open_rate"].numerator, rates["oa_open_rate"].denominator, rates["oa_open_rate"].value) == (
        1,
        2,
        0.5,
    )
    assert rates["oa_click_rate"].reported is False and rates["oa_click_rate"].value is None  # 未上报
    assert (rates["login_rate"].value, rates["login_rate"].change) == (0.5, None)  # s1 of s1, s2
    assert (rates["reply_rate"].numerator, rates["reply_rate"].denominator) == (1, 3)  # t1 on time; t2 late; t3 open
    # held at 11-23 00:00: c2, c7; c7's first order 11-21 → 1/2; previous: held c1, c7, none converted → 0
    conv = rates["conversion_rate"]
    assert (conv.numerator, conv.denominator, conv.value, conv.previous) == (1, 2, 0.5, 0.0)


def test_filters(db: Session, clock: FrozenClock) -> None:
    w = build(db, clock, make_workspace(db, clock=clock))
    admin = actor_for(w.ws, role=Role.ADMIN)

    def figures(**f: int) -> tuple[object, ...]:
        o = _run(db, clock, admin, Grain.DAY, **f)
        return o.pool.pool, o.stats["adds"].value, o.stats["first_orders"].value, o.stats["gmv"].value

    # staff s1: owned c1, c2 (pool: c2) ; s1's edges added: c2 ; first orders c1 ; gmv 10000 + 15000
    assert figures(staff_id=w.s1.id) == (1, 1, 1, 25_000)
    # store X = s2's customers c3, c7: pool c3 (SMS), c7 ; adds c3 ; first order c7 ¥30
    assert figures(store_id=w.store.id) == (2, 1, 1, 3_000)
    assert figures(tag_id=w.tag.id) == (2, 0, 0, 0)  # c4, c5
    assert figures(channel_id=w.channel.id) == (1, 1, 0, 15_000)  # c2 only
    segment = segment_from_ids(db, actor=admin, name="s", customer_ids=[w.c[1].id, w.c[2].id], source="t", clock=clock)
    assert figures(segment_id=segment.id) == (1, 1, 1, 25_000)
    with pytest.raises(InvalidInput) as exc:
        _run(db, clock, admin, tag_id=999_999)
    assert exc.value.details == {"field": "tag_id"}


def test_customers_behind_each_card(db: Session, clock: FrozenClock) -> None:
    w = build(db, clock, make_workspace(db, clock=clock))
    c = {i: x.id for i, x in w.c.items()}
    admin = actor_for(w.ws, role=Role.ANALYST)

    def ids(metric: Metric) -> list[int]:
        return customers_behind(db, actor=admin, metric=metric, period=PERIOD, filters=Filters(), clock=clock)

    assert ids(Metric.POOL) == sorted([c[2], c[3], c[4], c[5], c[7]])
    assert ids(Metric.ADDS) == sorted([c[2], c[3]])
    assert ids(Metric.DELETED_BY_CUSTOMER) == [c[1]]
    assert ids(Metric.DELETED_BY_STAFF) == [c[3]]
    assert ids(Metric.FIRST_ORDERS) == sorted([c[1], c[7]])
    assert ids(Metric.ACTIVE) == sorted([c[1], c[2], c[4], c[7]])
    assert ids(Metric.CONVERTED) == [c[7]]
    assert ids(Metric.SMS) == [c[3]]


def test_empty_workspace_gives_zeros_not_nan(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    o = _run(db, clock, actor_for(ws, role=Role.ANALYST), Grain.WEEK)
    assert o.empty
    assert o.stats["adds"].value == 0 and o.stats["deletion_rate"].value is None
    assert all(r.value is None for r in o.rates)


def test_staff_cannot_read(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    with pytest.raises(PermissionDenied):
        _run(db, clock, actor_for(ws, role=Role.STAFF))


def test_day_grain_limit_names_grain(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    with pytest.raises(InvalidInput) as exc:
        overview(
            db,
            actor=actor_for(ws, role=Role.ANALYST),
            period=Period(date(2026, 1, 1), date(2026, 11, 1)),
            grain=Grain.DAY,
            filters=Filters(),
            clock=clock,
        )
    assert exc.value.details == {"field": "grain"}


def test_fixed_number_of_queries(db: Session, clock: FrozenClock) -> None:
    # the same number of statements for an empty workspace and for the scenario
    def count(ws_actor) -> int:  # type: ignore[no-untyped-def]
        seen: list[str] = []

        def listen(*args: object) -> None:
            seen.append(str(args[2]))

        engine = db.get_bind()
        event.listen(engine, "before_cursor_execute", listen)
        try:
            _run(db, clock, ws_actor, Grain.WEEK)
        finally:
            event.remove(engine, "before_cursor_execute", listen)
        return len(seen)

    empty = count(actor_for(make_workspace(db, clock=clock), role=Role.ANALYST))
    w = build(db, clock, make_workspace(db, clock=clock))
    assert count(actor_for(w.ws, role=Role.ANALYST)) == empty
    assert empty <= 14
