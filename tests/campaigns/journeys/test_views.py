"""The journeys console: list, editor (server-side checks shown by the step), detail with per-step
counts, lifecycle buttons, the staff task page, and who may do what."""

from __future__ import annotations

import json
from collections.abc import Callable
from html import unescape

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.campaigns.journeys.engine import run_journeys
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Journey, Role, StaffTask, User, Workspace
from tests.factories import make_staff, make_tag
from tests.web.conftest import login

Users = Callable[..., User]


def _definition(tag_id: int) -> str:
    return json.dumps(
        {
            "trigger": {"type": "group_joined"},
            "steps": [{"id": "w", "type": "wait", "hours": 2}, {"id": "t", "type": "tag", "tag_id": tag_id}],
            "goal": {"type": "order"},
        }
    )


def test_create_activate_and_read_the_detail(
    client: TestClient, db: Session, database: Database, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given an operator and a tag
    tag = make_tag(db, workspace=workspace, name="新人")
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    assert client.get("/journeys/new").status_code == 200
    # when they save a journey and activate it
    response = client.post(
        "/journeys", data={"csrf_token": csrf, "name": "入群欢迎", "definition": _definition(tag.id), "reentry": "1"}
    )
    assert response.status_code == 303, response.text
    journey = db.scalar(select(Journey))
    assert journey is not None
    assert response.headers["location"] == f"/journeys/{journey.id}"
    assert (journey.name, journey.reentry, journey.goal) == ("入群欢迎", True, {"type": "order"})
    assert client.post(f"/journeys/{journey.id}/activate", data={"csrf_token": csrf}).status_code == 303
    db.expire_all()
    assert db.get(Journey, journey.id).status == "active"  # type: ignore[union-attr]
    # then the list and the detail show it, with its steps described
    assert "入群欢迎" in client.get("/journeys").text
    page = unescape(client.get(f"/journeys/{journey.id}").text)
    assert "0 天 2 小时 0 分钟" in page and "新人" in page and "运行中" in page
    # and the JSON of the edit page is refused while running (pause first)
    assert client.get(f"/journeys/{journey.id}/edit").status_code == 200
    refused = client.post(
        f"/journeys/{journey.id}/edit", data={"csrf_token": csrf, "name": "改", "definition": _definition(tag.id)}
    )
    assert refused.status_code == 409


def test_a_bad_step_is_shown_by_its_path_and_nothing_is_saved(
    client: TestClient, db: Session, workspace: Workspace, user_with_role: Users
) -> None:
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    definition = json.dumps(
        {"trigger": {"type": "group_joined"}, "steps": [{"id": "w", "type": "wait", "day": 3, "at": "25:00"}]}
    )
    response = client.post("/journeys", data={"csrf_token": csrf, "name": "坏的", "definition": definition})
    assert response.status_code == 422
    assert '"error_path": "$.steps[0].at"' in response.text
    not_json = client.post("/journeys", data={"csrf_token": csrf, "name": "坏的", "definition": "{oops"})
    assert not_json.status_code == 422
    nul = json.dumps({"trigger": {"type": "group_joined"}, "steps": [{"id": "t", "type": "task", "title": "a\u0000b"}]})
    refused = client.post("/journeys", data={"csrf_token": csrf, "name": "坏的", "definition": nul})
    assert refused.status_code == 422 and '"error_path": "$.steps[0].title"' in refused.text
    assert db.scalar(select(func.count()).select_from(Journey)) == 0


def test_staff_complete_their_tasks_and_cannot_edit_journeys(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    # given a staff user with one open task, and a task of someone else
    staff, other = make_staff(db, workspace=workspace, clock=clock), make_staff(db, workspace=workspace, clock=clock)
    for who, title in ((staff, "回访王芳"), (other, "别人的任务")):
        db.add(
            StaffTask(
                workspace_id=workspace.id,
                staff_id=who.id,
                source="journey",
                source_id=1,
                idempotency_key=f"k-{title}",
                title=title,
                created_at=clock.now(),
            )
        )
    db.commit()
    csrf = login(client, user_with_role(Role.STAFF, staff_id=staff.id).email)
    # then they see only their task and complete it
    page = client.get("/journeys/tasks").text
    assert "回访王芳" in page and "别人的任务" not in page
    task = db.scalar(select(StaffTask).where(StaffTask.staff_id == staff.id))
    assert task is not None
    assert client.post(f"/journeys/tasks/{task.id}/done", data={"csrf_token": csrf}).status_code == 303
    db.expire_all()
    assert db.get(StaffTask, task.id).status == "done"  # type: ignore[union-attr]
    # and journeys themselves are out of reach
    assert client.get("/journeys").status_code == 403
    assert client.get("/journeys/new").status_code == 403


def test_an_analyst_reads_but_cannot_change(
    client: TestClient, db: Session, database: Database, clock: FrozenClock, workspace: Workspace, user_with_role: Users
) -> None:
    tag = make_tag(db, workspace=workspace)
    db.commit()
    operator = login(client, user_with_role(Role.OPERATOR).email)
    client.post("/journeys", data={"csrf_token": operator, "name": "旅程", "definition": _definition(tag.id)})
    journey = db.scalar(select(Journey))
    assert journey is not None
    client.post("/logout", data={"csrf_token": operator})
    csrf = login(client, user_with_role(Role.ANALYST).email)
    assert client.get(f"/journeys/{journey.id}").status_code == 200
    assert client.post(f"/journeys/{journey.id}/activate", data={"csrf_token": csrf}).status_code == 403
    assert client.get("/journeys/new").status_code == 403
    run_journeys(database, clock)
    db.expire_all()
    assert db.get(Journey, journey.id).status == "draft"  # type: ignore[union-attr]
