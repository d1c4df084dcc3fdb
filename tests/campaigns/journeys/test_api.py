"""The journeys and staff-tasks API: CRUD, lifecycle, enrolments, stats, errors and permissions."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.campaigns.journeys.engine import run_journeys
from siyu.campaigns.journeys.service import complete_task, list_tasks
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import NotFound, PermissionDenied
from siyu.models import Journey, Role, StaffTask, Workspace
from tests.api.conftest import bearer
from tests.factories import actor_for, make_customer, make_staff, make_tag, make_token, make_workspace
from tests.segments.factories import make_event

STEPS = [{"id": "hi", "type": "task", "title": "打招呼"}, {"id": "w", "type": "wait", "days": 1}]


def _headers(db: Session, clock: FrozenClock, ws: Workspace, scopes: list[str] | None = None) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=ws, scopes=scopes)
    db.commit()
    return bearer(token)


def _body(**values: Any) -> dict[str, Any]:
    return {"name": "入群欢迎", "trigger": {"type": "group_joined"}, "steps": STEPS} | values


def test_create_activate_run_and_read_results(
    client: TestClient, db: Session, database: Database, clock: FrozenClock
) -> None:
    # given a workspace and an admin token
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    # when a journey is created, activated and a customer joins a group
    created = client.post("/api/v1/journeys", headers=headers, json=_body())
    assert created.status_code == 201, created.text
    journey = created.json()
    assert (journey["status"], journey["steps"][1]) == (
        "draft",
        {"id": "w", "type": "wait", "days": 1, "hours": 0, "minutes": 0},
    )
    activated = client.post(f"/api/v1/journeys/{journey['id']}/activate", headers=headers)
    assert activated.json()["status"] == "active"
    customer = make_customer(db, actor=actor_for(ws), clock=clock, name="王芳").customer
    make_event(db, customer=customer, type="group.joined", occurred_at=clock.now())
    db.commit()
    run_journeys(database, clock)
    # then the enrolment, the stats and the task are visible
    page = client.get(f"/api/v1/journeys/{journey['id']}/enrolments", headers=headers).json()
    assert [(e["customer_id"], e["status"], e["step_index"]) for e in page["items"]] == [(customer.id, "active", 2)]
    assert page["next_cursor"] is None
    stats = client.get(f"/api/v1/journeys/{journey['id']}/stats", headers=headers).json()
    assert (stats["enrolled"], stats["by_status"]) == (1, {"active": 1})
    assert [(s["step_id"], s["ran"], s["here"], s["outcomes"]) for s in stats["steps"]] == [
        ("hi", 1, 0, {"task:unassigned": 1}),
        ("w", 1, 1, {"waited": 1}),
    ]
    tasks = client.get("/api/v1/staff-tasks", headers=headers).json()
    assert [(t["title"], t["status"], t["customer_id"]) for t in tasks] == [("打招呼", "open", customer.id)]
    done = client.post(f"/api/v1/staff-tasks/{tasks[0]['id']}/done", headers=headers)
    assert done.json()["status"] == "done"
    assert client.get("/api/v1/staff-tasks", headers=headers).json() == []
    # and editing needs a pause first
    assert client.put(f"/api/v1/journeys/{journey['id']}", headers=headers, json=_body(name="改")).status_code == 409
    client.post(f"/api/v1/journeys/{journey['id']}/pause", headers=headers)
    edited = client.put(f"/api/v1/journeys/{journey['id']}", headers=headers, json=_body(name="改"))
    assert (edited.status_code, edited.json()["name"]) == (200, "改")
    # and archiving exits the active entries
    assert client.delete(f"/api/v1/journeys/{journey['id']}", headers=headers).status_code == 204
    page = client.get(f"/api/v1/journeys/{journey['id']}/enrolments", headers=headers).json()
    assert [(e["status"], e["exit_reason"]) for e in page["items"]] == [("exited", "archived")]
    assert client.get("/api/v1/journeys", headers=headers).json() == []


def test_bad_definitions_are_422_with_the_path(client: TestClient, db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    headers = _headers(db, clock, ws)
    tag = make_tag(db, workspace=ws)
    db.commit()
    cases = [
        (
            _body(
                steps=[
                    {"id": "a", "type": "exit"},
                    {"id": "b", "type": "exit"},
                    {"id": "c", "type": "branch", "condition": {"event_type": "x"}, "then": "zz"},
                ]
            ),
            "$.steps[2].then",
        ),
        (_body(steps=[{"id": "c", "type": "coupon"}]), "$.steps[0].template_id"),
        (_body(trigger={"type": "tag_added", "tag_id": tag.id + 1000}), "$.trigger.tag_id"),
        (_body(steps=[{"id": "w", "type": "wait", "day": 3, "at": "8pm"}]), "$.steps[0].at"),
    ]
    for body, path in cases:
        response = client.post("/api/v1/journeys", headers=headers, json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert (error["code"], error["details"]["path"]) == ("invalid_input", path)
    # malformed bodies are 422 too, never 500
    assert client.post("/api/v1/journeys", headers=headers, json={"name": "x"}).status_code == 422
    assert client.post("/api/v1/journeys", headers=headers, json=_body(steps={"a": 1})).status_code == 422
    assert db.scalar(select(func.count()).select_from(Journey)) == 0


def test_scopes_are_enforced_and_nothing_changes(client: TestClient, db: Session, clock: FrozenClock) -> None:
    # given a journey, a read-only token and a token without touch scopes
    ws = make_workspace(db, clock=clock)
    admin = _headers(db, clock, ws)
    journey = client.post("/api/v1/journeys", headers=admin, json=_body()).json()
    reader = _headers(db, clock, ws, scopes=["touch:read"])
    outsider = _headers(db, clock, ws, scopes=["customers:read"])
    # then writes by the reader and everything by the outsider are 403
    for method, url, body in [
        ("POST", "/api/v1/journeys", _body()),
        ("PUT", f"/api/v1/journeys/{journey['id']}", _body(name="改")),
        ("POST", f"/api/v1/journeys/{journey['id']}/activate", None),
        ("DELETE", f"/api/v1/journeys/{journey['id']}", None),
    ]:
        assert client.request(method, url, headers=reader, json=body).status_code == 403
    for url in ("/api/v1/journeys", f"/api/v1/journeys/{journey['id']}", "/api/v1/staff-tasks"):
        response = client.get(url, headers=outsider)
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
    assert client.get(f"/api/v1/journeys/{journey['id']}", headers=admin).json()["status"] == "draft"
    assert client.get(f"/api/v1/journeys/{journey['id']}", headers=reader).json()["name"] == "入群欢迎"
    # and another workspace's journey is 404
    other = _headers(db, clock, make_workspace(db, clock=clock))
    assert client.get(f"/api/v1/journeys/{journey['id']}", headers=other).status_code == 404


def test_staff_see_and_complete_only_their_own_tasks(db: Session, clock: FrozenClock) -> None:
    # given tasks for two staff members
    ws = make_workspace(db, clock=clock)
    mine, theirs = make_staff(db, workspace=ws, clock=clock), make_staff(db, workspace=ws, clock=clock)
    tasks = []
    for staff, title in ((mine, "我的"), (theirs, "别人的")):
        task = StaffTask(
            workspace_id=ws.id,
            staff_id=staff.id,
            source="journey",
            source_id=1,
            idempotency_key=f"k-{title}",
            title=title,
            created_at=clock.now(),
        )
        db.add(task)
        tasks.append(task)
    db.flush()
    actor = actor_for(ws, role=Role.STAFF, staff_id=mine.id)
    # then a staff member lists only theirs, may not ask for another's, and completes only theirs
    assert [t.title for t in list_tasks(db, actor)] == ["我的"]
    with pytest.raises(PermissionDenied):
        list_tasks(db, actor, staff_id=theirs.id)
    assert complete_task(db, actor=actor, task_id=tasks[0].id, clock=clock).status == "done"
    with pytest.raises(NotFound):
        complete_task(db, actor=actor, task_id=tasks[1].id, clock=clock)
    assert tasks[1].status == "open"
    # and an analyst (touch:read, no staff id) sees all but may not complete
    analyst = actor_for(ws, role=Role.ANALYST)
    assert len(list_tasks(db, analyst, status=None)) == 2
    with pytest.raises(PermissionDenied):
        complete_task(db, actor=analyst, task_id=tasks[1].id, clock=clock)
