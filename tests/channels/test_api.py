"""The channels API end to end: CRUD, cost entries, metrics, validation and permissions."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import AuditEntry, Channel, ChannelCostEntry, Workspace
from tests.api.conftest import bearer
from tests.channels.scenario import build
from tests.factories import make_token, make_workspace

READ_ONLY = ["acquisition:read"]


def _headers(db: Session, clock: FrozenClock, ws: Workspace, scopes: list[str] | None = None) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=ws, scopes=scopes)
    db.commit()
    return bearer(token)


def _count(db: Session, model: Any, ws: Workspace) -> int:
    return int(db.scalar(select(func.count()).select_from(model).where(model.workspace_id == ws.id)) or 0)


def test_channel_crud(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    created = client.post(
        "/api/v1/channels",
        headers=headers,
        json={"name": "KOL 小红书", "type": "kol", "hook": "免费小样", "cost_model": "cpa", "cpa_fen": 2000},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    channel_id = body["id"]
    assert {k: body[k] for k in ("name", "type", "cost_model", "cpa_fen", "cps_basis_points", "is_archived")} == {
        "name": "KOL 小红书",
        "type": "kol",
        "cost_model": "cpa",
        "cpa_fen": 2000,
        "cps_basis_points": None,
        "is_archived": False,
    }
    patched = client.patch(
        f"/api/v1/channels/{channel_id}",
        headers=headers,
        json={"cost_model": "cps", "cps_basis_points": 1500, "starts_on": "2026-11-01"},
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["cost_model"], patched.json()["cpa_fen"], patched.json()["starts_on"]) == (
        "cps",
        None,
        "2026-11-01",
    )
    assert client.get(f"/api/v1/channels/{channel_id}", headers=headers).json()["cps_basis_points"] == 1500
    archived = client.delete(f"/api/v1/channels/{channel_id}", headers=headers)
    assert archived.json()["is_archived"] is True
    assert client.get("/api/v1/channels", headers=headers).json() == []
    listed = client.get("/api/v1/channels?include_archived=true", headers=headers).json()
    assert [c["id"] for c in listed] == [channel_id]
    restored = client.patch(f"/api/v1/channels/{channel_id}", headers=headers, json={"is_archived": False})
    assert restored.json()["is_archived"] is False
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "channel").order_by(AuditEntry.id))
    assert list(actions) == ["create", "update", "archive", "restore"]


def test_errors_name_the_field(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    assert client.post("/api/v1/channels", headers=headers, json={"name": "短信", "type": "sms"}).status_code == 201
    taken = client.post("/api/v1/channels", headers=headers, json={"name": "短信", "type": "sms"})
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "channel_name_taken"
    assert taken.json()["error"]["details"] == {"field": "name"}
    cases = [
        ({"name": "a", "type": "billboard"}, "type"),
        ({"name": "a", "type": "sms", "cost_model": "cps"}, "cps_basis_points"),
        ({"name": "a", "type": "sms", "cost_model": "cps", "cps_basis_points": 10_001}, "cps_basis_points"),
        ({"name": "a", "type": "sms", "cost_model": "cpa", "cpa_fen": 0}, "cpa_fen"),
        ({"name": "a", "type": "sms", "starts_on": "2026-11-02", "ends_on": "2026-11-01"}, "ends_on"),
        ({"name": "a", "type": "sms", "owner_user_id": 12345}, "owner_user_id"),
        ({"name": "a", "type": "sms", "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        response = client.post("/api/v1/channels", headers=headers, json=body)
        assert response.status_code == 422, (body, response.text)
        details = response.json()["error"]["details"]
        fields = [d["field"] for d in details] if isinstance(details, list) else [details["field"]]
        assert fields == [field], body
    assert _count(db, Channel, ws) == 1
    assert client.get("/api/v1/channels/999999", headers=headers).status_code == 404
    sms = client.get("/api/v1/channels", headers=headers).json()[0]["id"]
    cleared = client.patch(f"/api/v1/channels/{sms}", headers=headers, json={"name": None})
    assert (cleared.status_code, cleared.json()["error"]["details"]) == (422, {"field": "name"})


def test_cost_entries(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    channel_id = client.post(
        "/api/v1/channels", headers=headers, json={"name": "包裹卡", "type": "package_card"}
    ).json()["id"]
    url = f"/api/v1/channels/{channel_id}/costs"
    first = client.post(url, headers=headers, json={"spent_on": "2026-11-01", "amount_fen": 123_450, "exposures": 5000})
    assert first.status_code == 201, first.text
    client.post(url, headers=headers, json={"spent_on": "2026-11-02", "amount_fen": 0, "note": "赠品"})
    page = client.get(url, headers=headers).json()
    assert [(e["spent_on"], e["amount_fen"], e["exposures"], e["note"]) for e in page["items"]] == [
        ("2026-11-02", 0, None, "赠品"),
        ("2026-11-01", 123_450, 5000, None),
    ]
    assert page["next_cursor"] is None
    for body, field in [
        ({"spent_on": "2026-11-01", "amount_fen": -1}, "amount_fen"),
        ({"spent_on": "2026-11-31", "amount_fen": 1}, "spent_on"),
        ({"spent_on": "2026-11-01", "amount_fen": 1, "exposures": -1}, "exposures"),
        ({"spent_on": "2026-11-01", "amount_fen": 1.5}, "amount_fen"),
    ]:
        response = client.post(url, headers=headers, json=body)
        assert response.status_code == 422
        assert [d["field"] for d in response.json()["error"]["details"]] == [field]
    deleted = client.delete(f"{url}/{first.json()['id']}", headers=headers)
    assert deleted.status_code == 204
    assert client.delete(f"{url}/{first.json()['id']}", headers=headers).status_code == 404
    assert _count(db, ChannelCostEntry, ws) == 1
    assert client.get("/api/v1/channels/999999/costs", headers=headers).status_code == 404
    assert client.get(f"{url}?cursor=garbage", headers=headers).status_code == 422


def test_read_only_token_gets_403_and_nothing_is_written(client: TestClient, db: Session, clock: FrozenClock) -> None:
    s = build(db, clock)
    headers = _headers(db, clock, s.workspace, READ_ONLY)
    assert client.get("/api/v1/channels", headers=headers).status_code == 200
    assert client.get("/api/v1/channels/metrics", headers=headers).status_code == 200
    before = (_count(db, Channel, s.workspace), _count(db, ChannelCostEntry, s.workspace))
    attempts = [
        client.post("/api/v1/channels", headers=headers, json={"name": "x", "type": "sms"}),
        client.patch(f"/api/v1/channels/{s.a.id}", headers=headers, json={"name": "y"}),
        client.delete(f"/api/v1/channels/{s.a.id}", headers=headers),
        client.post(
            f"/api/v1/channels/{s.a.id}/costs", headers=headers, json={"spent_on": "2026-11-01", "amount_fen": 1}
        ),
    ]
    assert [r.status_code for r in attempts] == [403, 403, 403, 403]
    assert attempts[0].json()["error"]["details"] == {"scope": "acquisition:write"}
    assert (_count(db, Channel, s.workspace), _count(db, ChannelCostEntry, s.workspace)) == before
    db.refresh(s.a)
    assert (s.a.name, s.a.is_archived) == ("包裹卡", False)
    no_scope = _headers(db, clock, s.workspace, ["customers:read"])
    assert client.get("/api/v1/channels/metrics", headers=no_scope).status_code == 403


def test_metrics_for_all_channels(client: TestClient, db: Session, clock: FrozenClock) -> None:
    s = build(db, clock)
    headers = _headers(db, clock, s.workspace, READ_ONLY)
    response = client.get(
        "/api/v1/channels/metrics?from=2026-10-20&to=2026-10-29&attribution=last_touch&window_days=30", headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from"], body["to"], body["attribution"], body["window_days"]) == (
        "2026-10-20",
        "2026-10-29",
        "last_touch",
        30,
    )
    rows = {c["channel"]["name"]: c["totals"] for c in body["channels"]}
    assert {name: (m["adds"], m["cost_fen"], m["gmv_fen"], m["cac_fen"]) for name, m in rows.items()} == {
        "包裹卡": (2, 15_000, 30_000, 7_500),
        "KOL 小红书": (3, 9_000, 14_000, 3_000),
        "淘宝 CPS": (2, 3_751, 30_004, 1_876),
    }
    assert rows["包裹卡"]["deletion_rate_7d"] == 0.5 and rows["包裹卡"]["roi"] == 2.0
    assert (body["totals"]["adds"], body["totals"]["cost_fen"], body["totals"]["exposures"]) == (7, 27_751, 1000)
    assert len(body["daily"]) == 10
    assert body["daily"][0] == {"day": "2026-10-20", "adds": 1, "cost_fen": 10_000, "scans": 3, "clicks": 1}
    # defaults: the last 30 days up to today (2026-11-23 in Shanghai), first touch, 30-day window
    default = client.get("/api/v1/channels/metrics", headers=headers).json()
    assert (default["from"], default["to"], default["attribution"]) == ("2026-10-25", "2026-11-23", "first_touch")


def test_metrics_of_one_channel(client: TestClient, db: Session, clock: FrozenClock) -> None:
    s = build(db, clock)
    headers = _headers(db, clock, s.workspace, READ_ONLY)
    body = client.get(f"/api/v1/channels/{s.b.id}/metrics?from=2026-10-20&to=2026-10-29", headers=headers).json()
    assert body["channel"]["name"] == "KOL 小红书"
    assert (body["totals"]["adds"], body["totals"]["cost_fen"], body["totals"]["gmv_fen"]) == (2, 7_000, 38_004)
    days = {d["day"]: d["metrics"]["adds"] for d in body["daily"] if d["metrics"]["adds"]}
    assert days == {"2026-10-22": 1, "2026-10-29": 1}
    other = make_workspace(db, clock=clock)
    stranger = _headers(db, clock, other)
    assert client.get(f"/api/v1/channels/{s.b.id}/metrics", headers=stranger).status_code == 404


def test_metrics_range_validation_names_the_field(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws, READ_ONLY)
    cases = [
        ("from=2026-10-29&to=2026-10-20", "from"),
        ("from=2025-01-01&to=2026-01-02", "to"),
        ("from=2026-13-01", "from"),
        ("to=yesterday", "to"),
        ("attribution=linear", "attribution"),
        ("window_days=0", "window_days"),
        ("window_days=366", "window_days"),
    ]
    for query, field in cases:
        response = client.get(f"/api/v1/channels/metrics?{query}", headers=headers)
        assert response.status_code == 422, query
        details = response.json()["error"]["details"]
        fields = [d["field"] for d in details] if isinstance(details, list) else [details["field"]]
        assert fields == [field], query
