"""Pareto on a hand-built order history, the CLV fit (stored values, ranks, super users, a failed
fit), recovery of known parameters from E's simulator, and the super-user segment conditions."""

from __future__ import annotations

import time
from datetime import date

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.analytics.clv import models
from siyu.analytics.clv.pareto import pareto_table, top_buyers
from siyu.analytics.clv.service import NOT_ENOUGH, ensure_super_user_segment, run_fit, super_users
from siyu.analytics.settings import settings_for_update
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import ClvFitStatus, Customer, CustomerValue, Job, Order, OrderStatus, Role, Workspace
from siyu.segments.definition import DefinitionError, parse_definition
from siyu.segments.query import members_select
from tests.analytics.clv.factories import bulk_customers, bulk_orders, paid, simulated_history
from tests.factories import actor_for, make_order, make_workspace

UNSCOPED = {"siyu_unscoped": True}
TODAY = date(2026, 11, 23)  # the clock fixture's brand-local day


@pytest.fixture
def ws(db: Session, clock: FrozenClock) -> Workspace:
    return make_workspace(db, clock=clock, name="花间集")


def _pareto_shop(db: Session, ws: Workspace, clock: FrozenClock) -> list[int]:
    """Ten customers (c1…c10) and a merged-away eleventh:
    c1 ¥600 + ¥400 = ¥1,000; c2 ¥500; c3 ¥300; c4 ¥300 with ¥100 refunded = ¥200;
    c5 one fully refunded order (left out); c6 an order 400 days ago (outside the 365-day window);
    c7…c10 no orders; c11 (merged into c1) ¥900 — not counted.
    Buyers n = 4, revenue ¥2,000."""
    ids = bulk_customers(db, ws, 11, clock)
    c = {i + 1: db.get_one(Customer, cid) for i, cid in enumerate(ids)}
    day = paid(date(2026, 11, 1))
    make_order(db, customer=c[1], paid_at=day, total_fen=60_000)
    make_order(db, customer=c[1], paid_at=paid(date(2026, 3, 1)), total_fen=40_000)
    make_order(db, customer=c[2], paid_at=day, total_fen=50_000)
    make_order(db, customer=c[3], paid_at=day, total_fen=30_000)
    make_order(db, customer=c[4], paid_at=day, total_fen=30_000, refunded_fen=10_000)
    refunded = make_order(db, customer=c[5], paid_at=day, total_fen=70_000, refunded_fen=70_000)
    refunded.status = OrderStatus.REFUNDED
    make_order(db, customer=c[6], paid_at=paid(date(2025, 10, 19)), total_fen=80_000)
    make_order(db, customer=c[11], paid_at=day, total_fen=90_000)
    c[11].merged_into_id = c[1].id
    db.flush()
    return ids


def test_pareto_on_a_hand_built_history(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    ids = _pareto_shop(db, ws, clock)
    result = pareto_table(db, actor=actor_for(ws, role=Role.ANALYST), clock=clock)
    assert (result.start, result.end, result.window_days) == (date(2025, 11, 24), TODAY, 365)
    assert (result.pool, result.buyers, result.revenue_fen) == (10, 4, 200_000)
    # top p % of 4 buyers = ceil(4p/100) = 1 for p ≤ 20: c1 alone, ¥1,000 of ¥2,000 = 50 %.
    # all customers (10 not merged) top: ceil(10p/100) = 1, 1, 1, 2 → c1 (50 %), and c1 + c2 for
    # 20 % (¥1,500 / ¥2,000 = 75 %).
    assert [(r.top_pct, r.customers, r.revenue_fen, r.share, r.pool_customers, r.pool_share) for r in result.rows] == [
        (1, 1, 100_000, 0.5, 1, 0.5),
        (5, 1, 100_000, 0.5, 1, 0.5),
        (10, 1, 100_000, 0.5, 1, 0.5),
        (20, 1, 100_000, 0.5, 2, 0.75),
    ]
    # mean top 20 % = ¥1,000; mean of the rest = (500 + 300 + 200) / 3 = ¥333.33 → 3× (every row:
    # each holds c1 alone).
    assert result.top20_multiple == pytest.approx(3.0)
    assert [r.multiple for r in result.rows] == [pytest.approx(3.0)] * 4
    # the drill-down recomputes the buyers: top 20 % = c1; top 100 % = the 4 buyers by revenue
    # (c1 ¥1,000, c2 ¥500, c3 ¥300, c4 ¥200), never c5 (refunded), c6 (outside) nor c11 (merged).
    analyst = actor_for(ws, role=Role.ANALYST)
    period, top = top_buyers(db, actor=analyst, clock=clock, top_pct=20)
    assert (period.start, period.end, top) == (date(2025, 11, 24), TODAY, [ids[0]])
    assert top_buyers(db, actor=analyst, clock=clock, top_pct=100)[1] == ids[:4]
    with pytest.raises(InvalidInput) as bad:
        top_buyers(db, actor=analyst, clock=clock, top_pct=0)
    assert bad.value.details == {"field": "top_pct"}
    # a 30-day window drops c1's March order: c2 ¥500 is now the top buyer of ¥1,600.
    short = pareto_table(db, actor=actor_for(ws, role=Role.ANALYST), clock=clock, window_days=30)
    assert (short.buyers, short.revenue_fen, short.rows[0].revenue_fen) == (4, 160_000, 60_000)


def test_pareto_empty_and_bad_window(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    result = pareto_table(db, actor=actor_for(ws, role=Role.ANALYST), clock=clock)
    assert (result.pool, result.buyers, result.revenue_fen, result.top20_multiple) == (0, 0, 0, None)
    assert all(r.share is None and r.pool_share is None for r in result.rows)
    with pytest.raises(InvalidInput) as bad:
        pareto_table(db, actor=actor_for(ws, role=Role.ANALYST), clock=clock, window_days=0)
    assert bad.value.details == {"field": "window_days"}
    with pytest.raises(PermissionDenied):
        pareto_table(db, actor=actor_for(ws, role=Role.STAFF), clock=clock)


def test_an_empty_workspace_stores_a_failed_fit(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    fit = run_fit(db, actor=actor_for(ws, role=Role.ANALYST), clock=clock)
    assert fit.status == ClvFitStatus.FAILED
    assert fit.error == NOT_ENOUGH
    assert fit.customers == 0 and fit.params == {}
    with pytest.raises(InvalidInput) as bad:
        run_fit(db, actor=actor_for(ws, role=Role.ANALYST), clock=clock, calibration_end=date(2026, 11, 24))
    assert bad.value.details == {"field": "calibration_end"}
    with pytest.raises(PermissionDenied):
        run_fit(db, actor=actor_for(ws, role=Role.STAFF), clock=clock)


def test_one_time_buyers_only_fail_with_a_readable_error(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    ids = bulk_customers(db, ws, 3, clock)
    bulk_orders(db, ws, [(cid, date(2026, 10, 1), 10_000) for cid in ids])
    fit = run_fit(db, actor=actor_for(ws, role=Role.ANALYST), clock=clock)
    assert (fit.status, fit.error, fit.customers) == (ClvFitStatus.FAILED, NOT_ENOUGH, 3)


def test_fit_recovers_simulated_parameters_and_stores_values(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    # Given 4,000 customers simulated over two years with r=0.25, α=4, a=0.8, b=2.5 (weeks), p=6, q=4, v=15
    truth = simulated_history(db, ws, clock, customers=4000, end=TODAY, days=730)
    # and one hand-built customer: ¥100 + ¥50 on 11-02 (one purchase day), ¥80 on 11-09, ¥120 on 11-16.
    (hand,) = bulk_customers(db, ws, 1, clock)
    bulk_orders(
        db,
        ws,
        [
            (hand, date(2026, 11, 2), 10_000),
            (hand, date(2026, 11, 2), 5_000),
            (hand, date(2026, 11, 9), 8_000),
            (hand, date(2026, 11, 16), 12_000),
        ],
        prefix="H",
    )
    started = time.perf_counter()
    fit = run_fit(db, actor=actor_for(ws, role=Role.ANALYST), clock=clock)
    elapsed = time.perf_counter() - started
    assert fit.status == ClvFitStatus.DONE, fit.error
    assert fit.customers == 4001 and fit.calibration_end == TODAY and fit.time_unit == "week"
    assert elapsed < 20
    p = fit.params
    # Sampling error with 4,000 customers: r and α are identified by the purchase counts (±25 %);
    # a and b only through the drop-outs, and trade off against each other, so each within ±60 %.
    # The mean spend p·v/(q−1) (¥30) is pinned by ~10k repeat amounts: within ±10 %.
    assert p["r"] == pytest.approx(truth.r, rel=0.25)
    assert p["alpha"] == pytest.approx(truth.alpha, rel=0.25)
    assert p["a"] == pytest.approx(truth.a, rel=0.6)
    assert p["b"] == pytest.approx(truth.b, rel=0.6)
    assert p["p"] * p["v"] / (p["q"] - 1) == pytest.approx(30.0, rel=0.1)
    # the hand-built customer's summary: frequency 2 (11-09, 11-16), recency 2 weeks, T 3 weeks,
    # average repeat spend (¥80 + ¥120) / 2 = ¥100.
    mine = db.scalar(select(CustomerValue).where(CustomerValue.customer_id == hand), execution_options=UNSCOPED)
    assert mine is not None
    assert (mine.frequency, mine.recency, mine.age, mine.average_spend_fen) == (2, 2.0, 3.0, 10_000)
    assert mine.expected_value_fen == round(mine.expected_purchases * mine.expected_spend_fen)
    # ranks: 1 is the highest value; the top ceil(4001 × 20 %) = 801 are super users.
    values = db.execute(
        select(CustomerValue.value_rank, CustomerValue.expected_value_fen, CustomerValue.is_super_user)
        .where(CustomerValue.workspace_id == ws.id)
        .order_by(CustomerValue.value_rank),
        execution_options=UNSCOPED,
    ).all()
    assert [v[0] for v in values] == list(range(1, 4002))
    assert all(values[i][1] >= values[i + 1][1] for i in range(len(values) - 1))
    assert sum(v[2] for v in values) == 801 and all(v[2] for v in values[:801])
    # the hold-out check (last 90 days) predicts the mean purchases per customer within 20 %.
    assert fit.validation is not None
    buckets = fit.validation["buckets"]
    customers = sum(b["customers"] for b in buckets)
    predicted = sum(b["predicted"] * b["customers"] for b in buckets) / customers
    actual = sum(b["actual"] * b["customers"] for b in buckets) / customers
    assert predicted == pytest.approx(actual, rel=0.2)

    # The segment conditions, compiled on this backend, match the stored flags and values.
    def members(definition: dict[str, object]) -> set[int]:
        statement = members_select(db, workspace_id=ws.id, definition=definition, now=clock.now())
        return set(db.scalars(statement, execution_options=UNSCOPED))

    supers = {
        r[0]
        for r in db.execute(
            select(CustomerValue.customer_id).where(CustomerValue.is_super_user), execution_options=UNSCOPED
        )
    }
    everyone = set(db.scalars(select(Customer.id).where(Customer.workspace_id == ws.id), execution_options=UNSCOPED))
    threshold = values[99][1]
    rich = {
        r[0]
        for r in db.execute(
            select(CustomerValue.customer_id).where(CustomerValue.expected_value_fen >= threshold),
            execution_options=UNSCOPED,
        )
    }
    assert members({"kind": "super_user"}) == supers
    assert members({"kind": "super_user", "value": False}) == everyone - supers
    assert members({"kind": "clv_value", "op": "gte", "value": threshold}) == rich
    assert members({"not": {"kind": "clv_value", "op": "gte", "value": threshold}}) == everyone - rich
    # and the super users' share of this year's revenue is reported with them.
    stats = super_users(db, actor=actor_for(ws, role=Role.ANALYST), start=date(2025, 11, 24), end=TODAY)
    assert (stats.count, stats.customers, stats.segment_id) == (801, 4001, None)
    revenue = func.sum(Order.total_fen - Order.refunded_fen)
    window = (Order.workspace_id == ws.id, Order.paid_at >= paid(date(2025, 11, 24)), Order.paid_at <= paid(TODAY))
    total = int(db.scalar(select(revenue).where(*window), execution_options=UNSCOPED) or 0)
    theirs = int(
        db.scalar(select(revenue).where(*window, Order.customer_id.in_(supers)), execution_options=UNSCOPED) or 0
    )
    assert stats.revenue_fen == theirs and stats.share == theirs / total
    assert 0.2 < stats.share < 1


def test_segment_condition_parsing() -> None:
    assert parse_definition({"kind": "clv_value", "op": "between", "value": [100, 200]}).comparison.upper == 200  # type: ignore[union-attr]
    with pytest.raises(DefinitionError) as bad:
        parse_definition({"kind": "clv_value", "op": "gte", "value": 1.5})
    assert bad.value.details["path"] == "$.value"
    with pytest.raises(DefinitionError) as bad:
        parse_definition({"kind": "super_user", "value": "yes"})
    assert bad.value.details["path"] == "$.value"


def test_super_user_segment_is_created_once_and_tracked(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    operator = actor_for(ws, role=Role.OPERATOR)
    first = ensure_super_user_segment(db, actor=operator, clock=clock)
    again = ensure_super_user_segment(db, actor=operator, clock=clock)
    assert first.id == again.id
    assert (first.name, first.definition, first.is_tracked) == ("超级用户", {"kind": "super_user"}, True)
    # an analyst may read analytics but not write segments
    other = make_workspace(db, clock=clock)
    with pytest.raises(PermissionDenied):
        ensure_super_user_segment(db, actor=actor_for(other, role=Role.ANALYST), clock=clock)


def _values(db: Session, ws: Workspace) -> list[tuple[int, int, int, bool, int]]:
    """(customer, fit, rank, super user, value) of every stored value, by rank."""
    return [
        (r[0], r[1], r[2], r[3], r[4])
        for r in db.execute(
            select(
                CustomerValue.customer_id,
                CustomerValue.fit_id,
                CustomerValue.value_rank,
                CustomerValue.is_super_user,
                CustomerValue.expected_value_fen,
            )
            .where(CustomerValue.workspace_id == ws.id)
            .order_by(CustomerValue.value_rank),
            execution_options=UNSCOPED,
        )
    ]


def test_a_second_fit_replaces_the_values_and_a_failed_one_keeps_them(
    db: Session, clock: FrozenClock, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulated_history(db, ws, clock, customers=300, end=TODAY, days=540)
    analyst = actor_for(ws, role=Role.ANALYST)
    first = run_fit(db, actor=analyst, clock=clock, holdout_days=0)
    assert first.status == ClvFitStatus.DONE, first.error
    # a second DONE fit replaces every row: 300 customers, once each, all from the new fit
    second = run_fit(db, actor=analyst, clock=clock, holdout_days=0)
    assert second.status == ClvFitStatus.DONE and second.id != first.id
    stored = _values(db, ws)
    assert len(stored) == 300 and len({v[0] for v in stored}) == 300
    assert {v[1] for v in stored} == {second.id}
    # a fit whose predictions are not finite is refused (FAILED, readable), never stored as 0
    monkeypatch.setattr(models, "expected_purchases", lambda model, t, f, r, age: np.where(f > 1, np.nan, 1.0))
    failed = run_fit(db, actor=analyst, clock=clock, holdout_days=0)
    assert failed.status == ClvFitStatus.FAILED
    assert failed.error is not None and "not finite" in failed.error and failed.finished_at is not None
    assert _values(db, ws) == stored


def test_super_users_follow_the_top_pct_and_need_a_positive_value(
    db: Session, clock: FrozenClock, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulated_history(db, ws, clock, customers=300, end=TODAY, days=540)
    settings_for_update(db, ws.id, clock).super_user_top_pct = 10
    db.flush()
    analyst = actor_for(ws, role=Role.ANALYST)
    fit = run_fit(db, actor=analyst, clock=clock, holdout_days=0)
    assert fit.status == ClvFitStatus.DONE, fit.error
    stored = _values(db, ws)
    assert all(v[4] > 0 for v in stored[:30])
    # ceil(300 × 10 %) = 30 super users: ranks 1…30
    assert [v[2] for v in stored if v[3]] == list(range(1, 31))
    # when only the frequent buyers have a positive value, the zero-value ones are not flagged
    monkeypatch.setattr(models, "expected_purchases", lambda model, t, f, r, age: np.where(f >= 8, 1.0, 0.0))
    fit = run_fit(db, actor=analyst, clock=clock, holdout_days=0)
    assert fit.status == ClvFitStatus.DONE, fit.error
    stored = _values(db, ws)
    positive = [v[2] for v in stored if v[4] > 0]
    assert 0 < len(positive) < 30
    assert [v[2] for v in stored if v[3]] == positive


def test_a_done_fit_queues_a_refresh_of_the_super_user_segment(db: Session, clock: FrozenClock, ws: Workspace) -> None:
    from siyu.segments.tasks import REFRESH_KIND

    simulated_history(db, ws, clock, customers=200, end=TODAY, days=540)
    segment = ensure_super_user_segment(db, actor=actor_for(ws, role=Role.OPERATOR), clock=clock)

    def refreshes() -> int:
        jobs = db.scalars(select(Job).where(Job.workspace_id == ws.id, Job.kind == REFRESH_KIND))
        return sum(1 for job in jobs if job.args == {"segment_id": segment.id})

    before = refreshes()
    fit = run_fit(db, actor=actor_for(ws, role=Role.ANALYST), clock=clock, holdout_days=0)
    assert fit.status == ClvFitStatus.DONE, fit.error
    assert refreshes() == before + 1
