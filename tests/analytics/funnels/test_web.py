"""The funnel page and API: figures, exports, saved funnels, drop-off drill, permissions, bad input, empty state."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import ReportKind, Role, SavedReport, Segment, SegmentMember, User, Workspace
from tests.analytics.funnels.scenario import BASIC, build
from tests.factories import make_staff, make_token
from tests.web.conftest import login

RANGE = {"from": "2026-11-01", "to": "2026-11-20"}


def page_url(definition: dict[str, Any] | None = BASIC, **extra: str) -> str:
    query = dict(RANGE) | extra
    if definition is not None:
        query["definition"] = json.dumps(definition)
    return "/analytics/funnels?" + urlencode(query)


def _count(db: Session, model: Any, ws: Workspace) -> int:
    return int(db.scalar(select(func.count()).select_from(model).where(model.workspace_id == ws.id)) or 0)


def test_page_shows_steps_and_exports_the_same_cells(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    build(db, clock, workspace)
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    page = client.get(page_url(BASIC | {"breakdown": {"by": "channel"}}))
    assert page.status_code == 200, page.text
    html = page.text
    # 4 entered, 3 added (75.0 %), 1 first order (33.3 % of the adds, 25.0 % overall); median 2 h and 70 h
    assert '<td data-col="customers" class="text-end">4</td>' in html
    assert '<td data-col="step_conversion" class="text-end">33.3%</td>' in html
    assert '<td data-col="median_hours" class="text-end">70.00</td>' in html
    assert 'data-drop-off="2"' in html and "包裹卡" in html
    csv_file = client.get(page_url(format="csv"))
    assert csv_file.status_code == 200
    rows = list(csv.reader(io.StringIO(csv_file.content.decode("utf-8-sig"))))
    assert rows == [
        ["步骤", "人数", "步骤转化率", "总转化率", "中位耗时（小时）"],
        ["1. 扫码", "4", "", "1.0", ""],
        ["2. 加为好友", "3", "0.75", "0.75", "2.0"],
        ["3. 私域第 1 单", "1", "0.333333", "0.25", "70.0"],
    ]
    xlsx = client.get(page_url(BASIC | {"breakdown": {"by": "channel"}}, format="xlsx", table="breakdown"))
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    assert [list(r) for r in sheet.iter_rows(values_only=True)] == [
        ["分组", "1. 扫码", "2. 加为好友", "3. 私域第 1 单", "总转化率"],
        ["包裹卡", 2, 1, 1, 0.5],
        ["门店", 1, 1, 0, 0.0],
        ["（未记录）", 1, 1, 0, 0.0],
    ]


def test_save_open_drill_and_delete_from_the_console(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    s = build(db, clock, workspace)
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    saved = client.post(
        "/analytics/funnels/save",
        data={"csrf_token": csrf, "name": "首单漏斗", "definition": json.dumps(BASIC)} | RANGE,
    )
    assert saved.status_code == 303
    report = db.scalars(select(SavedReport).where(SavedReport.kind == ReportKind.FUNNEL)).one()
    opened = client.get(saved.headers["location"])
    assert opened.status_code == 200 and "首单漏斗" in opened.text and 'data-drop-off="2"' in opened.text
    drill = client.post(
        "/analytics/funnels/drop-off", data={"csrf_token": csrf, "definition": json.dumps(BASIC), "step": "2"} | RANGE
    )
    assert drill.status_code == 303
    segment_id = int(drill.headers["location"].rsplit("/", 1)[1])
    members = set(db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment_id)))
    assert members == {s.c["c3"].id, s.c["c5"].id}
    assert client.post(f"/analytics/funnels/{report.id}/delete", data={"csrf_token": csrf}).status_code == 303
    assert _count(db, SavedReport, workspace) == 0


def test_bad_input_re_renders_with_the_field_and_writes_nothing(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    csrf = login(client, user_with_role(Role.ANALYST).email)
    bad = client.get(page_url({"steps": [{"kind": "scan"}, {"kind": "added", "within": {"days": 0}}]}))
    assert bad.status_code == 422 and "definition.steps[1].within.days" in bad.text
    assert client.get(page_url(None, **{"from": "2026-13-01"})).status_code == 422
    assert client.get("/analytics/funnels?definition=%7Bnot+json").status_code == 422
    assert client.get("/analytics/funnels?report=999999").status_code == 422
    saved = client.post(
        "/analytics/funnels/save", data={"csrf_token": csrf, "name": "", "definition": json.dumps(BASIC)}
    )
    assert saved.status_code == 422 and 'data-error="name"' in saved.text
    drill = client.post(
        "/analytics/funnels/drop-off", data={"csrf_token": csrf, "definition": json.dumps(BASIC), "step": "9"}
    )
    assert drill.status_code == 422 and 'data-error="step"' in drill.text
    # "²".isdigit() is True but int("²") raises; 5,000 digits is past int()'s limit: both are field errors
    for url in ("/analytics/funnels/drop-off", "/analytics/funnels/reached"):
        for step in ("²", "9" * 5_000, "-1", "4"):
            posted = client.post(url, data={"csrf_token": csrf, "definition": json.dumps(BASIC), "step": step} | RANGE)
            assert posted.status_code == 422 and 'data-error="step"' in posted.text, (url, step[:5])
    page = client.get("/analytics/funnels?" + urlencode({"report": "9" * 5_000}))
    assert page.status_code == 422 and 'data-error="report"' in page.text
    assert _count(db, SavedReport, workspace) == 0 and _count(db, Segment, workspace) == 0


def test_empty_workspace_page_and_api(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    login(client, user_with_role(Role.ANALYST).email)
    page = client.get("/analytics/funnels")
    assert page.status_code == 200 and 'id="funnel-empty"' in page.text and "nan" not in page.text.lower()
    token = make_token(db, clock=clock, workspace=workspace)
    db.commit()
    body = client.post("/api/v1/analytics/funnels/run", json={}, headers={"Authorization": f"Bearer {token}"}).json()
    assert body["total"]["steps"] == [
        {"step": k, "customers": 0, "step_conversion": None, "overall_conversion": None, "median_hours": None}
        for k in (1, 2, 3)
    ]


def test_staff_get_403_on_page_and_api(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    staff = make_staff(db, workspace=workspace, clock=clock)
    db.commit()
    csrf = login(client, user_with_role(Role.STAFF, staff_id=staff.id).email)
    assert client.get("/analytics/funnels").status_code == 403
    drill = client.post(
        "/analytics/funnels/drop-off", data={"csrf_token": csrf, "definition": json.dumps(BASIC), "step": "1"}
    )
    assert drill.status_code == 403
    token = make_token(db, clock=clock, workspace=workspace, scopes=["customers:read"])
    db.commit()
    auth = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/analytics/funnels/run", json={}, headers=auth).status_code == 403
    assert client.get("/api/v1/analytics/funnels", headers=auth).status_code == 403
    assert _count(db, Segment, workspace) == 0


def test_api_run_crud_and_drop_off(client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    s = build(db, clock, workspace)
    token = make_token(db, clock=clock, workspace=workspace)
    db.commit()
    auth = {"Authorization": f"Bearer {token}"}
    ran = client.post("/api/v1/analytics/funnels/run", json={"definition": BASIC} | RANGE, headers=auth)
    assert ran.status_code == 200
    assert [st["customers"] for st in ran.json()["total"]["steps"]] == [4, 3, 1]
    bad = client.post(
        "/api/v1/analytics/funnels/run", json={"definition": {"steps": [{"kind": "scan"}, {"kind": "x"}]}}, headers=auth
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"] == {"field": "definition.steps[1].kind"}
    created = client.post("/api/v1/analytics/funnels", json={"name": "首单", "definition": BASIC}, headers=auth)
    assert created.status_code == 201
    report_id = created.json()["id"]
    assert client.get("/api/v1/analytics/funnels", headers=auth).json()[0]["name"] == "首单"
    renamed = client.put(
        f"/api/v1/analytics/funnels/{report_id}", json={"name": "首单2", "definition": BASIC}, headers=auth
    )
    assert renamed.json()["name"] == "首单2"
    by_report = client.post("/api/v1/analytics/funnels/run", json={"report_id": report_id} | RANGE, headers=auth)
    assert [st["customers"] for st in by_report.json()["total"]["steps"]] == [4, 3, 1]
    drop = client.post(
        "/api/v1/analytics/funnels/drop-off", json={"report_id": report_id, "step": 1} | RANGE, headers=auth
    ).json()
    # reached the scan and never added within a day: c2 only
    assert drop["members"] == 1
    assert set(db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == drop["segment_id"]))) == {
        s.c["c2"].id
    }
    reached = client.post(
        "/api/v1/analytics/funnels/reached", json={"report_id": report_id, "step": 2} | RANGE, headers=auth
    ).json()
    # reached the add (and maybe further): c1, c3, c5
    assert reached["members"] == 3
    assert set(
        db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == reached["segment_id"]))
    ) == {s.c[c].id for c in ("c1", "c3", "c5")}
    too_far = client.post(
        "/api/v1/analytics/funnels/reached", json={"report_id": report_id, "step": 4} | RANGE, headers=auth
    )
    assert too_far.status_code == 422 and too_far.json()["error"]["details"] == {"field": "step"}
    assert client.get("/api/v1/analytics/funnels/999999", headers=auth).status_code == 404
    assert client.delete(f"/api/v1/analytics/funnels/{report_id}", headers=auth).status_code == 204
    assert client.get(f"/api/v1/analytics/funnels/{report_id}", headers=auth).status_code == 404


def test_breakdown_rows_drill_their_drop_offs_including_none(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    s = build(db, clock, workspace)
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    definition = BASIC | {"breakdown": {"by": "channel"}}
    html = client.get(page_url(definition)).text
    # channel A = c1, c2 (c2 stops at 1); B = c3 (stops at 2); none = c5 (stops at 2)
    assert f'data-group-drop-off="{s.a.id}|1"' in html and 'data-group-drop-off="|2"' in html
    # every count drills too: channel A reached step 2 (c1), the whole funnel reached step 3 (c1)
    assert f'data-group-reached="{s.a.id}|2"' in html and 'data-reached="3"' in html
    everyone = {s.c[c].id for c in ("c1", "c2", "c3", "c5")}
    for value, step, expected in ((str(s.a.id), 2, {s.c["c1"].id}), (None, 1, everyone)):
        form = {"csrf_token": csrf, "definition": json.dumps(definition), "step": str(step)} | RANGE
        if value is not None:
            form["breakdown_value"] = value
        drill = client.post("/analytics/funnels/reached", data=form)
        assert drill.status_code == 303, drill.text
        segment_id = int(drill.headers["location"].rsplit("/", 1)[1])
        members = set(db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment_id)))
        assert members == expected
    assert 'name="breakdown_value" value=""' in html
    for value, step, expected in (("", 2, {s.c["c5"].id}), (str(s.a.id), 1, {s.c["c2"].id})):
        drill = client.post(
            "/analytics/funnels/drop-off",
            data={"csrf_token": csrf, "definition": json.dumps(definition), "step": str(step)}
            | RANGE
            | {"breakdown_value": value},
        )
        assert drill.status_code == 303, drill.text
        segment_id = int(drill.headers["location"].rsplit("/", 1)[1])
        members = set(db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment_id)))
        assert members == expected


def test_deep_or_huge_definitions_are_field_errors(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    deep = "[" * 9_000 + "]" * 9_000  # 18,000 characters: under the cap, too deep for the JSON parser
    huge = json.dumps(BASIC | {"pad": "x" * 20_000})
    for text in (deep, huge):
        page = client.get("/analytics/funnels?" + urlencode({"definition": text}))
        assert page.status_code == 422 and 'data-error="definition"' in page.text
        for url, extra in (("/analytics/funnels/save", {"name": "深"}), ("/analytics/funnels/drop-off", {"step": "1"})):
            posted = client.post(url, data={"csrf_token": csrf, "definition": text} | extra)
            assert posted.status_code == 422 and 'data-error="definition"' in posted.text
    assert _count(db, SavedReport, workspace) == 0 and _count(db, Segment, workspace) == 0
