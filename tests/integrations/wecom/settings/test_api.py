"""`/api/v1/integrations/wecom`: secrets go in and never come out; roles; events filter; connection test."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.auth.permissions import ROLE_SCOPES
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from siyu.models import EventStatus, Role, Workspace
from tests.api import conftest as api_fixtures
from tests.api.conftest import bearer
from tests.factories import make_token, make_workspace
from tests.integrations.wecom.helpers import wecom_workspace
from tests.integrations.wecom.settings.factories import make_event, make_sync_run

app = api_fixtures.app
client = api_fixtures.client

SECRET = "TOP-SECRET-contact-41"
KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def _headers(db: Session, clock: FrozenClock, ws: Workspace, role: Role) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=ws, scopes=sorted(str(s) for s in ROLE_SCOPES[role]))
    db.commit()
    return bearer(token)


def test_put_and_get_never_return_secrets(
    db: Session, database: object, clock: FrozenClock, client: TestClient
) -> None:
    ws = make_workspace(db, clock=clock)
    admin = _headers(db, clock, ws, Role.ADMIN)
    body = {"corp_id": "wwAPI01", "contact_secret": SECRET, "callback_token": "tok3n", "callback_aes_key": KEY}
    put = client.put("/api/v1/integrations/wecom", headers=admin, json=body)
    assert put.status_code == 200, put.text
    got = client.get("/api/v1/integrations/wecom", headers=admin)
    for answer in (put, got):
        assert SECRET not in answer.text and KEY not in answer.text
    data = got.json()
    assert (data["configured"], data["corp_id"], data["is_fake"]) == (True, "wwAPI01", False)
    assert data["secrets_set"] == {
        "contact_secret": True,
        "app_secret": False,
        "callback_token": True,
        "callback_aes_key": True,
    }
    assert data["callback_url"] == f"http://127.0.0.1:8000/integrations/wecom/callback?ws={ws.id}"


def test_bad_aes_key_is_a_422_naming_the_field(
    db: Session, database: object, clock: FrozenClock, client: TestClient
) -> None:
    ws = make_workspace(db, clock=clock)
    admin = _headers(db, clock, ws, Role.ADMIN)
    answer = client.put(
        "/api/v1/integrations/wecom", headers=admin, json={"corp_id": "ww1", "callback_aes_key": "short"}
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["details"] == {"field": "callback_aes_key"}
    assert client.get("/api/v1/integrations/wecom", headers=admin).json()["configured"] is False


def test_operators_read_and_test_but_do_not_configure(
    db: Session, database: object, clock: FrozenClock, client: TestClient, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    operator = _headers(db, clock, setup.workspace, Role.OPERATOR)
    analyst = _headers(db, clock, setup.workspace, Role.ANALYST)
    assert client.put("/api/v1/integrations/wecom", headers=operator, json={"corp_id": "x"}).status_code == 403
    assert client.get("/api/v1/integrations/wecom", headers=analyst).status_code == 403
    tested = client.post("/api/v1/integrations/wecom/test", headers=operator)
    assert tested.status_code == 200, tested.text
    assert tested.json()["ok"] is True and len(tested.json()["checks"]) == 4
    assert setup.config.contact_secret not in json.dumps(tested.json())
    read = client.get("/api/v1/integrations/wecom", headers=operator).json()
    assert read["last_checked_at"] is not None and read["is_fake"] is True


def test_events_newest_first_filtered_by_status_with_sync(
    db: Session, database: object, clock: FrozenClock, client: TestClient, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    ws = setup.workspace
    make_event(db, workspace=ws, clock=clock, key="a", minutes_ago=3)
    make_event(db, workspace=ws, clock=clock, key="b", status=EventStatus.FAILED, error="[45009] limit", minutes_ago=2)
    make_event(db, workspace=ws, clock=clock, key="c", change_type="del_follow_user", minutes_ago=1, duplicates=2)
    make_sync_run(db, workspace=ws, clock=clock)
    headers = _headers(db, clock, ws, Role.OPERATOR)
    events = client.get("/api/v1/integrations/wecom/events", headers=headers).json()
    assert [(e["change_type"], e["status"], e["duplicates"]) for e in events] == [
        ("del_follow_user", "processed", 2),
        ("add_external_contact", "failed", 0),
        ("add_external_contact", "processed", 0),
    ]
    failed = client.get("/api/v1/integrations/wecom/events?status=failed", headers=headers).json()
    assert [e["error"] for e in failed] == ["[45009] limit"]
    assert client.get("/api/v1/integrations/wecom/events?status=nope", headers=headers).status_code == 422
    read = client.get("/api/v1/integrations/wecom", headers=headers).json()
    assert read["event_counts"] == {"processed": 2, "failed": 1}
    assert (read["sync"]["status"], read["sync"]["step"], read["sync"]["counts"]) == (
        "failed",
        "customers",
        {"staff": 12, "customers": 340},
    )
