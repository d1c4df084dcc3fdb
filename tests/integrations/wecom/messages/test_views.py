"""The console page lists message and moment tasks; "remind now" reminds; "refresh now" queues the job."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES, Scope
from siyu.db import Database
from siyu.integrations.wecom.config import client_for
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.messages.service import sync_message_tasks
from siyu.integrations.wecom.messages.tasks import SYNC_KIND, sync_workspace
from siyu.kit.clock import FrozenClock
from siyu.models import Job, Role, User, WecomMessageTask, Workspace
from tests.factories import make_workspace
from tests.integrations.wecom.helpers import wecom_staff, wecom_workspace
from tests.web.conftest import app, client, login, user_with_role, workspace

__all__ = ["app", "client", "user_with_role", "workspace"]


def test_page_lists_tasks_and_remind_now(
    db: Session,
    clock: FrozenClock,
    client: TestClient,
    workspace: Workspace,
    fake_wecom: RunningFake,
    user_with_role: Callable[..., User],
    database: Database,
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom, workspace=workspace)
    setup.corp.clock = lambda: clock.now().timestamp()
    wecom_staff(db, setup, clock=clock, userid="lin", name="林导购")
    setup.corp.contacts["wmA"] = {"external_userid": "wmA", "name": "A", "type": 1}
    setup.corp.follows["wmA|lin"] = {"userid": "lin", "createtime": 1700000000, "tags": []}
    msgid = client_for(setup.config).call(
        "POST", "externalcontact/add_msg_template", data={"sender": "lin", "external_userid": ["wmA"]}
    )["msgid"]
    sync_message_tasks(database, setup.config, clock)
    operator = user_with_role(Role.OPERATOR)
    db.commit()
    task = db.scalars(select(WecomMessageTask)).one()
    csrf = login(client, operator.email)
    page = client.get("/integrations/wecom/messages")
    assert page.status_code == 200
    assert f'data-testid="task-{task.id}"' in page.text and msgid in page.text and "林导购" in page.text
    assert f'data-testid="remind-{task.id}"' in page.text and "0/3" in page.text
    reminded = client.post(f"/integrations/wecom/messages/{task.id}/remind", data={"csrf_token": csrf})
    assert reminded.status_code == 303
    db.refresh(task)
    assert task.remind_count == 1
    assert len(setup.corp.table("msg_tasks")[msgid]["reminds"]) == 1
    assert "1/3" in client.get("/integrations/wecom/messages").text
    assert 'data-testid="moment-tasks"' in client.get("/integrations/wecom/messages?tab=moments").text
    queued = client.post("/integrations/wecom/messages/refresh", data={"csrf_token": csrf})
    assert queued.status_code == 303
    job = db.scalar(select(Job).where(Job.kind == SYNC_KIND))
    assert job is not None and job.workspace_id == workspace.id


def test_no_integrations_scope_no_page(db: Session, client: TestClient, user_with_role: Callable[..., User]) -> None:
    analyst = user_with_role(Role.ANALYST)  # no integrations:read
    csrf = login(client, analyst.email)
    assert client.get("/integrations/wecom/messages").status_code == 403
    assert client.post("/integrations/wecom/messages/refresh", data={"csrf_token": csrf}).status_code == 403
    assert db.scalar(select(Job).where(Job.kind == SYNC_KIND)) is None


def test_read_only_user_sees_the_page_but_cannot_remind(
    db: Session,
    clock: FrozenClock,
    client: TestClient,
    workspace: Workspace,
    fake_wecom: RunningFake,
    user_with_role: Callable[..., User],
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An analyst given integrations:read only (no built-in role has read without write)
    monkeypatch.setitem(ROLE_SCOPES, Role.ANALYST, ROLE_SCOPES[Role.ANALYST] | {Scope.INTEGRATIONS_READ})
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom, workspace=workspace)
    setup.corp.clock = lambda: clock.now().timestamp()
    wecom_staff(db, setup, clock=clock, userid="lin")
    setup.corp.contacts["wmA"] = {"external_userid": "wmA", "name": "A", "type": 1}
    setup.corp.follows["wmA|lin"] = {"userid": "lin", "createtime": 1700000000, "tags": []}
    msgid = client_for(setup.config).call(
        "POST", "externalcontact/add_msg_template", data={"sender": "lin", "external_userid": ["wmA"]}
    )["msgid"]
    sync_message_tasks(database, setup.config, clock)
    reader = user_with_role(Role.ANALYST)
    db.commit()
    task = db.scalars(select(WecomMessageTask)).one()
    csrf = login(client, reader.email)
    page = client.get("/integrations/wecom/messages")
    assert page.status_code == 200 and msgid in page.text
    assert f'data-testid="remind-{task.id}"' not in page.text
    assert client.post(f"/integrations/wecom/messages/{task.id}/remind", data={"csrf_token": csrf}).status_code == 403
    assert client.post("/integrations/wecom/messages/refresh", data={"csrf_token": csrf}).status_code == 403
    db.refresh(task)
    assert task.remind_count == 0 and setup.corp.table("msg_tasks")[msgid]["reminds"] == []


def test_the_job_skips_a_workspace_without_wecom(db: Session, clock: FrozenClock, database: object) -> None:
    ws = make_workspace(db, clock=clock)
    db.commit()
    assert sync_workspace(ws.id, clock) == {"skipped": "not configured"}
