"""The fit page, the KPI planner pages and the planning API, on the hand-built pool in scenario.py."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import datetime

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import KpiPlan, Role, User, Workspace
from tests.analytics.planning.scenario import build
from tests.api.conftest import bearer
from tests.factories import make_staff, make_token
from tests.web.conftest import login

_TAGS = re.compile(r"<[^>]+>")


def stat(html: str, key: str) -> str:
    match = re.search(rf'data-stat="{key}".*?data-value>(.*?)</div>', html, re.S)
    assert match, key
    return match.group(1).strip()


def text_of(html: str, marker: str, end: str = "</div>") -> str:
    start = html.rindex("<", 0, html.index(marker))
    return " ".join(_TAGS.sub(" ", html[start : html.index(end, start + len(marker))]).split())


def _plans(db: Session, ws: Workspace) -> int:
    return int(db.scalar(select(func.count()).select_from(KpiPlan).where(KpiPlan.workspace_id == ws.id)) or 0)


def test_fit_page_shows_the_verdict_measures_and_exports(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    build(db, clock, workspace)
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    # margin 50 %, ¥10 a month, ¥60 to acquire → contribution ¥180 a year, payback 4 months (see test_service)
    page = client.get("/analytics/fit?margin_pct=50&operating_cost_yuan=10&acquisition_cost_yuan=60")
    assert page.status_code == 200
    html = page.text
    assert 'data-verdict="yes"' in html
    assert "每位会员一年贡献毛利 ¥180.00，获客成本 ¥60.00 在 4 个月收回：私域能养活自己" in html
    assert (stat(html, "pool_now"), stat(html, "contribution"), stat(html, "payback")) == ("3", "¥180.00", "4.00")
    assert text_of(html, 'data-measure="deletion_rate"', "</tr>").startswith("月删除率 25.0% 1 4")
    assert text_of(html, 'data-measure="cycle"', "</tr>").startswith("复购周期（天） 30.00")
    assert 'id="history-chart"' in html
    # exports: the monthly history, money in yuan, rates as fractions
    rows = list(csv.reader(io.StringIO(client.get("/analytics/fit?format=csv").content.decode("utf-8-sig"))))
    assert rows[0] == ["月份", "添加", "删除（离开私域的人）", "月初私域人数", "删除率", "月末私域人数", "订单", "GMV"]
    assert rows[1:] == [
        ["2026-08-01", "2", "0", "0", "", "2", "1", "100.0"],
        ["2026-09-01", "1", "1", "2", "0.5", "2", "1", "200.0"],
        ["2026-10-01", "1", "0", "2", "0.0", "3", "1", "50.0"],
        ["合计", "4", "1", "4", "0.25", "3", "3", "350.0"],
    ]
    book = load_workbook(io.BytesIO(client.get("/analytics/fit?format=xlsx").content))
    sheet = book.active
    assert sheet is not None
    assert [c.value for c in sheet[3]] == [datetime(2026, 9, 1), 1, 1, 2, 0.5, 2, 1, 200.0]
    # bad input: the field is named, the page still renders (422)
    bad = client.get("/analytics/fit?margin_pct=abc")
    assert bad.status_code == 422 and 'data-error="margin_pct"' in bad.text
    assert client.get("/analytics/fit?margin_pct=150").status_code == 422
    assert client.get("/analytics/fit?format=pdf").status_code == 422


def test_empty_workspace_pages_and_api(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    login(client, user_with_role(Role.OPERATOR).email)
    fit = client.get("/analytics/fit")
    assert (
        fit.status_code == 200
        and 'data-verdict="incomplete"' in fit.text
        and not re.search(r">\s*nan\s*<", fit.text, re.I)
    )
    assert "这个范围内还没有数据。" in fit.text
    kpi = client.get("/analytics/kpi")
    assert kpi.status_code == 200 and "还没有目标。" in kpi.text
    token = make_token(db, clock=clock, workspace=workspace)
    db.commit()
    body = client.get("/api/v1/analytics/history", headers=bearer(token)).json()
    assert body["pool_now"] == 0 and body["months"] == [] and body["aov_fen"]["value"] is None
    assert client.get("/api/v1/analytics/fit", headers=bearer(token)).json()["verdict"] == "incomplete"
    # store staff have no analytics scope: 403 on both pages
    staff = make_staff(db, workspace=workspace, clock=clock)
    login(client, user_with_role(Role.STAFF, staff_id=staff.id).email)
    assert client.get("/analytics/fit").status_code == 403
    assert client.get("/analytics/kpi").status_code == 403


def test_plan_form_saves_opens_exports_and_deletes(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    build(db, clock, workspace)
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    form_page = client.get("/analytics/kpi").text
    # pre-filled from history: next month, pool now 3, deletion rate 0.25, 30-day conversion 0.25, AOV ¥116.67
    for field, value in (
        ("first_month", "2026-12"),
        ("last_month", "2027-05"),
        ("start_pool", "3"),
        ("monthly_deletion_rate", "0.25"),
        ("first_order_rate", "0.25"),
        ("repurchase_rate", "0.5"),
        ("aov_yuan", "116.67"),
    ):
        assert f'name="{field}" value="{value}"' in form_page, field
    form = {
        "csrf_token": csrf,
        "name": "秋季目标",
        "first_month": "2026-09",
        "last_month": "2026-12",
        "start_pool": "2",
        "start_buyers": "0",
        "target_pool": "6",
        "target_gmv_yuan": "400",
        "monthly_deletion_rate": "0",
        "first_order_rate": "0.5",
        "repurchase_rate": "0",
        "aov_yuan": "100",
    }
    # bad input re-renders with the field named and saves nothing
    bad = client.post("/analytics/kpi", data=form | {"last_month": "2026-08"})
    assert bad.status_code == 422 and 'data-error="last_month"' in bad.text
    assert client.post("/analytics/kpi", data=form | {"first_order_rate": "2"}).status_code == 422
    assert client.post("/analytics/kpi", data=form | {"target_gmv_yuan": "abc"}).status_code == 422
    assert _plans(db, workspace) == 0
    saved = client.post("/analytics/kpi", data=form)
    assert saved.status_code == 303
    url = saved.headers["location"]
    detail = client.get(url).text
    # October is behind on pool (3 of 4, 25 %) and GMV (¥50 of ¥100, 50 %)
    assert text_of(detail, 'data-behind="2026-10"') == "2026-10 落后: 月末私域人数 −1 (25.0%) ; GMV −¥50.00 (50.0%)"
    assert 'data-pace="2026-11"' in detail
    rows = list(csv.reader(io.StringIO(client.get(f"{url}?format=csv").content.decode("utf-8-sig"))))
    # the file carries the page's "behind" flags: which figures, each shortfall and its share of plan
    assert rows[0] == [
        "月份", "状态", "计划添加", "实际添加", "计划删除", "实际删除", "计划月末人数", "实际月末人数",
        "计划订单", "实际订单", "计划 GMV", "实际 GMV", "落后", "添加缺口", "添加缺口占计划",
        "月末人数缺口", "月末人数缺口占计划", "订单缺口", "订单缺口占计划", "GMV 缺口", "GMV 缺口占计划",
    ]  # fmt: skip
    assert rows[1] == [
        "2026-09-01", "已结束", "1", "1", "0", "1", "3", "2", "1", "1", "100.0", "200.0",
        "月末人数", "", "", "1", "0.333333", "", "", "", "",
    ]  # fmt: skip
    assert rows[2] == [
        "2026-10-01", "已结束", "1", "1", "0", "0", "4", "3", "1", "1", "100.0", "50.0",
        "月末人数、GMV", "", "", "1", "0.25", "", "", "50.0", "0.5",
    ]  # fmt: skip
    assert rows[3][:2] == ["2026-11-01", "本月"] and rows[3][12:] == [""] * 9  # the current month is paced, not flagged
    assert rows[4] == ["2026-12-01", "未开始", "1", "", "0", "", "6", "", "1", "", "100.0", ""] + [""] * 9
    # a taken name is a field error
    assert 'data-error="name"' in client.post("/analytics/kpi", data=form).text
    assert client.post(f"{url}/delete", data={"csrf_token": csrf}).status_code == 303
    assert _plans(db, workspace) == 0
    assert client.get(url).status_code == 404


def test_api_crud_with_actuals_and_permissions(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    build(db, clock, workspace)
    token = make_token(db, clock=clock, workspace=workspace)
    reader = make_token(db, clock=clock, workspace=workspace, scopes=["analytics:read"])
    none = make_token(db, clock=clock, workspace=workspace, scopes=["customers:read"])
    db.commit()
    history = client.get("/api/v1/analytics/history", headers=bearer(token)).json()
    assert history["deletion_rate"] == {
        "value": 0.25,
        "numerator": 1,
        "denominator": 4,
        "basis": "customers who left the pool (lost their last open friend edge) in the months"
        " ÷ pool at each month start",
    }
    assert [m["gmv_fen"] for m in history["months"]] == [10_000, 20_000, 5_000]
    fit = client.get(
        "/api/v1/analytics/fit?margin_bp=5000&operating_cost_fen=1000&acquisition_cost_fen=6000", headers=bearer(token)
    ).json()
    assert (fit["verdict"], fit["payback_months"]) == ("yes", 4.0)
    assert client.get("/api/v1/analytics/fit?margin_bp=-1", headers=bearer(token)).json()["error"]["details"] == {
        "field": "margin_bp"
    }
    body = {
        "name": "API",
        "first_month": "2026-09",
        "last_month": "2026-12",
        "start_pool": 2,
        "target_pool": 6,
        "target_gmv_fen": 40_000,
        "monthly_deletion_rate": 0,
        "first_order_rate": 0.5,
        "repurchase_rate": 0,
        "aov_fen": 10_000,
        "start_buyers": 0,
    }
    bad = client.post("/api/v1/analytics/kpi-plans", json=body | {"repurchase_rate": 1.2}, headers=bearer(token))
    assert bad.status_code == 422 and bad.json()["error"]["details"] == {"field": "repurchase_rate"}
    assert client.post("/api/v1/analytics/kpi-plans", json=body, headers=bearer(reader)).status_code == 403
    created = client.post("/api/v1/analytics/kpi-plans", json=body, headers=bearer(token))
    assert created.status_code == 201
    plan_id = created.json()["id"]
    assert [m["gmv_fen"] for m in created.json()["months"]] == [10_000] * 4
    detail = client.get(f"/api/v1/analytics/kpi-plans/{plan_id}", headers=bearer(reader)).json()
    october = detail["progress"][1]
    assert october["actual"] == {"adds": 1, "deletions": 0, "pool": 3, "orders": 1, "gmv_fen": 5_000}
    assert october["behind"] == {"pool": {"shortfall": 1, "share": 0.25}, "gmv_fen": {"shortfall": 5_000, "share": 0.5}}
    assert [p["id"] for p in client.get("/api/v1/analytics/kpi-plans", headers=bearer(reader)).json()["items"]] == [
        plan_id
    ]
    # defaults from history when assumptions are left out
    defaulted = client.post(
        "/api/v1/analytics/kpi-plans",
        headers=bearer(token),
        json={
            "name": "默认",
            "first_month": "2026-12",
            "last_month": "2027-02",
            "target_pool": 10,
            "target_gmv_fen": 100_000,
        },
    )
    assert defaulted.status_code == 201
    assert defaulted.json()["start_pool"] == 3
    assert defaulted.json()["assumptions"]["monthly_deletion_rate"] == 0.25
    assert defaulted.json()["assumptions"]["aov_fen"] == 11_667
    assert client.get("/api/v1/analytics/history", headers=bearer(none)).status_code == 403
    assert client.get("/api/v1/analytics/kpi-plans/999999", headers=bearer(token)).status_code == 404
    assert client.delete(f"/api/v1/analytics/kpi-plans/{plan_id}", headers=bearer(reader)).status_code == 403
    assert client.delete(f"/api/v1/analytics/kpi-plans/{plan_id}", headers=bearer(token)).status_code == 204
