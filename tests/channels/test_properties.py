"""Channel metrics on generated histories, against a plain-Python reading of the definitions."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.orm import Session

from siyu.channels.attribution import Attribution
from siyu.channels.metrics import channel_report
from siyu.kit.clock import FrozenClock
from siyu.models import ChannelType, CostModel, RemovedBy
from tests.channels.factories import add_edge, new_customer
from tests.factories import actor_for, make_channel, make_order, make_staff, make_workspace

TZ = ZoneInfo("Asia/Shanghai")
ORIGIN = datetime(2026, 10, 1, tzinfo=TZ).astimezone(UTC)
FROM, TO = date(2026, 10, 4), date(2026, 10, 9)
START = datetime(2026, 10, 4, tzinfo=TZ).astimezone(UTC)
END = datetime(2026, 10, 10, tzinfo=TZ).astimezone(UTC)
NOW = datetime(2026, 10, 20, 3, tzinfo=UTC)
WINDOW = 3
BASIS_POINTS = 1_250
SPAN = 12 * 86_400  # histories cover 12 days around the 6-day range

moments = st.builds(
    lambda seconds, micros: ORIGIN + timedelta(seconds=seconds, microseconds=micros),
    st.integers(0, SPAN),
    st.sampled_from([0, 1, 500_000, 999_999]),
)


@dataclass(frozen=True)
class Edge:
    customer: int
    channel: int | None
    added_at: datetime
    lasted: timedelta | None
    by_customer: bool


@dataclass(frozen=True)
class Buy:
    customer: int
    paid_at: datetime
    total: int
    refunded: int


edges = st.builds(
    Edge,
    st.integers(0, 4),
    st.one_of(st.none(), st.integers(0, 2)),
    moments,
    st.one_of(
        st.none(),
        st.sampled_from([timedelta(days=7), timedelta(days=7, microseconds=-1)]),
        st.timedeltas(timedelta(0), timedelta(days=40)),
    ),
    st.booleans(),
)
buys = st.builds(Buy, st.integers(0, 4), moments, st.integers(0, 50_000), st.integers(0, 50_000)).map(
    lambda b: Buy(b.customer, b.paid_at, b.total, min(b.refunded, b.total))
)


def expected(history: list[Edge], orders: list[Buy], model: Attribution) -> dict[int, dict[str, int]]:
    """The definitions of docs/channels.md, read literally, per channel index."""
    indexed = list(enumerate(history))
    channelled = [(i, e) for i, e in indexed if e.channel is not None]
    if model == Attribution.FIRST_TOUCH:
        first: dict[int, tuple[int, Edge]] = {}
        for i, e in channelled:
            if e.customer not in first or (e.added_at, i) < (first[e.customer][1].added_at, first[e.customer][0]):
                first[e.customer] = (i, e)
        candidates = list(first.values())
    else:
        candidates = channelled
    touches = [(i, e) for i, e in candidates if START <= e.added_at < END]
    out: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for i, e in touches:
        row = out[e.channel]  # type: ignore[index]
        row["adds"] += 1
        for days in (7, 30):
            if e.added_at <= NOW - timedelta(days=days):
                row[f"matured_{days}d"] += 1
                if e.lasted is not None and e.lasted < timedelta(days=days):
                    row[f"deleted_{days}d"] += 1
                    row[f"deleted_by_customer_{days}d"] += e.by_customer
        if any(o.customer == e.customer and o.paid_at < e.added_at for o in orders):
            continue  # not a new buyer at this add
        credited = []
        for o in orders:
            if o.customer != e.customer or not e.added_at <= o.paid_at < e.added_at + timedelta(days=WINDOW):
                continue
            if model == Attribution.LAST_TOUCH and any(
                j != i and e2.customer == e.customer and e2.added_at <= o.paid_at and (e2.added_at, j) > (e.added_at, i)
                for j, e2 in channelled
            ):
                continue  # a later add took this order
            credited.append(o)
        if credited:
            row["first_orders"] += 1
            row["gmv_fen"] += sum(o.total - o.refunded for o in credited)
            if e.channel == 2:
                row["cps_cost_fen"] += sum(((o.total - o.refunded) * BASIS_POINTS + 5_000) // 10_000 for o in credited)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(edges, max_size=10), st.lists(buys, max_size=8), st.sampled_from(list(Attribution)))
def test_metrics_match_the_definitions(db: Session, history: list[Edge], orders: list[Buy], model: Attribution) -> None:
    clock = FrozenClock(NOW)
    savepoint = db.begin_nested()
    try:
        ws = make_workspace(db, clock=clock)
        staff = make_staff(db, workspace=ws, clock=clock).id
        channels = [
            make_channel(db, workspace=ws, clock=clock, name="entries"),
            make_channel(
                db, workspace=ws, clock=clock, name="cpa", type=ChannelType.KOL, cost_model=CostModel.CPA, cpa_fen=300
            ),
            make_channel(
                db, workspace=ws, clock=clock, name="cps", cost_model=CostModel.CPS, cps_basis_points=BASIS_POINTS
            ),
        ]
        customers = [new_customer(db, workspace=ws, clock=clock) for _ in range(5)]
        for e in history:
            add_edge(
                db,
                customer=customers[e.customer],
                staff_id=staff,
                channel=None if e.channel is None else channels[e.channel],
                added_at=e.added_at,
                removed_at=None if e.lasted is None else e.added_at + e.lasted,
                removed_by=None if e.lasted is None else RemovedBy.CUSTOMER if e.by_customer else RemovedBy.STAFF,
            )
        for o in orders:
            make_order(
                db, customer=customers[o.customer], paid_at=o.paid_at, total_fen=o.total, refunded_fen=o.refunded
            )
        report = channel_report(
            db, actor=actor_for(ws), date_from=FROM, date_to=TO, clock=clock, attribution=model, window_days=WINDOW
        )
        want = expected(history, orders, model)
        names = ["adds", "matured_7d", "deleted_7d", "deleted_by_customer_7d", "matured_30d", "deleted_30d"]
        names += ["deleted_by_customer_30d", "first_orders", "gmv_fen", "cps_cost_fen"]
        index_of = {c.id: n for n, c in enumerate(channels)}
        for row in report.channels:
            index = index_of[row.channel.id]
            got = {name: getattr(row.totals, name) for name in names}
            assert got == {name: want[index][name] for name in names}, (model, index)
            # the daily series adds up to the range
            for name in names:
                assert sum(getattr(d.metrics, name) for d in row.daily) == got[name]
            assert row.totals.cpa_cost_fen == (300 * got["adds"] if index == 1 else 0)
        assert report.totals.adds == sum(r.totals.adds for r in report.channels)
        assert [d.metrics.adds for d in report.daily] == [
            sum(r.daily[n].metrics.adds for r in report.channels) for n in range(len(report.daily))
        ]
        if model == Attribution.FIRST_TOUCH:
            # each customer counts once, on their first add with a channel
            firsts = {
                e.customer: min(x.added_at for x in history if x.customer == e.customer and x.channel is not None)
                for e in history
                if e.channel is not None
            }
            assert report.totals.adds == sum(1 for at in firsts.values() if START <= at < END)
        else:
            assert report.totals.adds == sum(1 for e in history if e.channel is not None and START <= e.added_at < END)
    finally:
        savepoint.rollback()


def test_metrics_take_the_same_number_of_queries_for_any_number_of_channels(db: Session) -> None:
    clock = FrozenClock(NOW)

    def queries_for(channel_count: int) -> int:
        ws = make_workspace(db, clock=clock)
        staff = make_staff(db, workspace=ws, clock=clock).id
        for n in range(channel_count):
            channel = make_channel(db, workspace=ws, clock=clock, name=f"渠道{n}")
            customer = new_customer(db, workspace=ws, clock=clock)
            add_edge(db, customer=customer, staff_id=staff, channel=channel, added_at=START + timedelta(hours=n))
            make_order(db, customer=customer, paid_at=START + timedelta(hours=n + 1))
        statements: list[str] = []

        def count(*args: object) -> None:
            statements.append(str(args[2]))

        connection = db.connection()
        event.listen(connection, "before_cursor_execute", count)
        try:
            report = channel_report(db, actor=actor_for(ws), date_from=FROM, date_to=TO, clock=clock)
        finally:
            event.remove(connection, "before_cursor_execute", count)
        assert report.totals.adds == channel_count and report.totals.first_orders == channel_count
        return len(statements)

    assert queries_for(2) == queries_for(25) == 6
