"""Channel ROI: the channel report's figures plus N-day GMV per acquired customer and payback."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from siyu.analytics.performance.roi import Acquired, acquired_curves, channel_roi, payback_days, window_gmv
from siyu.analytics.settings import settings_for_update
from siyu.kit.clock import FrozenClock
from tests.analytics.performance.scenario import ROI_PERIOD, at, build_roi
from tests.factories import (
    actor_for,
    make_channel,
    make_customer,
    make_order,
    make_relationship,
    make_staff,
    make_workspace,
)


def test_roi_per_channel_on_the_hand_built_history(db: Session, clock: FrozenClock) -> None:
    # given the scenario of build_roi (figures worked out in its docstring)
    ws = make_workspace(db, clock=clock)
    s = build_roi(db, clock, ws)
    # when the ROI report runs over 2026-01-01 ~ 2026-11-23 without a gross margin
    result = channel_roi(db, actor=actor_for(ws), period=ROI_PERIOD, clock=clock)
    rows = {r.channel_id: r for r in result.channels}
    a, b = rows[s.a.id], rows[s.b.id]
    # then channel A: 2 adds × ¥10 = ¥20 cost, ¥10 per add; attributed GMV (30-day window) ¥100 + ¥100
    assert (a.adds, a.cost_fen, a.cac_fen, a.first_orders, a.gmv_fen) == (2, 2_000, 1_000, 2, 20_000)
    # ROI without margin = GMV / cost = 20,000 / 2,000
    assert a.roi == pytest.approx(10.0)
    assert a.acquired == 2
    assert a.mature == {30: 1, 90: 1, 365: 0}
    assert a.gmv_per_customer == {30: 10_000, 90: 15_000, 365: None}
    assert a.payback_days == 5
    # and B: c3 was in the pool before the period, so B acquired nobody
    assert b.acquired == 0
    assert b.gmv_per_customer == {30: None, 90: None, 365: None}
    assert b.payback_days is None
    assert result.margin_bp is None


def test_roi_uses_the_gross_margin_when_set(db: Session, clock: FrozenClock) -> None:
    # given a 40 % gross margin
    ws = make_workspace(db, clock=clock)
    s = build_roi(db, clock, ws)
    settings_for_update(db, ws.id, clock).gross_margin_bp = 4_000
    db.flush()
    # when the report runs
    result = channel_roi(db, actor=actor_for(ws), period=ROI_PERIOD, clock=clock)
    a = next(r for r in result.channels if r.channel_id == s.a.id)
    # then ROI = (20,000 × 0.4 − 2,000) / 2,000 = 3.0; payback still 5 days (¥100 × 0.4 = ¥40 ≥ 2 × ¥10)
    assert a.roi == pytest.approx(3.0)
    assert a.payback_days == 5
    assert result.margin_bp == 4_000


def test_payback_and_window_gmv_by_hand() -> None:
    t0 = at("2026-01-01T00:00")
    day = timedelta(days=1)
    people = [Acquired(1, t0, [(t0 + 2 * day, 1_000)]), Acquired(2, t0, [])]
    now = t0 + 10 * day
    # within 2 days nothing (the order is exactly 2 days after), within 3 days ¥10 over 2 customers
    assert window_gmv(people, 2, now) == (2, 0)
    assert window_gmv(people, 3, now) == (2, 1_000)
    # cost per add ¥5: 1,000 ≥ 2 × 500 at N = 3
    assert payback_days(people, 500, 1.0, now) == 3
    # ¥8 per add: the ¥10 never covers 2 × ¥8 within the 10 days there is data for → not yet
    assert payback_days(people, 800, 1.0, now) is None
    # with a 50 % margin ¥5 per add is not covered either (500 < 1,000)
    assert payback_days(people, 500, 0.5, now) is None
    # free channels pay back at once; no adds or no customers: nothing to say
    assert payback_days(people, 0, 1.0, now) == 0
    assert payback_days(people, None, 1.0, now) is None
    assert payback_days([], 500, 1.0, now) is None


def test_an_empty_workspace_has_no_channels(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    result = channel_roi(db, actor=actor_for(ws), period=ROI_PERIOD, clock=clock)
    assert result.channels == []


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 400 * 24), st.lists(st.tuples(st.integers(0, 400 * 24), st.integers(1, 10_000)))),
        max_size=6,
    ),
    st.sampled_from([1, 2, 29, 30, 90, 365]),
)
def test_curve_matches_the_definition(raw: list[tuple[int, list[tuple[int, int]]]], days: int) -> None:
    # given customers added some hours before now, with orders some hours after their add (not after now)
    now = at("2026-11-23T02:00")
    hour = timedelta(hours=1)
    people = []
    for n, (age_hours, orders) in enumerate(raw):
        added = now - age_hours * hour
        people.append(Acquired(n, added, [(added + h * hour, fen) for h, fen in orders if h <= age_hours]))
    # then the difference-array curve equals the definition evaluated directly
    mature = [p for p in people if p.added_at + timedelta(days=days) <= now]
    expected = sum(f for p in mature for paid, f in p.orders if paid < p.added_at + timedelta(days=days))
    assert window_gmv(people, days, now) == (len(mature), expected)


def test_grouped_sql_curve_is_exact_at_day_boundaries(db: Session, clock: FrozenClock) -> None:
    # given one channel: cA added exactly 30 days before now (age 30), cB 1 µs later (age 29)
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    channel = make_channel(db, workspace=ws, clock=clock)
    staff = make_staff(db, workspace=ws, clock=clock)
    now, day, micro = clock.now(), timedelta(days=1), timedelta(microseconds=1)
    ca, cb = (make_customer(db, actor=actor, clock=clock, name=n).customer for n in ("A", "B"))
    make_relationship(db, customer=ca, staff=staff, channel=channel, added_at=now - 30 * day)
    make_relationship(db, customer=cb, staff=staff, channel=channel, added_at=now - 30 * day + micro)
    # cA orders ¥10 exactly 2 days after the add and ¥20 1 µs before day 3 (both offset 2: count from
    # N = 3), and ¥40 exactly 30 days after (offset 30, not < age 30: never counted)
    added = now - 30 * day
    for paid, fen in ((added + 2 * day, 1_000), (added + 3 * day - micro, 2_000), (added + 30 * day, 4_000)):
        make_order(db, customer=ca, paid_at=paid, total_fen=fen)
    db.flush()
    # when the curve is grouped in SQL
    groups = acquired_curves(db, ws.id, ROI_PERIOD, now)[channel.id]
    series = groups.curve()
    # then (mature customers, GMV within N days) by hand: N=2 → (2, 0); N=3 → (2, ¥30);
    # N=29 → (2, ¥30); N=30 → only cA is 30 days old → (1, ¥30); N=31 → none
    assert groups.acquired == 2
    assert [series.at(n) for n in (2, 3, 29, 30, 31)] == [(2, 0), (2, 3_000), (2, 3_000), (1, 3_000), (0, 0)]
    # and the Python definition over the same rows agrees
    people = [
        Acquired(ca.id, added, [(added + 2 * day, 1_000), (added + 3 * day - micro, 2_000), (added + 30 * day, 4_000)]),
        Acquired(cb.id, added + micro),
    ]
    assert [window_gmv(people, n, now) for n in (2, 3, 29, 30, 31)] == [series.at(n) for n in (2, 3, 29, 30, 31)]
