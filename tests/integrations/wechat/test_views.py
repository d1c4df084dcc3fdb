"""The `/integrations/wechat` console page: settings with write-only secrets, roles, test, QR codes."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.integrations.wechat.config import load_account
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from siyu.models import Role, User, WechatQrCode, Workspace
from tests.factories import make_live_code, make_staff
from tests.integrations.wechat.helpers import oa_workspace
from tests.web.conftest import app, client, login, user_with_role, workspace

__all__ = ["app", "client", "user_with_role", "workspace"]
SECRET = "oa-form-secret-77"


def test_admin_saves_and_secrets_are_never_shown_back(
    db: Session, client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    csrf = login(client, user_with_role(Role.ADMIN).email)
    empty = client.get("/integrations/wechat")
    assert empty.status_code == 200
    assert f"/integrations/wechat/callback?ws={workspace.id}" in empty.text
    form = {"csrf_token": csrf, "app_id": "wx0123456789abcdef", "app_secret": SECRET, "callback_token": "tok9"}
    refused = client.post("/integrations/wechat", data=form | {"callback_aes_key": "short", "is_active": "1"})
    assert refused.status_code == 422
    assert 'data-error="callback_aes_key"' in refused.text and SECRET not in refused.text
    saved = client.post("/integrations/wechat", data=form | {"is_active": "1"})
    assert (saved.status_code, saved.headers["location"]) == (303, "/integrations/wechat")
    page = client.get("/integrations/wechat").text
    assert SECRET not in page and 'data-set="app_secret"' in page and 'data-set="callback_aes_key"' not in page
    client.post("/integrations/wechat", data=form | {"app_secret": "", "is_active": "1"})
    db.expire_all()
    assert load_account(db, workspace.id).app_secret == SECRET


def test_operator_tests_the_connection_and_creates_a_qr_but_cannot_save(
    db: Session,
    clock: FrozenClock,
    client: TestClient,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    fake_server: RunningFake,
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    # the page's workspace is the login's: move the account there
    setup.account.workspace_id = workspace.id
    staff = make_staff(db, workspace=workspace, clock=clock)
    code = make_live_code(db, workspace=workspace, clock=clock, routes=[{"staff_id": staff.id}], name="门店活码")
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    page = client.get("/integrations/wechat").text
    assert 'id="save-wechat"' not in page and 'id="test-wechat"' in page
    assert client.post("/integrations/wechat", data={"csrf_token": csrf, "app_id": "wx1"}).status_code == 403
    tested = client.post("/integrations/wechat/test", data={"csrf_token": csrf}).text
    assert 'id="test-result"' in tested and "alert-success" in tested
    created = client.post("/integrations/wechat/qr", data={"csrf_token": csrf, "live_code_id": str(code.id)})
    assert created.status_code == 303
    [row] = db.scalars(select(WechatQrCode).where(WechatQrCode.workspace_id == workspace.id)).all()
    assert row.live_code_id == code.id
    assert row.scene in client.get("/integrations/wechat").text
    for raw in ("", "²", "1" * 25):  # "²".isdigit() is True but int("²") raises; 25 digits overflow BIGINT
        bad = client.post("/integrations/wechat/qr", data={"csrf_token": csrf, "live_code_id": raw})
        assert bad.status_code == 422 and 'data-error="live_code_id"' in bad.text, raw
