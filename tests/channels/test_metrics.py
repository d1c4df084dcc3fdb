"""Channel metrics against values computed by hand for the scenario in scenario.py."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from siyu.channels.attribution import Attribution
from siyu.channels.metrics import ChannelMetrics, ChannelReport, channel_report
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import Role
from tests.channels.factories import add_edge, new_customer
from tests.channels.scenario import FROM, TO, Scenario, build, local
from tests.factories import actor_for, make_channel, make_staff, make_workspace


def _report(db: Session, clock: FrozenClock, s: Scenario, model: Attribution, **kw: Any) -> ChannelReport:
    return channel_report(db, actor=s.actor, date_from=FROM, date_to=TO, clock=clock, attribution=model, **kw)


def _by_name(report: ChannelReport) -> dict[str, ChannelMetrics]:
    return {row.channel.name: row.totals for row in report.channels}


def _metrics(**values: Any) -> ChannelMetrics:
    """A ChannelMetrics with zeros/None for everything not given."""
    base: dict[str, Any] = {name: 0 for name in ChannelMetrics.__dataclass_fields__}
    for name in (
        "exposures",
        "add_rate",
        "cac_fen",
        "deletion_rate_7d",
        "customer_deletion_rate_7d",
        "deletion_rate_30d",
        "customer_deletion_rate_30d",
        "roi",
    ):
        base[name] = None
    return ChannelMetrics(**(base | values))


PACKAGE_CARD = _metrics(
    exposures=1000,
    scans=4,
    clicks=1,
    adds=2,
    add_rate=2 / 5,
    cost_fen=15_000,
    entry_cost_fen=15_000,
    cac_fen=7_500,
    matured_7d=2,
    deleted_7d=1,
    deleted_by_customer_7d=1,
    deletion_rate_7d=0.5,
    customer_deletion_rate_7d=0.5,
    matured_30d=2,
    deleted_30d=2,
    deleted_by_customer_30d=1,
    deletion_rate_30d=1.0,
    customer_deletion_rate_30d=0.5,
    first_orders=2,
    gmv_fen=30_000,  # c1 ¥100 + ¥50 (both within 30 days), c2 ¥200 - ¥50 refunded
    roi=2.0,
)


def test_first_touch_credits_each_customer_once_to_their_earliest_channel(db: Session, clock: FrozenClock) -> None:
    # given the scenario
    s = build(db, clock)
    # when the range is reported first-touch with a 30-day window
    report = _report(db, clock, s, Attribution.FIRST_TOUCH)
    rows = _by_name(report)
    # then 包裹卡 has c1 and c2 (c6 came first through it, but before the range)
    assert rows["包裹卡"] == PACKAGE_CARD
    # KOL has c3 (its later CPS add does not count) and c5 (the add without channel is ignored)
    assert rows["KOL 小红书"] == _metrics(
        scans=2,
        adds=2,
        add_rate=1.0,
        cost_fen=3_000 + 2 * 2_000,
        entry_cost_fen=3_000,
        cpa_cost_fen=4_000,
        cac_fen=3_500,
        matured_7d=2,
        matured_30d=1,  # c5's add (10-28 UTC) is younger than 30 days at 11-23
        deletion_rate_7d=0.0,
        customer_deletion_rate_7d=0.0,
        deletion_rate_30d=0.0,
        customer_deletion_rate_30d=0.0,
        first_orders=2,
        gmv_fen=30_004 + 8_000,
        roi=38_004 / 7_000,
    )
    # CPS has c4 only, who had bought before the add: no first order, no GMV, no commission
    assert rows["淘宝 CPS"] == _metrics(
        clicks=3,
        adds=1,
        add_rate=1 / 3,
        cac_fen=0,
        matured_7d=1,
        matured_30d=1,
        deletion_rate_7d=0.0,
        customer_deletion_rate_7d=0.0,
        deletion_rate_30d=0.0,
        customer_deletion_rate_30d=0.0,
    )
    # and the total row adds the counts up and derives its own rates
    assert report.totals == _metrics(
        exposures=1000,
        scans=6,
        clicks=4,
        adds=5,
        add_rate=0.5,
        cost_fen=22_000,
        entry_cost_fen=18_000,
        cpa_cost_fen=4_000,
        cac_fen=4_400,
        matured_7d=5,
        deleted_7d=1,
        deleted_by_customer_7d=1,
        deletion_rate_7d=0.2,
        customer_deletion_rate_7d=0.2,
        matured_30d=4,
        deleted_30d=2,
        deleted_by_customer_30d=1,
        deletion_rate_30d=0.5,
        customer_deletion_rate_30d=0.25,
        first_orders=4,
        gmv_fen=68_004,
        roi=68_004 / 22_000,
    )


def test_last_touch_counts_every_add_and_gives_each_order_to_the_latest_add(db: Session, clock: FrozenClock) -> None:
    s = build(db, clock)
    report = _report(db, clock, s, Attribution.LAST_TOUCH)
    rows = _by_name(report)
    # 包裹卡 is the same: its customers have no other add in the range
    assert rows["包裹卡"] == PACKAGE_CARD
    # KOL: c3, c5 and c6 (c6's earlier 包裹卡 add is outside the range); c3's order went to CPS
    assert rows["KOL 小红书"] == _metrics(
        scans=2,
        adds=3,
        add_rate=1.5,
        cost_fen=3_000 + 3 * 2_000,
        entry_cost_fen=3_000,
        cpa_cost_fen=6_000,
        cac_fen=3_000,
        matured_7d=3,
        matured_30d=1,
        deletion_rate_7d=0.0,
        customer_deletion_rate_7d=0.0,
        deletion_rate_30d=0.0,
        customer_deletion_rate_30d=0.0,
        first_orders=2,
        gmv_fen=8_000 + 6_000,
        roi=14_000 / 9_000,
    )
    # CPS: c3's order (¥300.04 × 12.5 % = ¥37.505 → ¥37.51, half up) and c4 (an earlier buyer, no GMV)
    assert rows["淘宝 CPS"] == _metrics(
        clicks=3,
        adds=2,
        add_rate=2 / 3,
        cost_fen=3_751,
        cps_cost_fen=3_751,
        cac_fen=1_876,  # 3,751 / 2 = 1,875.5 → half up
        matured_7d=2,
        matured_30d=1,  # c3's CPS add (10-24 02:30 UTC) is 30 minutes short of 30 days old
        deletion_rate_7d=0.0,
        customer_deletion_rate_7d=0.0,
        deletion_rate_30d=0.0,
        customer_deletion_rate_30d=0.0,
        first_orders=1,
        gmv_fen=30_004,
        roi=30_004 / 3_751,
    )
    assert report.totals.adds == 7
    assert report.totals.cost_fen == 15_000 + 9_000 + 3_751
    assert report.totals.cac_fen == 3_964  # 27,751 / 7 = 3,964.43
    assert report.totals.gmv_fen == 74_004
    assert report.totals.first_orders == 5
    assert report.totals.deletion_rate_30d == 0.5


def test_daily_series_uses_brand_days_and_sums_to_the_range(db: Session, clock: FrozenClock) -> None:
    s = build(db, clock)
    report = _report(db, clock, s, Attribution.FIRST_TOUCH)
    assert report.days[0] == FROM and report.days[-1] == TO and len(report.days) == 10
    adds = {d.day.day: d.metrics.adds for d in report.daily if d.metrics.adds}
    # c5 added at 00:30 on 10-29 Shanghai time (16:30 UTC on 10-28) counts on 10-29
    assert adds == {20: 1, 21: 1, 22: 1, 23: 1, 29: 1}
    cost = {d.day.day: d.metrics.cost_fen for d in report.daily if d.metrics.cost_fen}
    assert cost == {20: 10_000, 21: 5_000, 22: 3_000 + 2_000, 29: 2_000}
    # the scan at 00:10 on 10-21 Shanghai time is a 10-21 scan
    scans = {d.day.day: d.metrics.scans for d in report.daily if d.metrics.scans}
    assert scans == {20: 3, 21: 1, 22: 2}
    package = next(r for r in report.channels if r.channel.id == s.a.id)
    assert [d.metrics.exposures for d in package.daily[:3]] == [1000, None, None]
    assert sum(d.metrics.gmv_fen for d in package.daily) == package.totals.gmv_fen == 30_000


def test_attribution_window_is_configurable(db: Session, clock: FrozenClock) -> None:
    s = build(db, clock)
    # with a 7-day window c1's second order (21 days after the add) is not credited
    rows = _by_name(_report(db, clock, s, Attribution.FIRST_TOUCH, window_days=7))
    assert rows["包裹卡"].gmv_fen == 25_000
    assert rows["包裹卡"].first_orders == 2
    # with a 1-day window only c5's order (30 minutes after the add) and c1's (27 hours) differ
    rows = _by_name(_report(db, clock, s, Attribution.FIRST_TOUCH, window_days=1))
    assert rows["包裹卡"].gmv_fen == 0
    assert rows["KOL 小红书"].gmv_fen == 8_000


def test_one_channel_report_and_nothing_from_other_workspaces(db: Session, clock: FrozenClock) -> None:
    s = build(db, clock)
    build(db, clock)  # a second brand with the same history
    report = _report(db, clock, s, Attribution.FIRST_TOUCH, channel_ids=[s.a.id])
    assert [r.channel.name for r in report.channels] == ["包裹卡"]
    assert report.channels[0].totals == PACKAGE_CARD
    assert report.totals == PACKAGE_CARD
    everything = _report(db, clock, s, Attribution.FIRST_TOUCH)
    assert everything.totals.adds == 5


def test_deletion_maturity_follows_the_clock(db: Session, clock: FrozenClock) -> None:
    s = build(db, clock)
    # a month later every add of the range is 30 days old
    clock.set(clock.now().replace(month=12, day=30))
    rows = _by_name(_report(db, clock, s, Attribution.LAST_TOUCH))
    assert (rows["KOL 小红书"].matured_30d, rows["淘宝 CPS"].matured_30d) == (3, 2)
    # on the last day of the range nothing is 7 days old yet
    clock.set(clock.now().replace(year=2026, month=10, day=29))
    report = _report(db, clock, s, Attribution.LAST_TOUCH)
    assert report.totals.matured_7d == 2  # c1 (10-20) and c2 (10-21): 7 days before 10-29 02:00 UTC
    assert asdict(report.totals)["deletion_rate_7d"] == 0.5


def test_bad_ranges_name_the_field(db: Session, clock: FrozenClock) -> None:
    s = build(db, clock)
    cases = [
        ({"date_from": TO, "date_to": FROM}, "from"),
        ({"date_from": date(2025, 1, 1), "date_to": date(2026, 1, 2)}, "to"),
        ({"date_from": FROM, "date_to": TO, "window_days": 0}, "window_days"),
        ({"date_from": FROM, "date_to": TO, "attribution": "linear"}, "attribution"),
    ]
    for kwargs, field in cases:
        with pytest.raises(InvalidInput) as caught:
            channel_report(db, actor=s.actor, clock=clock, **kwargs)  # type: ignore[arg-type]
        assert caught.value.details == {"field": field}
    # 366 days is the longest range
    longest = channel_report(db, actor=s.actor, clock=clock, date_from=date(2025, 1, 1), date_to=date(2026, 1, 1))
    assert len(longest.daily) == 366
    with pytest.raises(PermissionDenied):
        channel_report(db, actor=actor_for(s.workspace, role=Role.STAFF), clock=clock, date_from=FROM, date_to=TO)


def test_deletion_windows_are_exact_to_the_microsecond(db: Session, clock: FrozenClock) -> None:
    # given two adds at .999999 of a second, one removed exactly 7 days later, one 1 µs sooner
    ws = make_workspace(db, clock=clock)
    staff = make_staff(db, workspace=ws, clock=clock).id
    channel = make_channel(db, workspace=ws, clock=clock, name="短信")
    added = local(10, 22, 9).replace(microsecond=999_999)
    for lasted in (timedelta(days=7), timedelta(days=7, microseconds=-1)):
        customer = new_customer(db, workspace=ws, clock=clock)
        add_edge(db, customer=customer, staff_id=staff, channel=channel, added_at=added, removed_at=added + lasted)
    # then only the second counts as removed within 7 days; both within 30
    report = channel_report(db, actor=actor_for(ws), date_from=FROM, date_to=TO, clock=clock)
    assert (report.totals.deleted_7d, report.totals.deleted_30d, report.totals.deletion_rate_7d) == (1, 2, 0.5)
