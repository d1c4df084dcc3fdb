"""Bounds on every planner and fit-check input (field errors, never 500s), SQL-side history measures,
adds counted as people, and one history per request."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.analytics.planning import service, views
from siyu.analytics.planning.history import measure_history, weighted_median
from siyu.analytics.planning.kpi import PlanInput, parse_month, validate
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.models import KpiPlan, Role, User, Workspace
from tests.analytics.planning.scenario import at, build
from tests.api.conftest import bearer
from tests.factories import (
    actor_for,
    make_customer,
    make_order,
    make_relationship,
    make_staff,
    make_token,
    make_workspace,
)
from tests.web.conftest import login

HUGE = "9" * 400


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


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"aov_fen": 10**309}, "aov_fen"),
        ({"target_gmv_fen": 2**63}, "target_gmv_fen"),
        ({"target_pool": 3_000_000_000}, "target_pool"),
        ({"start_pool": 2_147_483_648}, "start_pool"),
        ({"start_buyers": 2**40}, "start_buyers"),
        ({"first_month": date(1, 1, 1)}, "first_month"),
        ({"first_month": date(2101, 1, 1), "last_month": date(2101, 2, 1)}, "first_month"),
        ({"repurchase_rate": float("nan")}, "repurchase_rate"),
        ({"first_order_rate": float("inf")}, "first_order_rate"),
    ],
)
def test_upper_bounds_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        validate(_plan(**changes))
    assert error.value.details == {"field": field}


def test_months_must_lie_in_2000_to_2100() -> None:
    assert parse_month("2000-01", "first_month") == date(2000, 1, 1)
    assert parse_month("2100-12-31", "last_month") == date(2100, 12, 1)
    for text in ("0001-01", "1999-12", "2101-01", "9999-12", "2026-01-01T00:00:00"):
        with pytest.raises(InvalidInput) as error:
            parse_month(text, "first_month")
        assert error.value.details == {"field": "first_month"}


def test_weighted_median() -> None:
    assert weighted_median([]) is None
    assert weighted_median([(5.0, 3)]) == 5.0
    assert weighted_median([(30.0, 1), (10.0, 2), (20.0, 1)]) == 15.0  # 10 10 | 20 30
    assert weighted_median([(1.0, 1), (2.0, 1), (9.0, 1)]) == 2.0


def test_console_inputs_that_used_to_500_are_field_errors(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    build(db, clock, workspace)
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    for query, field in (
        ("operating_cost_yuan=1e400", "operating_cost_yuan"),
        ("margin_pct=1e999999", "margin_pct"),
        (f"acquisition_cost_yuan={HUGE}", "acquisition_cost_yuan"),
        ("acquisition_cost_yuan=1e13", None),
        ("acquisition_cost_yuan=1.00000000000001e13", "acquisition_cost_yuan"),
    ):
        page = client.get(f"/analytics/fit?{query}")
        if field is None:  # exactly the cap (10^15 fen) is accepted
            assert page.status_code == 200, query
            continue
        assert page.status_code == 422 and f'data-error="{field}"' in page.text, query
    form = {
        "csrf_token": csrf,
        "name": "边界",
        "first_month": "2026-12",
        "last_month": "2027-02",
        "start_pool": "3",
        "start_buyers": "0",
        "target_pool": "6",
        "target_gmv_yuan": "400",
        "monthly_deletion_rate": "0",
        "first_order_rate": "0.5",
        "repurchase_rate": "0",
        "aov_yuan": "100",
    }
    for change, field in (
        ({"target_gmv_yuan": "1e30"}, "target_gmv_yuan"),
        ({"target_gmv_yuan": "1e999999"}, "target_gmv_yuan"),
        ({"aov_yuan": HUGE}, "aov_yuan"),
        ({"aov_yuan": "10000000000001"}, "aov_yuan"),
        ({"target_pool": "3000000000"}, "target_pool"),
        ({"start_pool": HUGE}, "start_pool"),
        ({"start_pool": "１２"}, "start_pool"),  # full-width digits: parse_whole takes ASCII only
        ({"start_buyers": "10000000"}, "start_buyers"),  # 8 digits: typed pools stop at 9,999,999
        ({"first_month": "0001-01"}, "first_month"),
        ({"last_month": "2101-01"}, "last_month"),
        ({"first_order_rate": "1e400"}, "first_order_rate"),
    ):
        bad = client.post("/analytics/kpi", data=form | change)
        assert bad.status_code == 422 and f'data-error="{field}"' in bad.text, change
    assert db.scalar(select(func.count()).select_from(KpiPlan).where(KpiPlan.workspace_id == workspace.id)) == 0


def test_api_inputs_that_used_to_500_are_field_errors(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    token = make_token(db, clock=clock, workspace=workspace)
    db.commit()
    for query, field in (
        (f"acquisition_cost_fen={HUGE}", "acquisition_cost_fen"),
        (f"operating_cost_fen={10**16}", "operating_cost_fen"),
        ("margin_bp=20000", "margin_bp"),
    ):
        bad = client.get(f"/api/v1/analytics/fit?{query}", headers=bearer(token))
        assert bad.status_code == 422, query
        assert [d["field"] for d in bad.json()["error"]["details"]] == [field]
    body: dict[str, Any] = {
        "name": "API",
        "first_month": "2026-12",
        "last_month": "2027-02",
        "start_pool": 2,
        "target_pool": 6,
        "target_gmv_fen": 40_000,
        "monthly_deletion_rate": 0,
        "first_order_rate": 0.5,
        "repurchase_rate": 0,
        "aov_fen": 10_000,
        "start_buyers": 0,
    }
    for change, field in (
        ({"aov_fen": 10**309}, "aov_fen"),
        ({"target_gmv_fen": 2**63}, "target_gmv_fen"),
        ({"target_pool": 3_000_000_000}, "target_pool"),
        ({"start_buyers": 2**31}, "start_buyers"),
    ):
        bad = client.post("/api/v1/analytics/kpi-plans", json=body | change, headers=bearer(token))
        assert bad.status_code == 422, change
        assert [d["field"] for d in bad.json()["error"]["details"]] == [field]
    domain_errors: list[tuple[dict[str, Any], str]] = [
        ({"first_month": "0001-01"}, "first_month"),
        ({"monthly_deletion_rate": 1e300}, "monthly_deletion_rate"),
    ]
    for change, field in domain_errors:
        bad = client.post("/api/v1/analytics/kpi-plans", json=body | change, headers=bearer(token))
        assert bad.status_code == 422 and bad.json()["error"]["details"] == {"field": field}
    assert db.scalar(select(func.count()).select_from(KpiPlan).where(KpiPlan.workspace_id == workspace.id)) == 0


def test_adds_count_people_and_sql_measures(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    one, two = make_staff(db, workspace=ws, clock=clock), make_staff(db, workspace=ws, clock=clock)
    k, l_, g, h, j = (make_customer(db, actor=actor, clock=clock).customer for _ in range(5))
    # K: two staff edges (Sep, Oct); L: deleted in Sep, added back in Oct → 2 adds in Sep, none in Oct
    make_relationship(db, customer=k, staff=one, added_at=at(9, 3))
    make_relationship(db, customer=k, staff=two, added_at=at(10, 4))
    make_relationship(db, customer=l_, staff=one, added_at=at(9, 5), removed_at=at(9, 20), removed_by="customer")
    make_relationship(db, customer=l_, staff=two, added_at=at(10, 10))
    # G: first order 2025-06-01, second 183 days later (mature, within a year); H: first 2025-03-01,
    # second 396 days later (mature, not within a year); J: 2026-01-01, 01-11, 01-31 (gaps 10, 20)
    for customer, orders in (
        (g, [at(6, 1, 2025), at(12, 1, 2025)]),
        (h, [at(3, 1, 2025), at(4, 1, 2026)]),
        (j, [at(1, 1), at(1, 11), at(1, 31)]),
    ):
        for sequence, paid in enumerate(orders, start=1):
            make_order(db, customer=customer, paid_at=paid, total_fen=1_000).pool_sequence = sequence
    db.flush()
    history = measure_history(db, actor=actor_for(ws, role=Role.ANALYST), clock=clock)
    adds = {m.month: (m.adds, m.deletions) for m in history.months}
    assert adds[date(2026, 9, 1)] == (2, 1) and adds[date(2026, 10, 1)] == (0, 0)
    assert history.monthly_adds.numerator == 2
    oct_ = next(m for m in history.months if m.month == date(2026, 10, 1))
    assert (oct_.open_at_start, oct_.pool_end) == (1, 2)  # K's Sep edge; K and L at the end of October
    assert (history.repurchase_rate.numerator, history.repurchase_rate.denominator) == (1, 2)
    assert "365–730" in history.repurchase_rate.basis
    assert (history.conversion[30].numerator, history.conversion[30].denominator) == (0, 2)
    # gaps with the later order in the months (since 2025-11): 183, 396, 10, 20 → median (20 + 183) / 2
    assert history.cycle_days.value == 101.5
    assert history.cycle_days.denominator == 4
    assert history.cycle_days.numerator == pytest.approx(183 + 396 + 10 + 20)


def test_a_rejected_plan_measures_history_once(
    client: TestClient,
    db: Session,
    clock: FrozenClock,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    calls = []
    original = measure_history

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(views, "measure_history", counted)
    monkeypatch.setattr(service, "measure_history", counted)
    bad = client.post("/analytics/kpi", data={"csrf_token": csrf, "name": "x", "aov_yuan": "100", "first_month": "bad"})
    assert bad.status_code == 422 and 'data-error="first_month"' in bad.text
    assert len(calls) == 1
