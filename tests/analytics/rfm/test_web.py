"""The RFM page, exports, drill-downs, settings page and API, end to end."""

from __future__ import annotations

import io
from collections.abc import Callable

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import AnalyticsSettings, Role, Segment, SegmentMember, User, Workspace
from tests.analytics.rfm.scenario import build
from tests.api.conftest import bearer
from tests.factories import make_staff, make_token
from tests.web.conftest import login


def _segments(db: Session, ws: Workspace) -> int:
    return int(db.scalar(select(func.count()).select_from(Segment).where(Segment.workspace_id == ws.id)) or 0)


def test_page_shows_grid_and_segments(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    build(db, clock, workspace)
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    page = client.get("/analytics/rfm")
    assert page.status_code == 200
    html = page.text
    assert '<div class="h2 mb-0" data-value>4</div>' in html  # scored customers
    assert "¥760.00" in html
    cell = html[html.index('data-cell="r2f5"') :]
    assert cell.index("<div data-count>1</div>") < 40 and "¥260.00" in cell[:200]
    row = html[html.index('data-segment="loyal"') :]
    row = row[: row.index("</tr>")]
    assert '<td data-col="customers" class="text-end">2</td>' in row
    assert '<td data-col="revenue_fen" class="text-end">¥450.00</td>' in row


def test_exports_have_exact_values(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    s = build(db, clock, workspace)
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    csv = client.get("/analytics/rfm/export?table=customers&format=csv")
    assert csv.status_code == 200
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "客户 ID,姓名,最近一次购买日,最近购买天数,订单数,消费金额,R,F,M,RFM 分群名"
    assert f"{s.d.id},客户D,2026-05-27,180,3,260.0,2,5,4,有流失风险" in lines
    assert len(lines) == 5
    xlsx = client.get("/analytics/rfm/export?table=segments&format=xlsx")
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    rows = {r[0]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows["loyal"][1:6] == ("忠诚", 2, 0.5, 450.0, round(45_000 / 76_000, 6))
    assert client.get("/analytics/rfm/export?table=nope&format=csv").status_code == 422


def test_drill_cell_and_segment_make_static_segments(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    s = build(db, clock, workspace)
    db.commit()
    token = login(client, user_with_role(Role.OPERATOR).email)
    done = client.post("/analytics/rfm/cell", data={"csrf_token": token, "window_days": "365", "r": "4", "f": "2"})
    assert done.status_code == 303
    segment_id = int(done.headers["location"].rsplit("/", 1)[1])
    members = db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment_id)).all()
    assert list(members) == [s.b.id]
    loyal = client.post("/analytics/rfm/cell", data={"csrf_token": token, "window_days": "365", "segment": "loyal"})
    loyal_id = int(loyal.headers["location"].rsplit("/", 1)[1])
    members = db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == loyal_id)).all()
    assert sorted(members) == sorted([s.a.id, s.b.id])
    unscored = client.post("/analytics/rfm/cell", data={"csrf_token": token, "no_recent_orders": "1"})
    unscored_id = int(unscored.headers["location"].rsplit("/", 1)[1])
    members = db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == unscored_id)).all()
    assert sorted(members) == sorted([s.e.id, s.n.id])
    before = _segments(db, workspace)
    bad = client.post("/analytics/rfm/cell", data={"csrf_token": token, "r": "6", "f": "2"})
    assert bad.status_code == 422
    assert _segments(db, workspace) == before


def test_staff_gets_403_and_empty_workspace_page(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    login(client, user_with_role(Role.ANALYST).email)
    page = client.get("/analytics/rfm")
    assert page.status_code == 200
    assert "这个范围内还没有数据。" in page.text
    bad = client.get("/analytics/rfm?window_days=abc")
    assert bad.status_code == 422 and 'data-error="window_days"' in bad.text
    client.cookies.clear()
    staff = make_staff(db, workspace=workspace, clock=clock)
    login(client, user_with_role(Role.STAFF, staff_id=staff.id).email)
    assert client.get("/analytics/rfm").status_code == 403
    assert client.get("/analytics/settings").status_code == 403


def test_settings_page_saves_and_shows_field_errors(
    client: TestClient, db: Session, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    token = login(client, user_with_role(Role.OPERATOR).email)
    form = {
        "csrf_token": token,
        "rfm_window_days": "0",
        "rfm_segments": "[{",
        "gross_margin_pct": "45",
        "operating_cost_yuan": "3.50",
        "super_user_top_pct": "10",
        "clv_horizon_days": "180",
        "clv_time_unit": "day",
    }
    bad = client.post("/analytics/settings", data=form)
    assert bad.status_code == 422
    assert 'data-error="rfm_window_days"' in bad.text and 'data-error="rfm_segments"' in bad.text
    assert 'data-error="gross_margin_pct"' not in bad.text
    assert db.scalar(select(func.count()).select_from(AnalyticsSettings)) == 0
    saved = client.post("/analytics/settings", data=form | {"rfm_window_days": "180", "rfm_segments": ""})
    assert saved.status_code == 303
    row = db.scalar(select(AnalyticsSettings).where(AnalyticsSettings.workspace_id == workspace.id))
    assert row is not None
    assert (row.rfm_window_days, row.gross_margin_bp, row.operating_cost_fen_per_member_month) == (180, 4500, 350)
    assert (row.super_user_top_pct, row.clv_horizon_days, row.clv_time_unit, row.rfm_segments) == (10, 180, "day", [])
    page = client.get("/analytics/settings")
    assert 'value="45"' in page.text and 'value="3.50"' in page.text


def test_api_rfm_settings_and_drill(client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    s = build(db, clock, workspace)
    headers = bearer(make_token(db, clock=clock, workspace=workspace))
    reader = bearer(make_token(db, clock=clock, workspace=workspace, scopes=["analytics:read"]))
    db.commit()
    body = client.get("/api/v1/analytics/rfm", headers=reader).json()
    assert (body["scored_customers"], body["no_recent_orders"], body["revenue_fen"]) == (4, 2, 76_000)
    cell = next(r for r in body["grid"]["rows"] if (r["r"], r["f"]) == (2, 5))
    assert cell == {"r": 2, "f": 5, "customers": 1, "share": 0.25, "revenue_fen": 26_000}
    assert client.get("/api/v1/analytics/rfm?window_days=0", headers=reader).status_code == 422
    denied = client.post("/api/v1/analytics/rfm/cell", headers=reader, json={"segment": "loyal"})
    assert denied.status_code == 403
    made = client.post("/api/v1/analytics/rfm/cell", headers=headers, json={"segment": "at_risk"})
    assert made.status_code == 200 and made.json()["members"] == 1
    unknown = client.post("/api/v1/analytics/rfm/cell", headers=headers, json={"segment": "nope"})
    assert unknown.status_code == 422 and unknown.json()["error"]["details"]["field"] == "segment"
    assert client.get("/api/v1/analytics/settings", headers=reader).json()["rfm_window_days"] == 365
    put = client.put("/api/v1/analytics/settings", headers=headers, json={"super_user_top_pct": 101})
    assert put.status_code == 422 and put.json()["error"]["details"]["field"] == "super_user_top_pct"
    put = client.put("/api/v1/analytics/settings", headers=headers, json={"rfm_window_days": 30})
    assert put.status_code == 200 and put.json()["rfm_window_days"] == 30
    assert client.get("/api/v1/analytics/rfm", headers=reader).json()["scored_customers"] == 2
    assert s.a.id  # scenario used
