"""History, fit check and KPI decomposition on the hand-built pool in scenario.py."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.analytics.planning.fit import FitInputs, Verdict, fit_check
from siyu.analytics.planning.history import acquisition_cost, measure_history
from siyu.analytics.planning.kpi import PlanInput, create_plan, decompose, delete_plan, plan_progress, validate
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from siyu.models import CostModel, Customer, KpiPlan, Role, Staff
from tests.analytics.planning.scenario import at, build
from tests.factories import (
    actor_for,
    make_channel,
    make_customer,
    make_relationship,
    make_staff,
    make_workspace,
)


def test_history_months_and_rates_match_the_hand_count(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    build(db, clock, ws)
    h = measure_history(db, actor=actor_for(ws, role=Role.ANALYST), clock=clock)
    rows = [(m.month, m.adds, m.deletions, m.open_at_start, m.pool_end, m.orders, m.gmv_fen) for m in h.months]
    assert rows == [
        (date(2026, 8, 1), 2, 0, 0, 2, 1, 10_000),
        (date(2026, 9, 1), 1, 1, 2, 2, 1, 20_000),
        (date(2026, 10, 1), 1, 0, 2, 3, 1, 5_000),
    ]
    # pool now A, C, D; buyers among them A (and C, whose order is this month); D's order is not a pool order
    assert (h.pool_now, h.buyers_in_pool) == (3, 2)
    # deletions 1 ÷ edges open at month starts 0 + 2 + 2
    assert (h.deletion_rate.value, h.deletion_rate.numerator, h.deletion_rate.denominator) == (0.25, 1, 4)
    # 30 days: all four joiners are 30+ days old; only A ordered within 30 days (10 days) → 1/4
    assert (h.conversion[30].numerator, h.conversion[30].denominator) == (1, 4)
    # 90 days: only A and B joined 90+ days ago; both ordered within 90 days (10 and 47 days) → 2/2
    assert (h.conversion[90].numerator, h.conversion[90].denominator) == (2, 2)
    # no first order is a year old: first orders in the months are A and B; A bought again → 1/2
    assert (h.repurchase_rate.value, h.repurchase_rate.denominator) == (0.5, 2)
    assert "lower bound" in h.repurchase_rate.basis
    # one gap: A 2026-08-20 → 2026-09-19 = 30 days
    assert h.cycle_days.value == 30.0
    # AOV 35000 / 3; orders per member per year = 3 orders / 3 months × 12 ÷ mean pool (2 + 2 + 3) / 3 = 36/7
    assert h.aov.value == pytest.approx(35_000 / 3)
    assert h.orders_per_member_year.value == pytest.approx(36 / 7)
    assert h.acquisition_cost_fen is None  # no channel costs


def test_fit_verdicts_follow_the_rules(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    build(db, clock, ws)
    actor = actor_for(ws, role=Role.ANALYST)
    # gross profit = 36/7 orders × ¥116.67 × 50 % = ¥300.00; contribution = 300 − 10 × 12 = ¥180.00;
    # payback = 60 ÷ (180 / 12) = 4 months → yes
    yes = fit_check(db, actor=actor, clock=clock, inputs=FitInputs(5_000, 1_000, 6_000))
    assert yes.gross_profit_fen_year == pytest.approx(30_000)
    assert yes.contribution_fen_year == pytest.approx(18_000)
    assert (yes.payback_months, yes.verdict) == (4.0, Verdict.YES)
    assert yes.message == "每位会员一年贡献毛利 ¥180.00，获客成本 ¥60.00 在 4 个月收回：私域能养活自己"
    # acquisition ¥300 → 300 ÷ 15 = 20 months → marginal
    assert fit_check(db, actor=actor, clock=clock, inputs=FitInputs(5_000, 1_000, 30_000)).verdict == Verdict.MARGINAL
    # operating ¥30/month: 300 − 360 < 0 → no
    no = fit_check(db, actor=actor, clock=clock, inputs=FitInputs(5_000, 3_000, 6_000))
    assert no.verdict == Verdict.NO
    assert no.message == "不能：每位会员一年贡献毛利 ¥300.00，运营成本 ¥360.00 已超过它"
    # nothing entered (settings have no margin or operating cost) → says what to enter
    incomplete = fit_check(db, actor=actor, clock=clock)
    assert incomplete.verdict == Verdict.INCOMPLETE
    assert "gross margin" in incomplete.message and "operating cost" in incomplete.message
    with pytest.raises(InvalidInput) as bad:
        fit_check(db, actor=actor, clock=clock, inputs=FitInputs(margin_bp=12_000))
    assert bad.value.details == {"field": "margin_bp"}


def test_empty_workspace_gives_none_not_nan(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    h = measure_history(db, actor=actor_for(ws), clock=clock)
    assert h.months == [] and h.pool_now == 0
    assert h.deletion_rate.value is None and h.aov.value is None and h.orders_per_member_year.value is None
    assert h.conversion[30].value is None and h.repurchase_rate.value is None and h.cycle_days.value is None
    assert fit_check(db, actor=actor_for(ws), clock=clock, inputs=FitInputs(5_000, 1_000)).verdict == Verdict.INCOMPLETE


def _plan(**changes: object) -> PlanInput:
    values: dict[str, object] = dict(
        name="Q1",
        first_month=date(2027, 1, 1),
        last_month=date(2027, 3, 1),
        start_pool=1_000,
        target_pool=1_300,
        target_gmv_fen=1_000_000,
        monthly_deletion_rate=0.1,
        first_order_rate=0.2,
        repurchase_rate=0.6,
        aov_fen=10_000,
        start_buyers=100,
    )
    values.update(changes)
    return PlanInput(**values)  # type: ignore[arg-type]


def test_decomposition_by_hand() -> None:
    # k=1: pool 1100, deletions 0.1×1000=100, adds 200, new buyers 40, repeat 100×0.6/12=5, model ¥4500
    # k=2: pool 1200, deletions 110, adds 210, new 42, buyers 100×0.9+40=130, repeat 6.5, model ¥4850
    # k=3: pool 1300, deletions 120, adds 220, new 44, buyers 130×0.9+42=159, repeat 7.95, model ¥5195
    # the ¥10,000 target spread by 4500 : 4850 : 5195 (sum 14545) → 309384.67, 333447.92, 357167.41 fen,
    # rounded by largest remainders to 309385, 333448, 357167; orders = GMV ÷ ¥100 rounded
    months, scale = decompose(_plan())
    assert [(m["pool"], m["deletions"], m["adds"]) for m in months] == [
        (1100, 100, 200),
        (1200, 110, 210),
        (1300, 120, 220),
    ]
    assert [m["repeat_orders"] for m in months] == [5.0, 6.5, 7.95]
    assert [m["gmv_fen"] for m in months] == [309_385, 333_448, 357_167]
    assert sum(m["gmv_fen"] for m in months) == 1_000_000
    assert [m["orders"] for m in months] == [31, 33, 36]
    assert scale == 0.6875  # 1,000,000 ÷ 1,454,500


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"last_month": date(2026, 12, 1)}, "last_month"),
        ({"target_pool": 0}, "target_pool"),
        ({"target_gmv_fen": -5}, "target_gmv_fen"),
        ({"monthly_deletion_rate": 1.5}, "monthly_deletion_rate"),
        ({"first_order_rate": -0.1}, "first_order_rate"),
        ({"name": " "}, "name"),
        ({"last_month": date(2030, 1, 1)}, "last_month"),
    ],
)
def test_validation_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        validate(_plan(**changes))
    assert error.value.details == {"field": field}


def test_plan_vs_actual_flags_months_behind_and_current_pace(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    build(db, clock, ws)
    analyst = actor_for(ws, role=Role.ANALYST)
    # given a plan for Sep–Dec 2026: pool 2 → 6 (3, 4, 5, 6), no deletions, so 1 add a month; the model's
    # orders are equal each month, so the ¥400 target is ¥100 (1 order) a month
    plan = create_plan(
        db,
        actor=analyst,
        clock=clock,
        plan=_plan(
            first_month=date(2026, 9, 1),
            last_month=date(2026, 12, 1),
            start_pool=2,
            target_pool=6,
            target_gmv_fen=40_000,
            monthly_deletion_rate=0,
            first_order_rate=0.5,
            repurchase_rate=0,
            start_buyers=0,
        ),
    )
    progress = plan_progress(db, actor=analyst, plan_id=plan.id, clock=clock)
    sep, oct_, nov, dec = progress.months
    # B left the pool in September (in people; the plan assumed no deletions)
    assert sep.actual == {"adds": 1, "deletions": 1, "pool": 2, "orders": 1, "gmv_fen": 20_000}
    assert sep.behind == {"pool": (1, pytest.approx(1 / 3))}
    assert oct_.actual == {"adds": 1, "deletions": 0, "pool": 3, "orders": 1, "gmv_fen": 5_000}
    assert oct_.behind == {"pool": (1, 0.25), "gmv_fen": (5_000, 0.5)}
    # November is 22 days 10 hours old of 30 days (0.747222…): 1 order ÷ (1 × 0.7472) = 1.338, pool 3 ÷ 5
    assert nov.state == "current"
    assert nov.actual == {"adds": 0, "deletions": 0, "pool": 3, "orders": 1, "gmv_fen": 8_000}
    gone = (22 + 10 / 24) / 30
    assert nov.pace == {
        "adds": 0.0,
        "pool": 0.6,
        "orders": pytest.approx(1 / gone),
        "gmv_fen": pytest.approx(8_000 / (10_000 * gone)),
    }
    assert dec.state == "future" and dec.actual["gmv_fen"] is None and not dec.behind
    # names are unique; staff cannot write; delete removes it
    with pytest.raises(Conflict):
        create_plan(db, actor=analyst, clock=clock, plan=_plan(name=plan.name))
    with pytest.raises(PermissionDenied):
        delete_plan(db, actor=actor_for(ws, role=Role.STAFF), plan_id=plan.id, clock=clock)
    delete_plan(db, actor=analyst, plan_id=plan.id, clock=clock)
    assert db.scalar(select(func.count()).select_from(KpiPlan).where(KpiPlan.workspace_id == ws.id)) == 0
    with pytest.raises(NotFound):
        plan_progress(db, actor=analyst, plan_id=plan.id, clock=clock)


def test_deletions_count_people_and_measured_cac_divides_by_new_members(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    one, two = make_staff(db, workspace=ws, clock=clock), make_staff(db, workspace=ws, clock=clock)
    channel = make_channel(db, workspace=ws, clock=clock, cost_model=CostModel.CPA, cpa_fen=3_000)
    m, n, p, q = (make_customer(db, actor=actor, clock=clock).customer for _ in range(4))

    def edge(customer: Customer, staff: Staff, added: datetime, removed: datetime | None = None, **kw: Any) -> None:
        kw.setdefault("channel", channel)
        make_relationship(db, customer=customer, staff=staff, added_at=added, removed_at=removed, **kw)

    # M: two edges, one removed in Sep → still in the pool, not a deletion
    edge(m, one, at(9, 2))
    edge(m, two, at(9, 3), at(9, 15))
    # N: two edges, both removed in Sep → one person left (on the 12th)
    edge(n, one, at(9, 4), at(9, 10))
    edge(n, two, at(9, 5), at(9, 12))
    # P: joined in Sep; left on Oct 2, came back on Oct 8, left again on Oct 20 → one person left in Oct
    edge(p, one, at(9, 6), at(10, 2))
    edge(p, one, at(10, 8), at(10, 20))
    # Q: joined in Sep without a channel (organic), open
    edge(q, one, at(9, 20), channel=None)
    db.flush()
    h = measure_history(db, actor=actor_for(ws, role=Role.ANALYST), clock=clock)
    rows = [(m_.month, m_.adds, m_.deletions, m_.open_at_start, m_.pool_end) for m_ in h.months]
    # Sep: 4 new members, N left, pool 0 at the start, M, P, Q at the end
    # Oct: no new member (P's re-add is not one), P left, pool M, P, Q at the start, M, Q at the end
    assert rows == [(date(2026, 9, 1), 4, 1, 0, 3), (date(2026, 10, 1), 0, 1, 3, 2)]
    assert (h.deletion_rate.numerator, h.deletion_rate.denominator) == (2, 3)
    assert h.deletion_rate.value == pytest.approx(2 / 3)
    # CAC: the channel cost over Sep–Oct (3 credited adds × ¥30 = ¥90) ÷ 4 new members (Q joined
    # organically) = ¥22.50, not the channel report's cost per credited add (¥30)
    assert h.channel_cost_fen == 9_000
    assert h.acquisition_cost_fen == 2_250
    assert fit_check(db, actor=actor_for(ws, role=Role.ANALYST), clock=clock).acquisition_cost_fen == 2_250
    assert acquisition_cost(21_000, 4) == 5_250 and acquisition_cost(10, 3) == 3 and acquisition_cost(0, 4) is None
    assert acquisition_cost(21_000, 0) is None
