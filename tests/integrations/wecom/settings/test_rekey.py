"""`rekey_all` re-encrypts the integrations' secrets with the channel credentials."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from siyu.config import Settings
from siyu.db import Database
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.messaging.crypto import decrypt_credentials, encrypt_credentials, rekey_all
from siyu.models import WechatOfficialAccount
from tests.integrations.wecom.helpers import wecom_workspace


def test_rekey_covers_wecom_and_official_account_secrets(
    db: Session, clock: FrozenClock, settings: Settings, database: Database, fake_wecom: RunningFake
) -> None:
    # given a WeCom integration and an official account sealed under the derived key
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    account = WechatOfficialAccount(
        workspace_id=setup.workspace.id,
        app_id="wxREKEY01",
        secrets_encrypted=encrypt_credentials({"app_secret": "oa-secret"}),
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    db.add(account)
    db.flush()
    old = (setup.integration.secrets_encrypted, account.secrets_encrypted)
    derived = base64.urlsafe_b64encode(hashlib.sha256(b"siyu-credentials:test-secret").digest()).decode()
    new_key = Fernet.generate_key().decode()
    # when the key rotates and everything is rekeyed
    database.settings = settings.model_copy(update={"credentials_key": new_key, "credentials_old_keys": derived})
    assert rekey_all(db) == 2
    # then both open with the new key alone
    alone = settings.model_copy(update={"credentials_key": new_key})
    assert setup.integration.secrets_encrypted != old[0] and account.secrets_encrypted != old[1]
    assert (
        decrypt_credentials(setup.integration.secrets_encrypted, alone)["contact_secret"] == setup.corp.contact_secret
    )
    assert decrypt_credentials(account.secrets_encrypted, alone) == {"app_secret": "oa-secret"}


def test_rekey_names_an_integration_it_cannot_open(
    db: Session, clock: FrozenClock, settings: Settings, database: Database, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    database.settings = settings.model_copy(update={"credentials_key": Fernet.generate_key().decode()})
    with pytest.raises(InvalidInput) as caught:
        rekey_all(db)
    assert caught.value.details == {"field": "secrets", "integration_id": setup.integration.id}
