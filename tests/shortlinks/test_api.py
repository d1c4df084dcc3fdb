"""The short link API: CRUD with stats, recipients, permissions and field-naming errors."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import ShortLink, Workspace
from tests.api.conftest import bearer
from tests.factories import actor_for, make_channel, make_customer, make_token, make_workspace

BASE = "/api/v1/short-links"
TARGET = "https://shop.example.com/sample"


def _headers(db: Session, clock: FrozenClock, workspace: Workspace, scopes: list[str] | None = None) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=workspace, scopes=scopes)
    db.commit()
    return bearer(token)


def _links(db: Session, workspace: Workspace) -> int:
    return int(
        db.scalar(select(func.count()).select_from(ShortLink).where(ShortLink.workspace_id == workspace.id)) or 0
    )


def test_create_read_update_delete(client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    headers = _headers(db, clock, workspace)
    channel = make_channel(db, workspace=workspace, clock=clock)
    db.commit()
    created = client.post(
        BASE,
        headers=headers,
        json={
            "target_url": TARGET,
            "name": "包裹卡",
            "campaign": "双11",
            "channel_id": channel.id,
            "utm": {"utm_source": "card"},
            "expires_at": "2026-12-31T16:00:00Z",
            "slug": "card-1111",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["url"] == "http://testserver/s/card-1111"
    assert (body["slug"], body["target_url"], body["channel_id"], body["utm"]) == (
        "card-1111",
        TARGET,
        channel.id,
        {"utm_source": "card"},
    )
    assert (body["clicks"], body["unique_visitors"], body["expires_at"]) == (0, 0, "2026-12-31T16:00:00Z")
    link_id = body["id"]
    # a click, then the detail with stats
    assert client.get("/s/card-1111").status_code == 302
    detail = client.get(f"{BASE}/{link_id}", headers=headers, params={"days": 3}).json()
    assert (detail["clicks"], detail["unique_visitors"]) == (1, 1)
    assert detail["stats"]["by_day"] == [
        {"day": "2026-11-21", "clicks": 0, "unique_visitors": 0},
        {"day": "2026-11-22", "clicks": 0, "unique_visitors": 0},
        {"day": "2026-11-23", "clicks": 1, "unique_visitors": 1},
    ]
    assert (detail["stats"]["total_clicks"], detail["stats"]["recipients"]) == (1, 0)
    # change the target, remove the expiry
    patched = client.patch(
        f"{BASE}/{link_id}", headers=headers, json={"target_url": "https://new.example.com/", "expires_at": None}
    )
    assert patched.status_code == 200
    assert (patched.json()["target_url"], patched.json()["expires_at"]) == ("https://new.example.com/", None)
    assert client.get("/s/card-1111").headers["location"] == "https://new.example.com/?utm_source=card"
    # delete: gone from the API, a 410 page for visitors
    deleted = client.delete(f"{BASE}/{link_id}", headers=headers)
    assert (deleted.status_code, deleted.json()["id"]) == (200, link_id)
    assert client.get(f"{BASE}/{link_id}", headers=headers).status_code == 404
    assert client.get("/s/card-1111").status_code == 410


def test_list_is_cursor_paginated_with_click_counts(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    headers = _headers(db, clock, workspace)
    ids = [client.post(BASE, headers=headers, json={"target_url": TARGET}).json()["id"] for _ in range(3)]
    slug = client.get(f"{BASE}/{ids[2]}", headers=headers).json()["slug"]
    client.get(f"/s/{slug}")
    client.get(f"/s/{slug}")
    first = client.get(BASE, headers=headers, params={"limit": 2}).json()
    assert [(i["id"], i["clicks"], i["unique_visitors"]) for i in first["items"]] == [(ids[2], 2, 1), (ids[1], 0, 0)]
    rest = client.get(BASE, headers=headers, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert ([i["id"] for i in rest["items"]], rest["next_cursor"]) == ([ids[0]], None)
    assert client.get(BASE, headers=headers, params={"cursor": "%%%"}).status_code == 422


def test_recipients_endpoint_returns_urls_and_is_idempotent(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    headers = _headers(db, clock, workspace)
    actor = actor_for(workspace)
    customers = [make_customer(db, actor=actor, clock=clock).customer.id for _ in range(2)]
    db.commit()
    link_id = client.post(BASE, headers=headers, json={"target_url": TARGET}).json()["id"]
    first = client.post(f"{BASE}/{link_id}/recipients", headers=headers, json={"customer_ids": customers})
    assert first.status_code == 200
    assert first.json()["created"] == 2
    links = first.json()["links"]
    assert [x["customer_id"] for x in links] == customers
    assert all(x["url"] == f"http://testserver/s/{x['slug']}" and len(x["slug"]) == 12 for x in links)
    assert all(x["variant"] is None for x in links)
    again = client.post(f"{BASE}/{link_id}/recipients", headers=headers, json={"customer_ids": customers[::-1]})
    assert again.json()["created"] == 0
    assert {x["slug"] for x in again.json()["links"]} == {x["slug"] for x in links}
    unknown = client.post(
        f"{BASE}/{link_id}/recipients", headers=headers, json={"customer_ids": [customers[0], 424242]}
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["details"] == {"field": "customer_ids", "unknown": [424242]}
    empty = client.post(f"{BASE}/{link_id}/recipients", headers=headers, json={"customer_ids": []})
    assert (empty.status_code, empty.json()["error"]["details"][0]["field"]) == (422, "customer_ids")


def test_bad_input_names_the_field(client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    headers = _headers(db, clock, workspace)
    cases = [
        ({"target_url": "ftp://example.com/"}, {"field": "target_url"}),
        ({"target_url": TARGET, "utm": {"ref": "x"}}, {"field": "utm.ref"}),
        ({"target_url": TARGET, "slug": "no way"}, {"field": "slug", "value": "no way"}),
        ({"target_url": TARGET, "expires_at": "2020-01-01T00:00:00Z"}, {"field": "expires_at"}),
        ({"target_url": TARGET, "channel_id": 999999}, {"field": "channel_id"}),
    ]
    for body, details in cases:
        response = client.post(BASE, headers=headers, json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["details"] == details
    naive = client.post(BASE, headers=headers, json={"target_url": TARGET, "expires_at": "2027-01-01T00:00:00"})
    assert naive.json()["error"]["details"][0]["field"] == "expires_at"
    extra = client.post(BASE, headers=headers, json={"target_url": TARGET, "colour": "red"})
    assert extra.json()["error"]["details"][0]["field"] == "colour"
    taken = client.post(BASE, headers=headers, json={"target_url": TARGET, "slug": "taken"})
    assert taken.status_code == 201
    again = client.post(BASE, headers=headers, json={"target_url": TARGET, "slug": "taken"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "slug_taken")
    cleared = client.patch(f"{BASE}/{taken.json()['id']}", headers=headers, json={"target_url": None})
    assert (cleared.status_code, cleared.json()["error"]["details"]) == (422, {"field": "target_url"})
    assert _links(db, workspace) == 1


def test_read_scope_may_read_but_not_write(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    writer = _headers(db, clock, workspace)
    reader = _headers(db, clock, workspace, scopes=["acquisition:read"])
    link_id = client.post(BASE, headers=writer, json={"target_url": TARGET}).json()["id"]
    assert client.get(BASE, headers=reader).status_code == 200
    assert client.get(f"{BASE}/{link_id}", headers=reader).status_code == 200
    for method, url, body in [
        ("POST", BASE, {"target_url": TARGET}),
        ("PATCH", f"{BASE}/{link_id}", {"name": "x"}),
        ("DELETE", f"{BASE}/{link_id}", None),
        ("POST", f"{BASE}/{link_id}/recipients", {"customer_ids": [1]}),
    ]:
        response = client.request(method, url, headers=reader, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
    assert _links(db, workspace) == 1
    nothing = _headers(db, clock, workspace, scopes=["customers:read"])
    assert client.get(BASE, headers=nothing).status_code == 403


def test_links_of_another_workspace_are_404(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    other = make_workspace(db, clock=clock)
    theirs = client.post(BASE, headers=_headers(db, clock, other), json={"target_url": TARGET}).json()["id"]
    mine = _headers(db, clock, workspace)
    assert client.get(f"{BASE}/{theirs}", headers=mine).status_code == 404
    assert client.delete(f"{BASE}/{theirs}", headers=mine).status_code == 404
    assert client.get(f"{BASE}/0", headers=mine).status_code == 422
