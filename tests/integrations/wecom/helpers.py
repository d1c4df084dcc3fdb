"""Shared set-up of WeCom tests: a corp on the fake server and a workspace configured for it.

def test_x(db, clock, fake_wecom):                 # fake_wecom: a RunningFake (module-scoped)
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.corp            # the FakeCorp (add users, contacts, script failures)
    setup.config          # the workspace's WecomConfig
    setup.workspace
"""

from __future__ import annotations

import base64
import itertools
import os
from dataclasses import dataclass

from sqlalchemy.orm import Session

from siyu.integrations.wecom.config import WecomConfig, config_of
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.fake.state import FakeCorp
from siyu.kit.clock import Clock
from siyu.messaging.crypto import encrypt_credentials
from siyu.models import Staff, WecomIntegration, Workspace
from tests.factories import make_staff, make_workspace

_seq = itertools.count(1)


def aes_key() -> str:
    """A random EncodingAESKey: 43 characters of base64 without the trailing '='."""
    return base64.b64encode(os.urandom(32)).decode().rstrip("=")


@dataclass
class WecomSetup:
    workspace: Workspace
    integration: WecomIntegration
    corp: FakeCorp
    config: WecomConfig


def wecom_workspace(
    db: Session, *, clock: Clock, fake: RunningFake, workspace: Workspace | None = None, callback_url: str | None = None
) -> WecomSetup:
    """A workspace whose WeCom integration points at a new corp on the fake server."""
    workspace = workspace or make_workspace(db, clock=clock)
    n = next(_seq)
    corp_id = f"ww{os.getpid()}x{n:04d}"
    token, key = f"tok{n}", aes_key()
    corp = fake.fake.add_corp(
        corp_id,
        contact_secret=f"contact-secret-{n}",
        app_secret=f"app-secret-{n}",
        callback_url=callback_url,
        callback_token=token,
        callback_aes_key=key,
    )
    integration = WecomIntegration(
        workspace_id=workspace.id,
        corp_id=corp_id,
        agent_id=corp.agent_id,
        secrets_encrypted=encrypt_credentials(
            {
                "contact_secret": corp.contact_secret,
                "app_secret": corp.app_secret,
                "callback_token": token,
                "callback_aes_key": key,
            }
        ),
        api_base_url=fake.api_base_url,
        is_fake=True,
        is_active=True,
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    db.add(integration)
    db.flush()
    return WecomSetup(workspace, integration, corp, config_of(integration))


def wecom_staff(db: Session, setup: WecomSetup, *, clock: Clock, userid: str, name: str = "导购") -> Staff:
    """A staff member in siyu and the same member on the fake corp."""
    staff = make_staff(db, workspace=setup.workspace, clock=clock, name=name, wecom_user_id=userid)
    setup.corp.users[userid] = {"userid": userid, "name": name, "department": [1], "status": 1}
    return staff
