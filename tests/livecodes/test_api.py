"""The live code API: create and edit with validation, QR images, scans and adds, permissions."""

from __future__ import annotations

import io
import zipfile

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.livecodes.state import encode_state
from siyu.models import AuditEntry, LiveCode, Role, Workspace
from tests.api.conftest import bearer
from tests.factories import make_channel, make_staff, make_tag, make_token


def _token(db: Session, clock: FrozenClock, workspace: Workspace, scopes: list[str] | None = None) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=workspace, scopes=scopes)
    db.commit()
    return bearer(token)


def test_create_scan_add_through_the_api(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    # given staff, a channel and a tag
    a = make_staff(db, workspace=workspace, clock=clock, name="小林")
    b = make_staff(db, workspace=workspace, clock=clock, name="小周")
    channel = make_channel(db, workspace=workspace, clock=clock, name="KOL 小红书", hook="穿搭建议")
    tag = make_tag(db, workspace=workspace, name="KOL")
    auth = _token(db, clock, workspace)
    # when an engineer creates a code
    created = client.post(
        "/api/v1/live-codes",
        headers=auth,
        json={
            "name": "小红书活码",
            "channel_id": channel.id,
            "tag_ids": [tag.id],
            "welcome": {"text": "你好{{ name }}，我是{{ staff_name }}，送你{{ hook }}"},
            "routes": [{"staff_id": a.id, "daily_cap": 100}, {"staff_id": b.id, "is_backup": True}],
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["url"] == f"http://testserver/q/{body['slug']}"
    assert len(body["slug"]) == 8 and body["state"] == encode_state(body["id"], channel.id)
    assert [r["taken_today"] for r in body["routes"]] == [0, 0]
    # and a brand landing page reports a scan, then WeCom reports the add with the state
    scan = client.post(f"/api/v1/live-codes/{body['id']}/scans", headers=auth, json={"visitor_id": "visitor-abc-1"})
    assert scan.status_code == 201
    routed = scan.json()
    assert (routed["outcome"], routed["staff"]["name"], routed["hook"]) == ("routed", "小林", "穿搭建议")
    add = client.post(
        "/api/v1/live-code-adds",
        headers=auth,
        json={"staff_id": a.id, "external_userid": "wmEXT001", "state": routed["state"], "name": "陈女士"},
    )
    assert add.status_code == 201, add.text
    added = add.json()
    assert added["channel_id"] == channel.id and added["live_code_id"] == body["id"]
    assert added["scan_id"] == routed["scan"]["id"] and added["tags_applied"] == [tag.id]
    assert added["welcome"]["text"] == "你好陈女士，我是小林，送你穿搭建议"
    # then the code's figures and scan log show it
    detail = client.get(f"/api/v1/live-codes/{body['id']}", headers=auth).json()
    assert detail["figures"] == {
        "scans": 1,
        "unique_visitors": 1,
        "adds": 1,
        "add_rate": 1.0,
        "scans_today": 1,
        "adds_today": 1,
    }
    assert [r["taken_today"] for r in detail["routes"]] == [1, 0]
    log = client.get(f"/api/v1/live-codes/{body['id']}/scans", headers=auth).json()
    assert [(s["outcome"], s["customer_id"]) for s in log["items"]] == [("routed", added["customer_id"])]


def test_validation_errors_name_the_field(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    a = make_staff(db, workspace=workspace, clock=clock)
    auth = _token(db, clock, workspace)
    cases = [
        ({"name": "x", "routes": [{"staff_id": a.id, "daily_cap": 0}]}, 422, "routes[0].daily_cap"),
        ({"name": "x", "routes": [{"staff_id": a.id, "weight": 0}]}, 422, None),
        ({"name": "x", "kind": "group", "routes": [{"staff_id": a.id}]}, 422, "routes[0].group_id"),
        ({"name": "x", "routes": [{"staff_id": 10**20}]}, 422, None),
        (
            {"name": "x", "routes": [{"staff_id": a.id}], "schedule": [{"days": [1], "start": "9:00", "end": "18:00"}]},
            422,
            "schedule[0].start",
        ),
    ]
    for payload, status, field in cases:
        response = client.post("/api/v1/live-codes", headers=auth, json=payload)
        assert response.status_code == status, (payload, response.text)
        if field:
            assert response.json()["error"]["details"]["field"] == field
    too_big = client.post("/api/v1/groups", headers=auth, json={"name": "大群", "member_limit": 501})
    assert too_big.status_code == 422 and too_big.json()["error"]["details"]["field"] == "member_limit"
    assert db.scalar(select(LiveCode.id)) is None


def test_qr_png_svg_logo_and_zip(client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    a = make_staff(db, workspace=workspace, clock=clock)
    auth = _token(db, clock, workspace)
    ids = [
        client.post("/api/v1/live-codes", headers=auth, json={"name": n, "routes": [{"staff_id": a.id}]}).json()["id"]
        for n in ("包裹卡/A", "包裹卡/A")
    ]
    png = client.get(f"/api/v1/live-codes/{ids[0]}/qr?size=l", headers=auth)
    assert png.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(png.content)) as image:
        assert 1100 <= image.width <= 1200 and image.width == image.height
    svg = client.get(f"/api/v1/live-codes/{ids[0]}/qr?format=svg", headers=auth)
    assert svg.headers["content-type"] == "image/svg+xml" and svg.content.startswith(b"<?xml")
    assert client.get(f"/api/v1/live-codes/{ids[0]}/qr?size=xl", headers=auth).status_code == 422
    logo = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(logo, format="PNG")
    uploaded = client.put(f"/api/v1/live-codes/{ids[0]}/logo", headers=auth, files={"file": ("l.png", logo.getvalue())})
    assert uploaded.status_code == 204
    bad = client.put(f"/api/v1/live-codes/{ids[0]}/logo", headers=auth, files={"file": ("l.png", b"not an image")})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "logo"
    with Image.open(io.BytesIO(client.get(f"/api/v1/live-codes/{ids[0]}/qr?size=s", headers=auth).content)) as image:
        centre = image.convert("RGB").getpixel((image.width // 2, image.height // 2))
    assert centre[0] > 200 and centre[1] < 60 and centre[2] < 60  # the red logo sits in the middle
    archive = client.post("/api/v1/live-codes/qr.zip", headers=auth, json={"ids": ids, "format": "png", "size": "s"})
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        assert zipped.namelist() == ["包裹卡_A.png", "包裹卡_A-2.png"]


def test_analyst_reads_but_cannot_write(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    from siyu.auth.permissions import ROLE_SCOPES

    a = make_staff(db, workspace=workspace, clock=clock)
    analyst = _token(db, clock, workspace, scopes=sorted(str(s) for s in ROLE_SCOPES[Role.ANALYST]))
    assert client.get("/api/v1/live-codes", headers=analyst).status_code == 200
    denied = client.post("/api/v1/live-codes", headers=analyst, json={"name": "x", "routes": [{"staff_id": a.id}]})
    assert denied.status_code == 403
    assert db.scalar(select(LiveCode.id)) is None
    assert db.scalar(select(AuditEntry.id).where(AuditEntry.entity_type == "live_code")) is None


def test_edit_keeps_route_counters_and_slug(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    a = make_staff(db, workspace=workspace, clock=clock)
    b = make_staff(db, workspace=workspace, clock=clock)
    auth = _token(db, clock, workspace)
    created = client.post(
        "/api/v1/live-codes", headers=auth, json={"name": "x", "routes": [{"staff_id": a.id, "daily_cap": 1}]}
    ).json()
    client.post(f"/api/v1/live-codes/{created['id']}/scans", headers=auth, json={"visitor_id": "visitor-0001"})
    route_id = created["routes"][0]["id"]
    edited = client.put(
        f"/api/v1/live-codes/{created['id']}",
        headers=auth,
        json={"name": "y", "routes": [{"id": route_id, "staff_id": a.id, "daily_cap": 1}, {"staff_id": b.id}]},
    )
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert (body["slug"], body["name"]) == (created["slug"], "y")
    assert [(r["id"] == route_id, r["taken_today"]) for r in body["routes"]] == [(True, 1), (False, 0)]
    foreign = client.put(
        f"/api/v1/live-codes/{created['id']}",
        headers=auth,
        json={"name": "y", "routes": [{"id": 999999, "staff_id": a.id}]},
    )
    assert foreign.status_code == 422 and foreign.json()["error"]["details"]["field"] == "routes[0].id"
