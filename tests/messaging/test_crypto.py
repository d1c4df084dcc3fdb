"""Channel credentials at rest: sealed, never readable with another key, rotatable."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.messaging.crypto import decrypt_credentials, encrypt_credentials, rekey_all
from tests.factories import make_workspace
from tests.messaging.factories import make_account


def test_credentials_are_sealed_and_open_only_with_the_key(settings: Settings) -> None:
    token = encrypt_credentials({"secret": "corp-secret-123"}, settings)
    assert "corp-secret-123" not in token
    assert decrypt_credentials(token, settings) == {"secret": "corp-secret-123"}
    other = settings.model_copy(update={"credentials_key": Fernet.generate_key().decode()})
    with pytest.raises(InvalidInput) as caught:
        decrypt_credentials(token, other)
    assert caught.value.details == {"field": "credentials"}


def test_a_rotation_keeps_old_tokens_readable_until_rekeyed(
    db: Session, clock: FrozenClock, settings: Settings, database: Database
) -> None:
    # given an account sealed under the key derived from the secret key
    workspace = make_workspace(db, clock=clock)
    account = make_account(db, workspace=workspace, clock=clock, credentials={"password": "p@ss"})
    old_token = account.credentials_encrypted
    assert old_token is not None
    derived = base64.urlsafe_b64encode(hashlib.sha256(b"siyu-credentials:test-secret").digest()).decode()
    new_key = Fernet.generate_key().decode()
    rotated = settings.model_copy(update={"credentials_key": new_key})
    with pytest.raises(InvalidInput):
        decrypt_credentials(old_token, rotated)
    # when the new key is configured with the old one kept for decryption, and everything is rekeyed
    database.settings = settings.model_copy(update={"credentials_key": new_key, "credentials_old_keys": derived})
    assert rekey_all(db) == 1
    # then the token changed and opens with the new key alone
    assert account.credentials_encrypted != old_token
    assert decrypt_credentials(account.credentials_encrypted, rotated) == {"password": "p@ss"}
