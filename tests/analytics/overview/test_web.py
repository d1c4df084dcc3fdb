"""The overview page, its exports, drill-downs and the JSON API, on the hand-built scenario."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import Role, Segment, SegmentMember, User, Workspace
from tests.analytics.overview.scenario import build
from tests.factories import make_staff, make_token
from tests.web.conftest import login

RANGE = "from=2026-11-16&to=2026-11-22"
_TAGS = re.compile(r"<[^>]+>")


def stat(html: str, key: str) -> str:
    """The value text of the stat card `key`."""
    start = html.index(f'data-stat="{key}"')
    chunk = html[start : html.index("data-change", start)]
    value = chunk[chunk.index("data-value>") + len("data-value>") :]
    return " ".join(_TAGS.sub("", value[: value.index("</div>")]).split())


def test_page_exports_and_drill(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    w = build(db, clock, workspace)
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    page = client.get(f"/analytics?{RANGE}&grain=week")
    assert page.status_code == 200
    html = page.text
    # the figures worked out in test_service.py
    assert {k: stat(html, k) for k in ("pool", "adds", "deletion_rate", "gmv", "active")} == {
        "pool": "5",
        "adds": "2",
        "deletion_rate": "100.0%",
        "gmv": "¥280.00",
        "active": "4",
    }
    assert 'data-stat="pool"' in html and "+66.7%" in html  # pool 5 against 3
    assert "未上报" in html  # no OA clicks reported
    assert html.count("data-drill") >= 8

    # the trend table as CSV and the pool table as XLSX
    response = client.get(f"/analytics?{RANGE}&grain=week&table=trend&format=csv")
    assert response.status_code == 200 and response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["开始日期", "结束日期", "私域池", "新增好友"]
    # week of 11-16: pool 5, adds 2, deleted 1 + 1, net 0, open 2, rate 1.0, first 2, repeat 1, ¥280, active 4
    assert rows[1] == ["2026-11-16", "2026-11-22", "5", "2", "1", "1", "0", "2", "1.0", "2", "1", "280.0", "4"]
    book = load_workbook(io.BytesIO(client.get(f"/analytics?{RANGE}&table=pool&format=xlsx").content))
    sheet = book.active
    assert sheet is not None
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    # pool per channel: now / previous period end
    assert values[1:] == [
        ["私域池", 5, 3],
        ["企微好友", 2, 2],
        ["群成员", 1, 0],
        ["公众号关注", 1, 0],
        ["短信可触达", 1, 1],
    ]

    # a drill-down recomputes the adds and opens them as a static segment
    response = client.post(
        "/analytics/overview/drill",
        data={"csrf_token": csrf, "metric": "adds", "from": "2026-11-16", "to": "2026-11-22", "grain": "day"},
    )
    assert response.status_code == 303
    segment_id = int(response.headers["location"].rsplit("/", 1)[1])
    members = set(db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment_id)))
    assert members == {w.c[2].id, w.c[3].id}  # the two adds of the period (c6 is merged away)


def test_staff_gets_403_and_analyst_cannot_drill_without_write(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    staff = make_staff(db, workspace=workspace, clock=clock)
    login(client, user_with_role(Role.STAFF, staff_id=staff.id).email)
    assert client.get("/analytics").status_code == 403
    token = make_token(db, clock=clock, workspace=workspace, scopes=["analytics:read"])
    db.commit()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/analytics/overview", headers=headers).status_code == 200
    drill = client.post("/api/v1/analytics/overview/drill", json={"metric": "pool"}, headers=headers)
    assert drill.status_code == 403
    no_scope = make_token(db, clock=clock, workspace=workspace, scopes=["customers:read"])
    db.commit()
    assert client.get("/api/v1/analytics/overview", headers={"Authorization": f"Bearer {no_scope}"}).status_code == 403


def test_api_figures_and_drill(client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    w = build(db, clock, workspace)
    token = make_token(db, clock=clock, workspace=workspace)
    db.commit()
    headers = {"Authorization": f"Bearer {token}"}
    body = client.get(f"/api/v1/analytics/overview?{RANGE}&grain=week&staff_id={w.s1.id}", headers=headers).json()
    assert body["pool"]["pool"] == 1 and body["stats"]["gmv"] == {
        "value": 25_000,
        "previous": 5_000,
        "change": 4.0,
        "kind": "fen",
    }
    assert body["trend"][0]["bucket"] == "2026-11-16"
    drill = client.post(
        "/api/v1/analytics/overview/drill",
        json={"metric": "first_orders", "from": "2026-11-16", "to": "2026-11-22"},
        headers=headers,
    )
    assert drill.status_code == 201 and drill.json()["members"] == 2  # c1, c7


def test_bad_input_and_empty_workspace(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    token = make_token(db, clock=clock, workspace=workspace)
    db.commit()
    headers = {"Authorization": f"Bearer {token}"}
    before = db.scalar(select(func.count()).select_from(Segment))
    for query, field in (
        ("from=2026-13-01", "from"),
        ("grain=hour", "grain"),
        ("tag_id=abc", "tag_id"),
        ("staff_id=999999", "staff_id"),
    ):
        response = client.get(f"/api/v1/analytics/overview?{query}", headers=headers)
        assert response.status_code == 422, query
        assert field in response.text
    drill = client.post("/api/v1/analytics/overview/drill", json={"metric": "nope"}, headers=headers)
    assert drill.status_code == 422 and "metric" in drill.text
    assert db.scalar(select(func.count()).select_from(Segment)) == before
    login(client, user_with_role(Role.ANALYST).email)
    page = client.get("/analytics?from=2026-11-20&to=2026-11-10")
    assert page.status_code == 422 and "data-error" in page.text

    # an empty workspace: the page says so, no NaN anywhere
    page = client.get("/analytics")
    assert page.status_code == 200
    assert "这个范围内还没有数据。" in page.text and "NaN" not in page.text and "nan%" not in page.text
