"""A workspace whose official account lives on the fake server, with pushes wired to a TestClient.

setup = oa_workspace(db, clock=clock, fake=fake_server)          # plain-mode or safe-mode (aes=True)
wire(setup, client)                                                # pushes → POST /integrations/wechat/callback
"""

from __future__ import annotations

import base64
import itertools
import os
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.integrations.wechat.config import WechatConfig, config_of
from siyu.integrations.wecom.fake.official import add_account, set_transport
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import Clock
from siyu.messaging.crypto import encrypt_credentials
from siyu.models import WechatOfficialAccount, Workspace
from tests.factories import make_workspace

_seq = itertools.count(1)


@dataclass
class OaSetup:
    workspace: Workspace
    account: WechatOfficialAccount
    fake: Any
    state: dict[str, Any]
    config: WechatConfig


def oa_workspace(
    db: Session, *, clock: Clock, fake: RunningFake, aes: bool = True, scope: str = "snsapi_base"
) -> OaSetup:
    """A workspace with an active official account on the fake server."""
    workspace = make_workspace(db, clock=clock)
    n = next(_seq)
    app_id = f"wx{os.getpid()}t{n:04d}"
    token = f"oatok{n}"
    key = base64.b64encode(os.urandom(32)).decode().rstrip("=") if aes else ""
    state = add_account(fake.fake, app_id, secret=f"oa-secret-{n}", token=token, aes_key=key)
    account = WechatOfficialAccount(
        workspace_id=workspace.id,
        app_id=app_id,
        secrets_encrypted=encrypt_credentials(
            {"app_secret": f"oa-secret-{n}", "callback_token": token, "callback_aes_key": key}
        ),
        api_base_url=fake.url + "/oa/cgi-bin/",
        is_fake=True,
        is_active=True,
        oauth_scope=scope,
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    db.add(account)
    db.flush()
    return OaSetup(workspace, account, fake.fake, state, config_of(account))


def wire(setup: OaSetup, client: TestClient) -> list[int]:
    """Deliver the account's pushes to the app in-process; returns the list the statuses go to."""
    statuses: list[int] = []

    def transport(params: dict[str, str], body: bytes) -> int:
        response = client.post(
            "/integrations/wechat/callback", params={**params, "ws": str(setup.workspace.id)}, content=body
        )
        statuses.append(response.status_code)
        return response.status_code

    set_transport(setup.fake, setup.config.app_id, transport)
    return statuses
