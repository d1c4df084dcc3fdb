"""Channel credentials encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from `SIYU_CREDENTIALS_KEY` (a Fernet key) or, when unset, is derived from the
installation's secret key, so a copied database alone does not reveal a provider password.
Rotating: set the new key in `SIYU_CREDENTIALS_KEY` and keep the old one first in
`SIYU_CREDENTIALS_OLD_KEYS` (comma-separated) until `siyu touch rekey` has re-encrypted.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.config import Settings
from siyu.db import get_database
from siyu.kit.errors import InvalidInput
from siyu.models import ChannelAccount, WechatOfficialAccount, WecomIntegration


def _fernet(settings: Settings) -> MultiFernet:
    # The process's settings are those of its database (tests and `create_app(settings)` set it).
    keys: list[bytes] = []
    if settings.credentials_key:
        keys.append(settings.credentials_key.encode())
    else:
        digest = hashlib.sha256(b"siyu-credentials:" + settings.session_secret().encode()).digest()
        keys.append(base64.urlsafe_b64encode(digest))
    keys += [k.strip().encode() for k in (settings.credentials_old_keys or "").split(",") if k.strip()]
    return MultiFernet([Fernet(k) for k in keys])


def encrypt_credentials(values: dict[str, Any], settings: Settings | None = None) -> str:
    """Seal a dict of secrets into one token for `ChannelAccount.credentials_encrypted`."""
    return _fernet(settings or get_database().settings).encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def decrypt_credentials(token: str | None, settings: Settings | None = None) -> dict[str, Any]:
    """Open a sealed token; a token sealed with an unknown key is a clear error, not a crash."""
    if not token:
        return {}
    try:
        data = _fernet(settings or get_database().settings).decrypt(token.encode())
    except InvalidToken as exc:
        raise InvalidInput(
            "channel credentials cannot be decrypted with the configured key (SIYU_CREDENTIALS_KEY changed?)",
            details={"field": "credentials"},
        ) from exc
    value = json.loads(data)
    return value if isinstance(value, dict) else {}


def rotate(token: str, settings: Settings | None = None) -> str:
    """Re-encrypt a token under the current (first) key."""
    return _fernet(settings or get_database().settings).rotate(token.encode()).decode()


def rekey_all(session: Session) -> int:
    """Re-encrypt every sealed secret under the current key (after a rotation: new key in
    `SIYU_CREDENTIALS_KEY`, old one in `SIYU_CREDENTIALS_OLD_KEYS`): channel accounts' credentials and
    the WeCom and official-account integrations' secrets. Returns how many rows were re-encrypted."""
    count = 0
    rows = session.scalars(
        select(ChannelAccount).where(ChannelAccount.credentials_encrypted.is_not(None)).with_for_update()
    ).all()
    for account in rows:
        assert account.credentials_encrypted is not None
        try:
            account.credentials_encrypted = rotate(account.credentials_encrypted)
        except InvalidToken as exc:
            raise InvalidInput(
                f"credentials of channel account {account.id} cannot be decrypted with any configured key",
                details={"field": "credentials", "channel_account_id": account.id},
            ) from exc
        count += 1
    sealed: list[WecomIntegration | WechatOfficialAccount] = [
        *session.scalars(
            select(WecomIntegration).where(WecomIntegration.secrets_encrypted.is_not(None)).with_for_update()
        ),
        *session.scalars(
            select(WechatOfficialAccount).where(WechatOfficialAccount.secrets_encrypted.is_not(None)).with_for_update()
        ),
    ]
    for row in sealed:
        if row.secrets_encrypted is None:
            continue
        try:
            row.secrets_encrypted = rotate(row.secrets_encrypted)
        except InvalidToken as exc:
            label = "WeCom integration" if isinstance(row, WecomIntegration) else "official account"
            raise InvalidInput(
                f"secrets of {label} {row.id} cannot be decrypted with any configured key",
                details={"field": "secrets", "integration_id": row.id},
            ) from exc
        count += 1
    return count
