"""Review fixes: erased customers are never listed, the per-customer CSV streams, inputs are bounded."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.analytics.rfm import reports, views
from siyu.analytics.rfm.service import compute_rfm, unscored_ids
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.models import AnalyticsSettings, Role, SegmentMember, User, Workspace
from tests.analytics.rfm.scenario import Scenario, build
from tests.api.conftest import bearer
from tests.factories import make_customer, make_token, make_workspace
from tests.web.conftest import login


def _plain(text: str) -> str:
    return text


def _erase_some(db: Session, clock: FrozenClock, s: Scenario) -> int:
    """Erase D (scored: R2, F5) and a new customer with no orders; returns the latter's id."""
    ghost = make_customer(db, actor=s.actor, clock=clock, name="幽灵").customer
    for customer in (s.d, ghost):
        customer.erased_at = clock.now()
        customer.name = None
    db.flush()
    return ghost.id


def test_erased_customers_count_in_aggregates_but_are_never_listed(db: Session, clock: FrozenClock) -> None:
    s = build(db, clock, make_workspace(db, clock=clock))
    _erase_some(db, clock, s)
    result = compute_rfm(db, actor=s.actor, clock=clock)
    # aggregates keep D (scores and revenue unchanged), "no recent orders" leaves the erased ghost out
    assert (result.scored, result.revenue_fen, result.no_recent_orders) == (4, 76_000, 2)
    assert sorted(unscored_ids(db, actor=s.actor, result=result)) == sorted([s.e.id, s.n.id])
    _, _, cell = reports.drill_target(db, actor=s.actor, result=result, r=2, f=5)
    assert cell == []  # D is the cell's only customer
    _, _, at_risk = reports.drill_target(db, actor=s.actor, result=result, segment="at_risk")
    assert at_risk == []
    table = reports.customers_table(db, actor=s.actor, result=result, _=_plain)
    assert sorted(row["customer_id"] for row in table.rows) == sorted([s.a.id, s.b.id, s.c.id])
    streamed = [row["customer_id"] for row in reports.customer_rows(db, actor=s.actor, result=result)]
    assert streamed == sorted([s.a.id, s.b.id, s.c.id])


def test_customers_csv_streams_with_bom_and_safe_cells(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    s = build(db, clock, workspace)
    s.a.name = "=HYPERLINK(1)"
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    with client.stream("GET", "/analytics/rfm/export?table=customers&format=csv") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "content-length" not in response.headers  # streamed
        body = response.read()
    assert body.startswith("\ufeff".encode())
    lines = body.decode("utf-8-sig").splitlines()
    assert lines[0] == "客户 ID,姓名,最近一次购买日,最近购买天数,订单数,消费金额,R,F,M,RFM 分群名"
    assert f"{s.a.id},'=HYPERLINK(1),2026-11-23,0,2,150.0,5,4,3,忠诚" in lines
    assert f"{s.d.id},客户D,2026-05-27,180,3,260.0,2,5,4,有流失风险" in lines


def test_streamed_csv_drops_control_characters_and_escapes_formulas(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    s = build(db, clock, workspace)
    s.a.name = "\x01=cmd|' /C calc'!A0"  # the control character must not hide the leading "="
    s.b.name = "=SUM(1)\x07\x1f"
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    body = client.get("/analytics/rfm/export?table=customers&format=csv").content.decode("utf-8-sig")
    assert not any(ch in body for ch in "\x01\x07\x1f")
    names = {line.split(",", 2)[0]: line.split(",", 2)[1] for line in body.splitlines()[1:]}
    assert names[str(s.a.id)] == "'=cmd|' /C calc'!A0"
    assert names[str(s.b.id)] == "'=SUM(1)"


def test_customers_xlsx_is_refused_above_the_sheet_limit(
    client: TestClient,
    db: Session,
    clock: FrozenClock,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = build(db, clock, workspace)
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    small = client.get("/analytics/rfm/export?table=customers&format=xlsx")
    assert small.status_code == 200
    sheet = load_workbook(io.BytesIO(small.content)).active
    assert sheet is not None and sheet.max_row == 5
    monkeypatch.setattr(reports, "MAX_XLSX_ROWS", 3)
    big = client.get("/analytics/rfm/export?table=customers&format=xlsx")
    assert big.status_code == 422 and "format=csv" in big.text
    result = compute_rfm(db, actor=s.actor, clock=clock)
    with pytest.raises(InvalidInput) as refused:
        reports.customers_table(db, actor=s.actor, result=result, _=_plain)
    assert refused.value.details == {"field": "format"}
    assert client.get("/analytics/rfm/export?table=customers&format=csv").status_code == 200


def test_long_digit_strings_are_field_errors_not_500(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    build(db, clock, workspace)
    db.commit()
    huge = "9" * 5000
    token = login(client, user_with_role(Role.ADMIN).email)
    page = client.get(f"/analytics/rfm?window_days={huge}")
    assert page.status_code == 422 and 'data-error="window_days"' in page.text
    assert client.get(f"/analytics/rfm/export?table=grid&window_days={huge}").status_code == 422
    drill = client.post("/analytics/rfm/cell", data={"csrf_token": token, "r": huge, "f": "2"})
    assert drill.status_code == 422
    drill = client.post("/analytics/rfm/cell", data={"csrf_token": token, "window_days": huge, "r": "2", "f": "2"})
    assert drill.status_code == 422
    form = {
        "csrf_token": token,
        "rfm_window_days": huge,
        "rfm_segments": "",
        "gross_margin_pct": huge,
        "operating_cost_yuan": "1",
        "super_user_top_pct": "12345678",
        "clv_horizon_days": "180",
        "clv_time_unit": "day",
    }
    bad = client.post("/analytics/settings", data=form)
    assert bad.status_code == 422
    for field in ("rfm_window_days", "gross_margin_pct", "super_user_top_pct"):
        assert f'data-error="{field}"' in bad.text
    assert 'data-error="clv_horizon_days"' not in bad.text
    assert db.scalar(select(AnalyticsSettings)) is None


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "[" + " " * 20_000 + "]", "[1" + "0" * 5000 + "]"])
def test_naming_table_json_that_cannot_be_parsed_is_a_field_error(
    text: str, client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    token = login(client, user_with_role(Role.OPERATOR).email)
    form = {
        "csrf_token": token,
        "rfm_window_days": "365",
        "rfm_segments": text,
        "gross_margin_pct": "",
        "operating_cost_yuan": "",
        "super_user_top_pct": "20",
        "clv_horizon_days": "365",
        "clv_time_unit": "week",
    }
    bad = client.post("/analytics/settings", data=form)
    assert bad.status_code == 422 and 'data-error="rfm_segments"' in bad.text


def test_api_naming_bound_too_large_for_a_float_is_a_422(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    headers = bearer(make_token(db, clock=clock, workspace=workspace))
    db.commit()
    rules = [{"key": "all", "name_zh": "全部", "name_en": "All", "r": [1, 10**400], "fm": [1, 5]}]
    put = client.put("/api/v1/analytics/settings", headers=headers, json={"rfm_segments": rules})
    assert put.status_code == 422 and put.json()["error"]["details"]["field"] == "rfm_segments[0].r"


def test_drill_of_no_recent_orders_leaves_erased_out(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    s = build(db, clock, workspace)
    _erase_some(db, clock, s)
    db.commit()
    token = login(client, user_with_role(Role.OPERATOR).email)
    done = client.post("/analytics/rfm/cell", data={"csrf_token": token, "no_recent_orders": "1"})
    segment_id = int(done.headers["location"].rsplit("/", 1)[1])
    members = db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment_id)).all()
    assert sorted(members) == sorted([s.e.id, s.n.id])


def test_page_view_computes_rfm_once(
    client: TestClient,
    db: Session,
    clock: FrozenClock,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    build(db, clock, workspace)
    db.commit()
    calls: list[Any] = []
    real = views.compute_rfm

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("window_days"))
        return real(*args, **kwargs)

    monkeypatch.setattr(views, "compute_rfm", counted)
    login(client, user_with_role(Role.ANALYST).email)
    assert client.get("/analytics/rfm").status_code == 200
    assert len(calls) == 1
    assert client.get("/analytics/rfm/export?table=customers&format=csv").status_code == 200
    assert len(calls) == 2
