"""The customer API end to end: auth, errors, OneID ingest, pagination, events, merges, isolation."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import Customer
from tests.api.conftest import bearer
from tests.factories import make_token, make_workspace

NO_PII = ["customers:read", "customers:write", "events:write"]


def _setup(db: Session, clock: FrozenClock, scopes: list[str] | None = None) -> tuple[int, dict[str, str]]:
    ws = make_workspace(db, clock=clock)
    token = make_token(db, clock=clock, workspace=ws, scopes=scopes)
    db.commit()
    return ws.id, bearer(token)


def test_missing_and_bad_tokens_get_401_with_the_error_body(
    client: TestClient, db: Session, clock: FrozenClock
) -> None:
    response = client.get("/api/v1/customers")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert client.get("/api/v1/customers", headers=bearer("siyu_nope")).status_code == 401
    assert client.get("/api/v1/customers", headers={"Authorization": "Basic abc"}).status_code == 401


def test_revoked_token_stops_working(client: TestClient, db: Session, clock: FrozenClock) -> None:
    _, headers = _setup(db, clock)
    me = client.get("/api/v1/me", headers=headers).json()
    tokens = client.get("/api/v1/tokens", headers=headers).json()
    assert me["kind"] == "token" and len(tokens) == 1
    assert client.delete(f"/api/v1/tokens/{tokens[0]['id']}", headers=headers).status_code == 200
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_missing_scope_is_403_and_nothing_is_written(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws_id, headers = _setup(db, clock, scopes=["customers:read"])
    response = client.post("/api/v1/customers", json={"phone": "13800138000"}, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "forbidden",
        "message": "missing permission customers:write",
        "details": {"scope": "customers:write"},
    }
    assert db.scalar(select(func.count()).select_from(Customer).where(Customer.workspace_id == ws_id)) == 0


def test_bad_json_and_bad_fields_name_the_field(client: TestClient, db: Session, clock: FrozenClock) -> None:
    _, headers = _setup(db, clock)
    raw = client.post("/api/v1/customers", content=b"{not json", headers=headers | {"content-type": "application/json"})
    assert raw.status_code == 422
    assert raw.json()["error"]["code"] == "invalid_input"
    wrong = client.post("/api/v1/customers", json={"phone": "13800138000", "birthday": "1999-13-40"}, headers=headers)
    assert wrong.status_code == 422
    assert [d["field"] for d in wrong.json()["error"]["details"]] == ["birthday"]
    phone = client.post("/api/v1/customers", json={"phone": "12345"}, headers=headers)
    assert phone.status_code == 422
    assert phone.json()["error"]["details"] == {"field": "phone"}
    extra = client.post("/api/v1/customers", json={"phone": "13800138000", "shoe": 1}, headers=headers)
    assert extra.status_code == 422
    assert extra.json()["error"]["details"][0]["field"] == "shoe"


def test_ingest_create_then_update_then_merge(client: TestClient, db: Session, clock: FrozenClock) -> None:
    _, headers = _setup(db, clock)
    created = client.post(
        "/api/v1/customers",
        headers=headers,
        json={"name": "周小姐", "phone": "+86 138-0013-8000", "identities": [{"type": "taobao", "value": "tb_zhou"}]},
    )
    assert created.status_code == 201
    body = created.json()
    assert (body["outcome"], body["customer"]["phone"]) == ("created", "+8613800138000")
    again = client.post("/api/v1/customers", headers=headers, json={"phone": "13800138000", "city": "成都"})
    assert (again.status_code, again.json()["outcome"]) == (200, "updated")
    other = client.post("/api/v1/customers", headers=headers, json={"identities": [{"type": "jd", "value": "jd_z"}]})
    linked = client.post(
        "/api/v1/customers",
        headers=headers,
        json={"identities": [{"type": "jd", "value": "jd_z"}, {"type": "taobao", "value": "tb_zhou"}]},
    )
    assert linked.json()["outcome"] == "merged"
    assert linked.json()["merged_ids"] == [other.json()["customer"]["id"]]
    found = client.get("/api/v1/customers/lookup", params={"type": "jd", "value": "jd_z"}, headers=headers).json()
    assert found["id"] == body["customer"]["id"]
    assert sorted(i["type"] for i in found["identities"]) == ["jd", "phone", "taobao"]
    merges = client.get(f"/api/v1/customers/{found['id']}/merges", headers=headers).json()
    undone = client.post(f"/api/v1/merges/{merges[0]['id']}/undo", headers=headers)
    assert undone.status_code == 200 and undone.json()["undone_by"] == "token:test"
    assert (
        client.get(f"/api/v1/customers/{other.json()['customer']['id']}", headers=headers).json()["merged_into_id"]
        is None
    )


def test_cursor_pagination_walks_every_customer_once(client: TestClient, db: Session, clock: FrozenClock) -> None:
    _, headers = _setup(db, clock)
    for n in range(7):
        client.post("/api/v1/customers", headers=headers, json={"phone": f"1380013800{n}"})
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/customers", params=params, headers=headers).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 7 and seen == sorted(seen, reverse=True)
    assert client.get("/api/v1/customers", params={"cursor": "!!bad"}, headers=headers).status_code == 422
    assert client.get("/api/v1/customers", params={"limit": 500}, headers=headers).status_code == 422
    assert client.get("/api/v1/customers/count", headers=headers).json() == {"count": 7}


def test_phones_are_masked_without_the_pii_scope(client: TestClient, db: Session, clock: FrozenClock) -> None:
    _, headers = _setup(db, clock, scopes=NO_PII)
    client.post("/api/v1/customers", headers=headers, json={"phone": "13800138000", "email": "lily@example.com"})
    item = client.get("/api/v1/customers", headers=headers).json()["items"][0]
    assert (item["phone"], item["email"]) == ("138****8000", "l***@example.com")
    detail = client.get(f"/api/v1/customers/{item['id']}", headers=headers).json()
    assert sorted(i["value"] for i in detail["identities"]) == ["138****8000", "l***@example.com"]
    found = client.get("/api/v1/customers", params={"q": "138 0013 8000"}, headers=headers).json()["items"]
    assert [c["id"] for c in found] == [item["id"]]


def test_events_single_duplicate_and_batch(client: TestClient, db: Session, clock: FrozenClock) -> None:
    _, headers = _setup(db, clock)
    customer = client.post("/api/v1/customers", headers=headers, json={"phone": "13800138000"}).json()["customer"]
    event = {
        "type": "page.view",
        "occurred_at": "2026-11-20T08:00:00+08:00",
        "idempotency_key": "pv-1",
        "identity": {"type": "phone", "value": "13800138000"},
        "properties": {"url": "/h5/home"},
    }
    first = client.post("/api/v1/events", json=event, headers=headers)
    second = client.post("/api/v1/events", json=event, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["occurred_at"] == "2026-11-20T00:00:00Z"
    batch = client.post(
        "/api/v1/events/batch",
        headers=headers,
        json={"events": [event | {"idempotency_key": "pv-2"}, event | {"type": "Nope"}, event]},
    ).json()
    assert (batch["created"], batch["rejected"], batch["duplicates"]) == (1, 1, 1)
    timeline = client.get(f"/api/v1/customers/{customer['id']}/events", headers=headers).json()
    assert sorted(e["idempotency_key"] for e in timeline["items"]) == ["pv-1", "pv-2"]
    too_many = client.post("/api/v1/events/batch", headers=headers, json={"events": [event] * 1001})
    assert too_many.status_code == 422


def test_token_of_one_workspace_never_sees_another(client: TestClient, db: Session, clock: FrozenClock) -> None:
    _, a = _setup(db, clock)
    _, b = _setup(db, clock)
    mine = client.post("/api/v1/customers", headers=a, json={"phone": "13800138000", "name": "A"}).json()["customer"]
    theirs = client.post("/api/v1/customers", headers=b, json={"phone": "13800138000", "name": "B"}).json()["customer"]
    assert client.get(f"/api/v1/customers/{theirs['id']}", headers=a).status_code == 404
    assert client.patch(f"/api/v1/customers/{theirs['id']}", json={"name": "X"}, headers=a).status_code == 404
    assert client.post(f"/api/v1/customers/{theirs['id']}/erase", headers=a).status_code == 404
    assert (
        client.post(
            "/api/v1/customers/merge", json={"survivor_id": mine["id"], "merged_id": theirs["id"]}, headers=a
        ).status_code
        == 404
    )
    assert [c["id"] for c in client.get("/api/v1/customers", headers=a).json()["items"]] == [mine["id"]]
    assert client.get("/api/v1/customers/count", headers=a).json() == {"count": 1}
    assert client.get(f"/api/v1/customers/{theirs['id']}", headers=b).json()["name"] == "B"
    assert len(client.get("/api/v1/tokens", headers=a).json()) == 1
    assert {e["actor"] for e in client.get("/api/v1/audit", headers=a).json()["items"]} == {"system", "token:test"}


def test_erase_then_export_and_audit(client: TestClient, db: Session, clock: FrozenClock) -> None:
    _, headers = _setup(db, clock)
    customer = client.post("/api/v1/customers", headers=headers, json={"phone": "13800138000", "name": "李"}).json()
    cid = customer["customer"]["id"]
    assert client.get(f"/api/v1/customers/{cid}/export", headers=headers).json()["customer"]["name"] == "李"
    assert client.post(f"/api/v1/customers/{cid}/erase", headers=headers).status_code == 204
    assert client.get(f"/api/v1/customers/{cid}", headers=headers).json()["name"] is None
    assert client.post(f"/api/v1/customers/{cid}/erase", headers=headers).status_code == 409
    actions = [e["action"] for e in client.get("/api/v1/audit", headers=headers).json()["items"]]
    assert actions[:3] == ["erase", "export", "create"]


def test_openapi_healthz_and_request_id(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/v1/customers" in spec["paths"] and "/api/v1/imports" in spec["paths"]
    health = client.get("/healthz", headers={"X-Request-ID": "req-42"})
    assert health.json()["status"] == "ok"
    assert health.headers["X-Request-ID"] == "req-42"


def test_out_of_range_ids_nul_characters_and_foreign_references_are_422(
    client: TestClient, db: Session, clock: FrozenClock
) -> None:
    _, headers = _setup(db, clock)
    _, other = _setup(db, clock)
    huge = 2**63
    assert client.get(f"/api/v1/customers/{huge}", headers=headers).status_code == 422
    assert client.get("/api/v1/customers/0", headers=headers).status_code == 422
    body = client.post("/api/v1/customers", json={"phone": "13800138000", "owner_staff_id": huge}, headers=headers)
    assert (body.status_code, body.json()["error"]["details"][0]["field"]) == (422, "owner_staff_id")
    nul = client.post("/api/v1/customers", json={"phone": "13800138000", "name": "a\x00b"}, headers=headers)
    assert nul.status_code == 422 and "name contains a NUL character" in nul.text
    assert client.get("/api/v1/customers", params={"q": "a\x00"}, headers=headers).status_code in (200, 422)
    their_store = client.post("/api/v1/stores", json={"code": "BJ1", "name": "北京店"}, headers=other).json()
    staff = client.post("/api/v1/staff", json={"name": "小美", "store_id": their_store["id"]}, headers=headers)
    assert (staff.status_code, staff.json()["error"]["details"]) == (422, {"field": "store_id"})
    for cursor in ("WzFd", "ImFiYyI", "LTE"):  # [1], "abc", -1
        assert client.get("/api/v1/customers", params={"cursor": cursor}, headers=headers).status_code == 422
    assert client.get("/api/v1/audit", params={"cursor": "ImFiYyI"}, headers=headers).status_code == 422


def test_token_use_is_recorded_on_writes_and_reads(client: TestClient, db: Session, clock: FrozenClock) -> None:
    from siyu.models import ApiToken

    ws_id, headers = _setup(db, clock)
    assert client.post("/api/v1/customers", json={"phone": "13800138000"}, headers=headers).status_code == 201
    token = db.scalar(select(ApiToken).where(ApiToken.workspace_id == ws_id))
    assert token is not None
    db.refresh(token)
    assert token.last_used_at == clock.now()


def test_survivorship_rules_are_set_checked_and_applied(client: TestClient, db: Session, clock: FrozenClock) -> None:
    _, headers = _setup(db, clock)
    bad = client.put("/api/v1/workspace/survivorship", json={"rules": {"shoe": "oldest"}}, headers=headers)
    assert (bad.status_code, bad.json()["error"]["details"]) == (422, {"field": "rules.shoe"})
    wrong = client.put("/api/v1/workspace/survivorship", json={"rules": {"name": "loudest"}}, headers=headers)
    assert wrong.status_code == 422
    ok = client.put("/api/v1/workspace/survivorship", json={"rules": {"name": "oldest"}}, headers=headers)
    assert ok.json()["survivorship"] == {"name": "oldest"}
    client.post("/api/v1/customers", json={"phone": "13800138000", "name": "最早"}, headers=headers)
    clock.advance(timedelta(hours=1))
    later = client.post("/api/v1/customers", json={"phone": "13800138000", "name": "后来"}, headers=headers)
    assert later.json()["customer"]["name"] == "最早"


def test_oversize_upload_is_refused_before_reading_it(client: TestClient, db: Session, clock: FrozenClock) -> None:
    _, headers = _setup(db, clock)
    response = client.post(
        "/api/v1/imports",
        headers=headers | {"content-type": "multipart/form-data; boundary=x", "content-length": str(5 << 20)},
        content=b"--x--",
    )
    assert (response.status_code, response.json()["error"]["code"]) == (413, "payload_too_large")
