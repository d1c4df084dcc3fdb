"""Channel ROI: the channel report's figures plus N-day GMV per acquired customer and payback."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from siyu.analytics.performance.roi import (
    Acquired,
    acquired_curves,
    acquired_customers,
    channel_roi,
    payback_days,
    window_gmv,
)
from siyu.analytics.settings import settings_for_update
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import NotFound
from siyu.models import CostModel
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
    # cost per acquired customer: ¥20 / 2 acquired = ¥10 (here the same as per add)
    assert a.cost_per_acquired_fen == 1_000
    assert a.mature == {30: 1, 90: 1, 365: 0}
    assert a.gmv_per_customer == {30: 10_000, 90: 15_000, 365: None}
    assert a.payback_days == 5
    # and B: c3 was in the pool before the period, so B acquired nobody
    assert b.acquired == 0
    assert b.cost_per_acquired_fen is None
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
    # then ROI = (20,000 × 0.4 − 2,000) / 2,000 = 3.0; payback still 5 days: at N = 5 the two mature
    # customers' ¥100 × 0.4 = ¥40, ¥20 each ≥ ¥10 per acquired customer
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
    # cost ¥10 for the 2 people = ¥5 per acquired customer: ¥10 / 2 = ¥5 ≥ ¥5 at N = 3
    assert payback_days(people, 1_000, 1.0, now) == 3
    # ¥16 (¥8 each): the ¥10 never covers it within the 10 days there is data for → not yet
    assert payback_days(people, 1_600, 1.0, now) is None
    # with a 50 % margin ¥5 each is not covered either (¥10 × 0.5 / 2 = ¥2.50 < ¥5)
    assert payback_days(people, 1_000, 0.5, now) is None
    # free channels pay back at once; nobody acquired: nothing to say
    assert payback_days(people, 0, 1.0, now) == 0
    assert payback_days([], 1_000, 1.0, now) is None


def test_payback_counts_cost_per_acquired_customer_not_per_add(db: Session, clock: FrozenClock) -> None:
    # given a channel at ¥10 per add with two adds in the period: x (first edge ever) and y (in the
    # pool since 2025 through an edge without a channel). The channel report credits both (first
    # touch = earliest edge *with a channel*) → cost ¥20, ¥10 per add; but only x is acquired
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    staff = make_staff(db, workspace=ws, clock=clock)
    paid = make_channel(db, workspace=ws, clock=clock, name="付费", cost_model=CostModel.CPA, cpa_fen=1_000)
    x, y = (make_customer(db, actor=actor, clock=clock, name=n).customer for n in ("X", "Y"))
    added = at("2026-11-01T02:00")
    make_relationship(db, customer=x, staff=staff, channel=paid, added_at=added)
    make_relationship(db, customer=y, staff=staff, added_at=at("2025-05-01T02:00"))
    make_relationship(db, customer=y, staff=staff, channel=paid, added_at=added)
    # x orders ¥15 two days after the add (counts from N = 3) and ¥10 six days after (from N = 7)
    make_order(db, customer=x, paid_at=added + timedelta(days=2), total_fen=1_500)
    make_order(db, customer=x, paid_at=added + timedelta(days=6), total_fen=1_000)
    db.flush()
    # when the report runs
    result = channel_roi(db, actor=actor, period=ROI_PERIOD, clock=clock)
    row = next(r for r in result.channels if r.channel_id == paid.id)
    # then cost per add ¥10 but per acquired customer ¥20 / 1 = ¥20
    assert (row.adds, row.cost_fen, row.cac_fen, row.acquired, row.cost_per_acquired_fen) == (2, 2_000, 1_000, 1, 2_000)
    # payback against ¥20: N = 3..6 only ¥15 < ¥20; N = 7 ¥25 ≥ ¥20 → 7 days (per add it would be 3)
    assert row.payback_days == 7


def test_acquired_customers_of_a_channel(db: Session, clock: FrozenClock) -> None:
    # given build_roi: A acquired c1 and c2; B re-added c3 (in the pool since 2025), so nobody
    ws = make_workspace(db, clock=clock)
    s = build_roi(db, clock, ws)
    actor = actor_for(ws)
    # then the drill-down's customers are the 新获客户 cells'
    assert acquired_customers(db, actor=actor, period=ROI_PERIOD, channel_id=s.a.id) == sorted([s.c1.id, s.c2.id])
    assert acquired_customers(db, actor=actor, period=ROI_PERIOD, channel_id=s.b.id) == []
    # an unknown channel (or another workspace's) names the field
    other = make_channel(db, workspace=make_workspace(db, clock=clock), clock=clock)
    with pytest.raises(NotFound) as missing:
        acquired_customers(db, actor=actor, period=ROI_PERIOD, channel_id=other.id)
    assert missing.value.details == {"field": "channel_id"}


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
