"""The retention page, its exports, saved reports and drill-downs, and the JSON API."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import Role, SavedReport, Segment, SegmentMember, User, Workspace
from tests.analytics.retention.factories import seed_history
from tests.factories import make_staff, make_token
from tests.web.conftest import login

QUERY = "from=2026-11-02&to=2026-11-15&offsets=3"
_TAGS = re.compile(r"<[^>]+>")


def row_cells(html: str, cohort: str) -> dict[str, str]:
    """The heat-map cells of one cohort row, as the text a person reads."""
    start = html.index(f'data-cohort="{cohort}"')
    row = html[start : html.index("</tr>", start)]
    cells = re.findall(r'<td data-col="(\w+)"[^>]*>(.*?)</td>', row, re.S)
    return {key: " ".join(_TAGS.sub("", text).split()) for key, text in cells}


def _count(db: Session, model: Any, ws: Workspace) -> int:
    return int(db.scalar(select(func.count()).select_from(model).where(model.workspace_id == ws.id)) or 0)


def test_page_shows_the_heatmap_and_exports(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    # given the hand-built history (test_service: W1 = 11-02 {A, B}: 1,1,1,0; W2 = 11-09 {C, D}: 1,0,1,—)
    seed_history(db, workspace, clock)
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    page = client.get(f"/analytics/retention?{QUERY}")
    assert page.status_code == 200, page.text
    assert row_cells(page.text, "2026-11-02") == {
        "size": "2",
        "o0": "50.0%",
        "o1": "50.0%",
        "o2": "50.0%",
        "o3": "0.0%",
    }
    assert row_cells(page.text, "2026-11-09") == {"size": "2", "o0": "50.0%", "o1": "0.0%", "o2": "50.0%", "o3": "—"}
    # W1 +3 and W2 +2 run this week: flagged in italics and left out of the average (+2 W1 1/2, +3 none)
    assert row_cells(page.text, "average") == {"o0": "50.0%", "o1": "25.0%", "o2": "50.0%", "o3": "—"}
    running = re.findall(r'<tr data-cohort="([\d-]+)">.*?<td data-col="(o\d)"[^>]*data-in-progress', page.text, re.S)
    assert running == [("2026-11-02", "o3"), ("2026-11-09", "o2")]
    assert 'data-in-progress class="fst-italic" title="进行中"' in page.text
    assert 'id="retention-chart"' in page.text
    # the CSV has the rates as fractions, the average last, an empty cell where the offset is not reached
    csv = client.get(f"/analytics/retention?{QUERY}&format=csv")
    assert csv.status_code == 200 and csv.content.startswith("\ufeff".encode())
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines == [
        "同期群,人数,进入当期,1 周后,2 周后,3 周后",
        "2026-11-02,2,0.5,0.5,0.5,0.0",
        "2026-11-09,2,0.5,0.0,0.5,",
        "平均（按人数加权）,4,0.5,0.25,0.5,",
    ]
    # the XLSX of the counts keeps numbers as numbers
    xlsx = client.get(f"/analytics/retention?{QUERY}&format=xlsx&table=counts")
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    assert [list(r) for r in sheet.iter_rows(values_only=True)] == [
        ["同期群", "人数", "进入当期", "1 周后", "2 周后", "3 周后"],
        [datetime(2026, 11, 2), 2, 1, 1, 1, 0],  # dates stay dates
        [datetime(2026, 11, 9), 2, 1, 0, 1, None],
    ]


def test_drill_makes_a_segment_of_the_cell(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    h = seed_history(db, workspace, clock)
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    form = {"csrf_token": csrf, "from": "2026-11-02", "to": "2026-11-15", "offsets": "3", "cell": "2026-11-02:1"}
    response = client.post("/analytics/retention/cell", data=form)
    assert response.status_code == 303, response.text
    segment_id = int(response.headers["location"].rsplit("/", 1)[1])
    members = db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment_id)).all()
    assert list(members) == [h.b.id]  # W1 +1: only B ordered (11-12)
    assert db.get(Segment, segment_id).name == "留存 2026-11-02 +1周"  # type: ignore[union-attr]
    # a cell not reached yet re-renders the page with the message, nothing written
    before = _count(db, Segment, workspace)
    bad = client.post("/analytics/retention/cell", data=form | {"cell": "2026-11-09:3"})
    assert bad.status_code == 422 and 'data-error="offset"' in bad.text
    assert _count(db, Segment, workspace) == before


def test_saved_reports_round_trip(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    csrf = login(client, user_with_role(Role.ANALYST).email)
    form = {"csrf_token": csrf, "name": "月度复购", "grain": "month", "criterion": "on_or_after", "offsets": "6"}
    saved = client.post("/analytics/retention/reports", data=form)
    assert saved.status_code == 303
    report = db.scalar(select(SavedReport).where(SavedReport.workspace_id == workspace.id))
    assert report is not None and report.config["grain"] == "month" and report.config["offsets"] == 6
    opened = client.get(saved.headers["location"])
    assert opened.status_code == 200 and 'value="month" selected' in opened.text and "月度复购" in opened.text
    # the same name twice is refused with the message by the form
    clash = client.post("/analytics/retention/reports", data=form)
    assert clash.status_code == 422 and "is-invalid" in clash.text
    gone = client.post(f"/analytics/retention/reports/{report.id}/delete", data={"csrf_token": csrf})
    assert gone.status_code == 303 and _count(db, SavedReport, workspace) == 0


def test_save_creates_and_only_update_replaces(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    csrf = login(client, user_with_role(Role.ANALYST).email)
    first = client.post("/analytics/retention/reports", data={"csrf_token": csrf, "name": "周复购", "offsets": "4"})
    report_id = int(first.headers["location"].rsplit("=", 1)[1])
    # given the saved report open: the plain save form carries no report_id, the update form does
    page = client.get(f"/analytics/retention?report={report_id}").text
    save_form = page[page.index('id="save-form"') : page.index("</form>", page.index('id="save-form"'))]
    update_form = page[page.index('id="update-form"') : page.index("</form>", page.index('id="update-form"'))]
    assert "report_id" not in save_form
    assert f'name="report_id" value="{report_id}"' in update_form and 'value="周复购"' in update_form
    # when saving under a new name from the open report: a second report, the first untouched
    client.post("/analytics/retention/reports", data={"csrf_token": csrf, "name": "月复购", "grain": "month"})
    rows = db.execute(select(SavedReport.name, SavedReport.config).where(SavedReport.workspace_id == workspace.id))
    by_name = {name: config for name, config in rows}
    assert sorted(by_name) == ["周复购", "月复购"] and by_name["周复购"]["offsets"] == 4
    # when "更新此报表" posts: the open report's definition is replaced, its name kept
    form = {"csrf_token": csrf, "report_id": str(report_id), "name": "周复购", "offsets": "6"}
    assert client.post("/analytics/retention/reports", data=form).status_code == 303
    db.expire_all()
    updated = db.get(SavedReport, report_id)
    assert updated is not None and updated.name == "周复购" and updated.config["offsets"] == 6
    assert _count(db, SavedReport, workspace) == 2


def test_export_with_bad_controls_is_refused(
    client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    login(client, user_with_role(Role.ANALYST).email)
    bad = client.get("/analytics/retention?format=csv&offsets=0")
    assert bad.status_code == 422 and 'data-error="offsets"' in bad.text
    assert bad.headers["content-type"].startswith("text/html")
    bad_date = client.get("/analytics/retention?format=xlsx&from=2026-13-01")
    assert bad_date.status_code == 422 and 'data-error="from"' in bad_date.text


def test_empty_workspace_and_bad_input(
    client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    login(client, user_with_role(Role.ANALYST).email)
    empty = client.get("/analytics/retention")
    assert empty.status_code == 200 and "这个范围内还没有数据。" in empty.text and "nan" not in empty.text.lower()
    bad = client.get("/analytics/retention?from=2026-13-01")
    assert bad.status_code == 422 and 'data-error="from"' in bad.text
    bad_grain = client.get("/analytics/retention?grain=day")
    assert bad_grain.status_code == 422 and 'data-error="grain"' in bad_grain.text


def test_staff_gets_403(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    staff = make_staff(db, workspace=workspace, clock=clock)
    login(client, user_with_role(Role.STAFF, staff_id=staff.id).email)
    assert client.get("/analytics/retention").status_code == 403
    headers = {"Authorization": f"Bearer {make_token(db, clock=clock, workspace=workspace, scopes=['customers:read'])}"}
    db.commit()
    assert client.post("/api/v1/analytics/retention/run", json={}, headers=headers).status_code == 403


def test_api_run_cell_and_reports(client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    h = seed_history(db, workspace, clock)
    headers = {"Authorization": f"Bearer {make_token(db, clock=clock, workspace=workspace)}"}
    db.commit()
    body = {"from": "2026-11-02", "to": "2026-11-15", "config": {"measure": "friend", "offsets": 3}}
    run = client.post("/api/v1/analytics/retention/run", json=body, headers=headers)
    assert run.status_code == 200, run.text
    data = run.json()
    # friend retention, worked in test_service.test_friend_retention
    assert [(c["start"], c["size"], c["counts"]) for c in data["cohorts"]] == [
        ("2026-11-02", 2, [2, 1, 1, 1]),
        ("2026-11-09", 2, [1, 2, 2, None]),
    ]
    # W1 +3 and W2 +2 are in progress: flagged, and out of the average (+2 W1 1/2, +3 none)
    assert [c["in_progress"] for c in data["cohorts"]] == [3, 2]
    assert data["average"] == [0.75, 0.75, 0.5, None]
    cell = client.post(
        "/api/v1/analytics/retention/cell", json=body | {"cohort": "2026-11-09", "offset": 1}, headers=headers
    )
    assert cell.status_code == 200 and cell.json()["members"] == 2
    bad = client.post("/api/v1/analytics/retention/run", json={"config": {"offsets": 99}}, headers=headers)
    assert bad.status_code == 422 and bad.json()["error"]["details"] == {"field": "config.offsets"}
    bad_date = client.post("/api/v1/analytics/retention/run", json={"from": "nope"}, headers=headers)
    assert bad_date.status_code == 422 and bad_date.json()["error"]["details"][0]["field"] == "from"
    created = client.post(
        "/api/v1/analytics/retention/reports", json={"name": "周好友", "config": {"measure": "friend"}}, headers=headers
    )
    assert created.status_code == 201 and created.json()["config"]["offsets"] == 8
    report_id = created.json()["id"]
    assert [r["name"] for r in client.get("/api/v1/analytics/retention/reports", headers=headers).json()] == ["周好友"]
    updated = client.put(
        f"/api/v1/analytics/retention/reports/{report_id}", json={"name": "周好友2", "config": {}}, headers=headers
    )
    assert updated.json()["name"] == "周好友2"
    assert client.delete(f"/api/v1/analytics/retention/reports/{report_id}", headers=headers).status_code == 204
    assert client.get(f"/api/v1/analytics/retention/reports/{report_id}", headers=headers).status_code == 404
    _ = h


def test_odd_digits_and_huge_ids_are_field_errors(
    client: TestClient, db: Session, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    huge = "9" * 5000  # int() would refuse it (over 4,300 digits); parse_id refuses it first
    assert client.get(f"/analytics/retention?report={huge}").status_code == 422
    saved = client.post("/analytics/retention/reports", data={"csrf_token": csrf, "name": "x", "report_id": huge})
    assert saved.status_code == 422 and 'data-error="save"' in saved.text
    # "²".isdigit() is True but int("²") raises: the offset is a field error, never a 500
    form = {"csrf_token": csrf, "from": "2026-11-02", "to": "2026-11-15", "cell": "2026-11-02:²"}
    cell = client.post("/analytics/retention/cell", data=form)
    assert cell.status_code == 422 and 'data-error="offset"' in cell.text
    assert client.post("/analytics/retention/cell", data=form | {"cell": f"2026-11-02:{huge}"}).status_code == 422
    bad_offsets = client.get("/analytics/retention?offsets=²")
    assert bad_offsets.status_code == 422 and 'data-error="offsets"' in bad_offsets.text
    assert _count(db, Segment, workspace) == 0
