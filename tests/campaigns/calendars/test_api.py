"""The calendars API: group calendars, personas, moments and scripts end to end, errors that name
the field, and who may write (staff and store managers may not; analysts only read)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES, Actor
from siyu.kit.clock import FrozenClock
from siyu.models import GroupCalendar, MomentPost, Persona, Role, Script, Workspace
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.campaigns.calendars.factories import make_moment, make_persona, make_script
from tests.factories import make_customer, make_group, make_token, make_workspace
from tests.messaging.factories import make_account, make_content

app = api_fixtures.app
client = api_fixtures.client


def _headers(db: Session, clock: FrozenClock, ws: Workspace, role: Role | None = None) -> dict[str, str]:
    scopes = sorted(str(s) for s in ROLE_SCOPES[role]) if role else None
    token = make_token(db, clock=clock, workspace=ws, scopes=scopes)
    db.commit()
    return bearer(token)


def _count(db: Session, model: Any) -> int:
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_group_calendar_crud_and_entries(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    group = make_group(db, workspace=ws, clock=clock)
    account = make_account(db, workspace=ws, clock=clock)
    morning = make_content(db, workspace=ws, clock=clock, body="早安，{{ brand }}")
    personal = make_content(db, workspace=ws, clock=clock, body="{{ name }}早安")
    headers = _headers(db, clock, ws)
    body = {
        "name": "早安群",
        "group_ids": [group.id],
        "channel_account_id": account.id,
        "slot_times": {"morning": "08:00"},
        "entries": [{"weekdays": [1, 2], "slot": "morning", "content_id": morning.id}],
    }
    created = client.post("/api/v1/group-calendars", headers=headers, json=body)
    assert created.status_code == 201, created.text
    calendar = created.json()
    assert calendar["slot_times"] == {"morning": "08:00", "noon": "12:00", "evening": "20:00"}
    assert [(e["weekdays"], e["slot"], e["content_id"]) for e in calendar["entries"]] == [
        ([1, 2], "morning", morning.id)
    ]
    # a per-customer variable is a 422 naming the field
    refused = client.post(
        f"/api/v1/group-calendars/{calendar['id']}/entries",
        headers=headers,
        json={"weekdays": [3], "slot": "noon", "content_id": personal.id},
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["details"] == {"field": "content_id", "variable": "name"}
    added = client.post(
        f"/api/v1/group-calendars/{calendar['id']}/entries",
        headers=headers,
        json={"weekdays": [7, 6, 6], "slot": "evening", "content_id": morning.id},
    )
    assert added.status_code == 201 and added.json()["weekdays"] == [6, 7]
    bad_time = client.patch(
        f"/api/v1/group-calendars/{calendar['id']}", headers=headers, json={"slot_times": {"noon": "12:60"}}
    )
    assert bad_time.status_code == 422 and bad_time.json()["error"]["details"] == {"field": "slot_times.noon"}
    paused = client.patch(f"/api/v1/group-calendars/{calendar['id']}", headers=headers, json={"is_active": False})
    assert paused.json()["is_active"] is False
    removed = client.delete(f"/api/v1/group-calendars/{calendar['id']}/entries/{added.json()['id']}", headers=headers)
    assert removed.status_code == 204
    got = client.get(f"/api/v1/group-calendars/{calendar['id']}", headers=headers).json()
    assert len(got["entries"]) == 1
    assert client.get(f"/api/v1/group-calendars/{calendar['id']}/posts", headers=headers).json() == []
    assert client.delete(f"/api/v1/group-calendars/{calendar['id']}", headers=headers).status_code == 204
    assert client.get("/api/v1/group-calendars", headers=headers).json() == []


def test_moments_week_cap_and_results(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    persona = make_persona(db, workspace=ws, clock=clock)
    life = make_content(db, workspace=ws, clock=clock, body="生活", is_marketing=False)
    offer = make_content(db, workspace=ws, clock=clock, body="福利")
    for day, slot in [("2026-11-23", "morning"), ("2026-11-23", "noon"), ("2026-11-23", "evening")]:
        make_moment(db, workspace=ws, clock=clock, persona=persona, content=life, on=date.fromisoformat(day), slot=slot)
    headers = _headers(db, clock, ws)
    # 1/4 = 25% is over the 20% cap
    refused = client.post(
        "/api/v1/moments",
        headers=headers,
        json={"persona_id": persona.id, "post_date": "2026-11-24", "slot": "morning", "content_id": offer.id},
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["message"] == "本周营销内容将占 1/4 = 25%，超过 20%"
    assert refused.json()["error"]["details"]["field"] == "is_marketing"
    planned = client.post(
        "/api/v1/moments",
        headers=headers,
        json={"persona_id": persona.id, "post_date": "2026-11-24", "slot": "morning", "content_id": life.id},
    )
    assert planned.status_code == 201 and planned.json()["is_marketing"] is False
    offer_post = client.post(
        "/api/v1/moments",
        headers=headers,
        json={"persona_id": persona.id, "post_date": "2026-11-24", "slot": "noon", "content_id": offer.id},
    )
    assert offer_post.status_code == 201 and offer_post.json()["is_marketing"] is True
    week = client.get("/api/v1/moments", headers=headers, params={"persona_id": persona.id, "week": "2026-11-29"})
    assert {k: week.json()[k] for k in ("week_start", "total", "marketing", "marketing_share_pct", "cap_pct")} == {
        "week_start": "2026-11-23",
        "total": 5,
        "marketing": 1,
        "marketing_share_pct": 20,
        "cap_pct": 20,
    }
    results = client.put(
        f"/api/v1/moments/{planned.json()['id']}/results", headers=headers, json={"likes": 7, "comments": -1}
    )
    assert results.status_code == 422
    results = client.put(
        f"/api/v1/moments/{planned.json()['id']}/results", headers=headers, json={"likes": 7, "comments": 2}
    )
    assert (results.json()["likes"], results.json()["comments"]) == (7, 2)


def test_scripts_crud_grouping_and_preview(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    customer = make_customer(db, actor=Actor.system(ws.id), clock=clock, name="王小姐").customer
    headers = _headers(db, clock, ws)
    bad = client.post(
        "/api/v1/scripts", headers=headers, json={"stage": "greeting", "title": "问候", "body": "{{ nick }}你好"}
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"] == {"field": "body", "variable": "nick"}
    created = client.post(
        "/api/v1/scripts",
        headers=headers,
        json={"stage": "greeting", "title": "首次问候", "body": "{{ name }}您好", "tags": ["新客"]},
    )
    assert created.status_code == 201
    script_id = created.json()["id"]
    grouped = client.get("/api/v1/scripts/by-stage", headers=headers).json()
    assert [(g["stage"], [s["title"] for s in g["scripts"]]) for g in grouped] == [
        ("greeting", ["首次问候"]),
        ("follow_up", []),
        ("objection", []),
        ("after_sale", []),
    ]
    assert [s["id"] for s in client.get("/api/v1/scripts", headers=headers, params={"q": "您好"}).json()] == [script_id]
    preview = client.post(f"/api/v1/scripts/{script_id}/preview", headers=headers, json={"customer_id": customer.id})
    assert preview.json() == {"text": "王小姐您好", "variables": ["name"]}
    patched = client.patch(f"/api/v1/scripts/{script_id}", headers=headers, json={"title": "问候语"})
    assert patched.json()["title"] == "问候语"
    assert client.delete(f"/api/v1/scripts/{script_id}", headers=headers).status_code == 204
    assert client.get(f"/api/v1/scripts/{script_id}", headers=headers).status_code == 404


@pytest.mark.parametrize("role", [Role.STAFF, Role.STORE_MANAGER, Role.ANALYST])
def test_roles_without_touch_write_cannot_change_anything(
    client: TestClient, db: Session, clock: FrozenClock, role: Role
) -> None:
    # given one of everything
    ws = make_workspace(db, clock=clock)
    group = make_group(db, workspace=ws, clock=clock)
    account = make_account(db, workspace=ws, clock=clock)
    item = make_content(db, workspace=ws, clock=clock, body="早安", is_marketing=False)
    persona = make_persona(db, workspace=ws, clock=clock)
    moment = make_moment(db, workspace=ws, clock=clock, persona=persona, content=item, on=clock.now().date())
    script = make_script(db, workspace=ws, clock=clock)
    headers = _headers(db, clock, ws, role)
    before = (_count(db, GroupCalendar), _count(db, Persona), _count(db, MomentPost), _count(db, Script))
    writes = [
        ("post", "/api/v1/group-calendars", {"name": "x", "group_ids": [group.id], "channel_account_id": account.id}),
        ("post", "/api/v1/personas", {"name": "x"}),
        ("put", f"/api/v1/personas/{persona.id}", {"name": "x"}),
        ("delete", f"/api/v1/personas/{persona.id}", None),
        ("post", "/api/v1/moments", {"persona_id": persona.id, "post_date": "2026-11-24", "slot": "noon",
                                     "content_id": item.id}),
        ("put", f"/api/v1/moments/{moment.id}/results", {"likes": 1, "comments": 1}),
        ("delete", f"/api/v1/moments/{moment.id}", None),
        ("post", "/api/v1/scripts", {"stage": "greeting", "title": "x", "body": "x"}),
        ("patch", f"/api/v1/scripts/{script.id}", {"title": "x"}),
        ("delete", f"/api/v1/scripts/{script.id}", None),
    ]  # fmt: skip
    # when the role tries each write, then each is a 403 and nothing changed
    for method, url, body in writes:
        response = client.request(method, url, headers=headers, json=body)
        assert response.status_code == 403, (method, url, response.text)
    assert (_count(db, GroupCalendar), _count(db, Persona), _count(db, MomentPost), _count(db, Script)) == before
    # and reading is for roles with touch:read only
    read = client.get("/api/v1/scripts", headers=headers)
    assert read.status_code == (200 if role == Role.ANALYST else 403)
