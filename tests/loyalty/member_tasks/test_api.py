"""The tasks API: CRUD with validation naming the field, check-ins and completions, permissions."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES, Actor
from siyu.kit.clock import FrozenClock
from siyu.models import AuditEntry, LoyaltyTask, Role, TaskCompletion, Workspace
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.factories import make_customer, make_token, make_workspace

app = api_fixtures.app
client = api_fixtures.client

CHECK_IN = {
    "key": "check_in",
    "kind": "check_in",
    "name": "每日签到",
    "points": 5,
    "streak_bonuses": {"3": 10, "7": 50},
}


def _headers(db: Session, clock: FrozenClock, ws: Workspace, role: Role) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=ws, scopes=sorted(str(s) for s in ROLE_SCOPES[role]))
    db.commit()
    return bearer(token)


def _count(db: Session, model: Any) -> int:
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_operator_defines_tasks_and_a_member_checks_in(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a workspace, an operator token and a customer
    ws = make_workspace(db, clock=clock)
    operator = _headers(db, clock, ws, Role.OPERATOR)
    customer = make_customer(db, actor=Actor.system(ws.id), clock=clock).customer
    db.commit()
    # when the operator creates a check-in and a post task, and the member checks in twice and posts
    created = client.post("/api/v1/loyalty/tasks", headers=operator, json=CHECK_IN)
    post = client.post(
        "/api/v1/loyalty/tasks",
        headers=operator,
        json={"key": "post", "kind": "post", "name": "晒单", "points": 20, "limit_count": 2},
    )
    first = client.post(f"/api/v1/members/{customer.id}/check-ins", headers=operator)
    second = client.post(f"/api/v1/members/{customer.id}/check-ins", headers=operator)
    done = client.post(f"/api/v1/members/{customer.id}/tasks/post/completions", headers=operator, json={"ref": "p1"})
    board = client.get(f"/api/v1/members/{customer.id}/tasks", headers=operator)
    # then the check-in paid 5 points, the second was refused, and the board shows progress
    assert created.status_code == 201, created.text
    assert created.json()["streak_bonuses"] == {"3": 10, "7": 50}
    assert post.status_code == 201, post.text
    assert first.status_code == 201, first.text
    assert {k: first.json()[k] for k in ("day", "streak", "points", "bonus", "balance")} == {
        "day": "2026-11-23",
        "streak": 1,
        "points": 5,
        "bonus": 0,
        "balance": 5,
    }
    assert (second.status_code, second.json()["error"]["code"]) == (409, "already_checked_in")
    assert done.status_code == 201, done.text
    assert (done.json()["period_key"], done.json()["slot"], done.json()["ref"]) == ("2026-11-23", 1, "p1")
    assert [(s["task"]["key"], s["completed"], s["is_done"]) for s in board.json()] == [
        ("check_in", 1, True),
        ("post", 1, False),
    ]
    assert board.json()[0]["next_bonus"] == {"streak": 3, "points": 10}
    assert _count(db, AuditEntry) >= 2


def test_bad_task_definitions_name_the_field_and_write_nothing(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given an operator
    ws = make_workspace(db, clock=clock)
    operator = _headers(db, clock, ws, Role.OPERATOR)
    client.post("/api/v1/loyalty/tasks", headers=operator, json=CHECK_IN)
    cases = [
        ({**CHECK_IN, "key": "daily"}, 422, "key"),
        ({**CHECK_IN, "limit_count": 2}, 422, "limit_period"),
        ({**CHECK_IN, "streak_bonuses": {"1": 5}}, 422, "streak_bonuses"),
        (
            {"key": "share", "kind": "share", "name": "分享", "points": 5, "streak_bonuses": {"3": 1}},
            422,
            "streak_bonuses",
        ),
        ({"key": "Bad Key", "kind": "post", "name": "晒单", "points": 5}, 422, "key"),
        (
            {
                "key": "profile",
                "kind": "profile",
                "name": "完善资料",
                "points": 5,
                "settings": {"required_fields": ["x"]},
            },
            422,
            "settings.required_fields",
        ),
        (CHECK_IN, 409, "key"),
    ]
    # when each is posted
    for body, status, field in cases:
        response = client.post("/api/v1/loyalty/tasks", headers=operator, json=body)
        # then it is refused naming the field
        assert (response.status_code, response.json()["error"]["details"]["field"]) == (status, field), body
    # and only the first task exists
    assert db.scalars(select(LoyaltyTask.key).where(LoyaltyTask.workspace_id == ws.id)).all() == ["check_in"]


def test_update_keeps_the_key_and_delete_retires(db: Session, clock: FrozenClock, client: TestClient) -> None:
    ws = make_workspace(db, clock=clock)
    operator = _headers(db, clock, ws, Role.OPERATOR)
    task = client.post(
        "/api/v1/loyalty/tasks", headers=operator, json={"key": "share", "kind": "share", "name": "分享", "points": 5}
    ).json()
    url = f"/api/v1/loyalty/tasks/{task['id']}"
    renamed = client.put(url, headers=operator, json={"key": "share", "kind": "share", "name": "分享好友", "points": 8})
    rekeyed = client.put(url, headers=operator, json={"key": "share2", "kind": "share", "name": "分享", "points": 8})
    retired = client.delete(url, headers=operator)
    listed = client.get("/api/v1/loyalty/tasks", headers=operator, params={"include_inactive": False})
    assert (renamed.status_code, renamed.json()["name"], renamed.json()["points"]) == (200, "分享好友", 8)
    assert (rekeyed.status_code, rekeyed.json()["error"]["details"]) == (422, {"field": "key"})
    assert (retired.status_code, retired.json()["is_active"]) == (200, False)
    assert listed.json() == []


def test_permissions_readers_cannot_define_tasks_or_check_members_in(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given an analyst token, a check-in task and a customer
    ws = make_workspace(db, clock=clock)
    analyst = _headers(db, clock, ws, Role.ANALYST)
    operator = _headers(db, clock, ws, Role.OPERATOR)
    client.post("/api/v1/loyalty/tasks", headers=operator, json=CHECK_IN)
    customer = make_customer(db, actor=Actor.system(ws.id), clock=clock).customer
    db.commit()
    # when the analyst tries to define a task and check the customer in
    defined = client.post("/api/v1/loyalty/tasks", headers=analyst, json={**CHECK_IN, "key": "x", "kind": "post"})
    checked = client.post(f"/api/v1/members/{customer.id}/check-ins", headers=analyst)
    board = client.get(f"/api/v1/members/{customer.id}/tasks", headers=analyst)
    # then both writes are forbidden and nothing changed; reading is allowed
    assert (defined.status_code, checked.status_code, board.status_code) == (403, 403, 200)
    assert _count(db, TaskCompletion) == 0
    assert db.scalars(select(LoyaltyTask.key).where(LoyaltyTask.workspace_id == ws.id)).all() == ["check_in"]
