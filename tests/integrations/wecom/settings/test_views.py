"""The `/integrations/wecom` console page: form with write-only secrets, field errors, roles, events
filter, connection test panel."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.integrations.wecom.config import load_config
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from siyu.models import EventStatus, Role, User, Workspace
from tests.factories import make_staff
from tests.integrations.wecom.helpers import wecom_workspace
from tests.integrations.wecom.settings.factories import make_event
from tests.web.conftest import app, client, login, user_with_role, workspace

__all__ = ["app", "client", "user_with_role", "workspace"]

SECRET = "contact-secret-in-form-99"
KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def _form(csrf: str, **changes: str) -> dict[str, str]:
    values = {
        "csrf_token": csrf,
        "corp_id": "wwFORM01",
        "agent_id": "1000002",
        "contact_secret": SECRET,
        "app_secret": "",
        "callback_token": "tok3n",
        "callback_aes_key": KEY,
        "is_active": "1",
    }
    return values | changes


def test_admin_saves_and_secrets_are_never_shown_back(
    db: Session, client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    user = user_with_role(Role.ADMIN)
    csrf = login(client, user.email)
    empty = client.get("/integrations/wecom")
    assert empty.status_code == 200 and 'id="not-configured"' in empty.text
    assert f"/integrations/wecom/callback?ws={workspace.id}" in empty.text
    # a bad AES key is refused next to its field, nothing saved, the secret not echoed
    refused = client.post("/integrations/wecom", data=_form(csrf, callback_aes_key="tooshort"))
    assert refused.status_code == 422
    assert 'data-error="callback_aes_key"' in refused.text and SECRET not in refused.text
    assert 'value="wwFORM01"' in refused.text
    # a good form saves and the page shows only that secrets are set
    saved = client.post("/integrations/wecom", data=_form(csrf))
    assert saved.status_code == 303 and saved.headers["location"] == "/integrations/wecom"
    page = client.get("/integrations/wecom").text
    assert SECRET not in page and KEY not in page
    assert 'data-set="contact_secret"' in page and 'data-set="app_secret"' not in page
    assert 'data-audit="create"' in page
    # blank secrets keep the saved ones
    client.post("/integrations/wecom", data=_form(csrf, contact_secret="", callback_aes_key=""))
    db.expire_all()
    config = load_config(db, workspace.id)
    assert (config.contact_secret, config.callback_aes_key) == (SECRET, KEY)


def test_operator_reads_tests_and_filters_but_cannot_save(
    db: Session,
    clock: FrozenClock,
    client: TestClient,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    fake_wecom: RunningFake,
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom, workspace=workspace)
    make_event(db, workspace=workspace, clock=clock, key="ok", minutes_ago=2)
    make_event(db, workspace=workspace, clock=clock, key="bad", status=EventStatus.FAILED, error="[84061] no relation")
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    page = client.get("/integrations/wecom").text
    assert 'id="save-wecom"' not in page and 'id="test-wecom"' in page and 'id="fake-badge"' in page
    assert page.count("data-event=") == 2
    failed = client.get("/integrations/wecom?status=failed").text
    assert failed.count("data-event=") == 1 and "[84061] no relation" in failed
    refused = client.post("/integrations/wecom", data=_form(csrf))
    assert refused.status_code == 403
    tested = client.post("/integrations/wecom/test", headers={"x-csrf-token": csrf})
    assert tested.status_code == 200 and 'data-check="ok"' in tested.text
    assert setup.config.contact_secret not in tested.text


@pytest.mark.parametrize("role", [Role.ANALYST, Role.STAFF])
def test_roles_without_integrations_read_are_refused(
    db: Session,
    clock: FrozenClock,
    client: TestClient,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    role: Role,
) -> None:
    staff_id = make_staff(db, clock=clock, workspace=workspace).id if role is Role.STAFF else None
    csrf = login(client, user_with_role(role, staff_id=staff_id).email)
    assert client.get("/integrations/wecom").status_code == 403
    assert client.post("/integrations/wecom/test", headers={"x-csrf-token": csrf}).status_code == 403
