"""Saving the official account's settings (secrets sealed, never shown back) and its connection test.

A blank secret on save keeps the saved one. With `use_fake`, the account talks to the fake server
mounted at `/fake-wecom` (API under `/fake-wecom/oa/cgi-bin/`) and is registered there with
siyu's callback URL.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.config import Settings
from siyu.integrations.wechat.client import client_for
from siyu.integrations.wechat.config import SECRET_FIELDS, WechatConfig, config_of, get_account
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.messaging.crypto import decrypt_credentials, encrypt_credentials
from siyu.models import WechatOfficialAccount
from siyu.models.integration import DEFAULT_WECHAT_API

if TYPE_CHECKING:
    from siyu.integrations.wecom.fake.state import FakeWecom

APP_ID = re.compile(r"^wx[0-9a-zA-Z]{6,30}$")
TOKEN = re.compile(r"^[A-Za-z0-9]{3,32}$")
FAKE_PREFIX = "/fake-wecom"


@dataclass
class AccountIn:
    """The settings form: blank secrets keep the saved ones."""

    app_id: str = ""
    app_secret: str = ""
    callback_token: str = ""
    callback_aes_key: str = ""
    oauth_scope: str = "snsapi_base"
    use_fake: bool = False
    is_active: bool = True


def callback_url(settings: Settings, workspace_id: int) -> str:
    """The URL to paste into the official account's server settings (服务器配置)."""
    return f"{settings.public_url.rstrip('/')}/integrations/wechat/callback?ws={workspace_id}"


def fake_api_base_url(settings: Settings) -> str:
    return f"{settings.public_url.rstrip('/')}{FAKE_PREFIX}/oa/cgi-bin/"


def valid_aes_key(value: str) -> bool:
    """EncodingAESKey: 43 characters of base64 (32 bytes)."""
    if len(value) != 43:
        return False
    try:
        return len(base64.b64decode(value + "=", validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def save_account(
    session: Session, *, actor: Actor, data: AccountIn, settings: Settings, clock: Clock
) -> WechatOfficialAccount:
    """Create or update the workspace's official account (`integrations:manage`); 400 names the field."""
    actor.require(Scope.INTEGRATIONS_MANAGE)
    account = get_account(session, actor.workspace_id)
    saved: dict[str, Any] = (
        decrypt_credentials(account.secrets_encrypted) if account and account.secrets_encrypted else {}
    )
    app_id = data.app_id.strip()
    if not app_id and data.use_fake:
        app_id = account.app_id if account else "wxfake" + secrets.token_hex(6)
    if not APP_ID.match(app_id):
        raise InvalidInput("app_id: wx followed by 6-30 letters or digits", details={"field": "app_id"})
    if data.oauth_scope not in ("snsapi_base", "snsapi_userinfo"):
        raise InvalidInput("oauth_scope: snsapi_base or snsapi_userinfo", details={"field": "oauth_scope"})
    merged = {name: (getattr(data, name).strip() or str(saved.get(name) or "")) for name in SECRET_FIELDS}
    if data.use_fake:
        merged["app_secret"] = merged["app_secret"] or secrets.token_hex(16)
        merged["callback_token"] = merged["callback_token"] or secrets.token_hex(8)
    if not merged["app_secret"]:
        raise InvalidInput("app_secret is required", details={"field": "app_secret"})
    if not TOKEN.match(merged["callback_token"]):
        raise InvalidInput("callback_token: 3-32 letters or digits", details={"field": "callback_token"})
    if merged["callback_aes_key"] and not valid_aes_key(merged["callback_aes_key"]):
        raise InvalidInput("callback_aes_key: 43 characters of base64", details={"field": "callback_aes_key"})
    now = clock.now()
    before = None
    if account is None:
        account = WechatOfficialAccount(workspace_id=actor.workspace_id, created_at=now)
        session.add(account)
    else:
        before = {"app_id": account.app_id, "is_fake": account.is_fake, "is_active": account.is_active}
    account.app_id = app_id
    account.secrets_encrypted = encrypt_credentials(merged)
    account.is_fake = data.use_fake
    account.api_base_url = fake_api_base_url(settings) if data.use_fake else DEFAULT_WECHAT_API
    account.oauth_scope = data.oauth_scope
    account.is_active = data.is_active
    account.updated_at = now
    session.flush()
    if data.use_fake:
        register_fake_account(account, settings)
    record(
        session,
        actor,
        action="update" if before else "create",
        entity_type="wechat_official_account",
        entity_id=account.id,
        before=before,
        after={"app_id": account.app_id, "is_fake": account.is_fake, "is_active": account.is_active},
        clock=clock,
    )
    return account


def register_fake_account(account: WechatOfficialAccount, settings: Settings, fake: FakeWecom | None = None) -> bool:
    """Create or update the account on `fake` (default: the mounted fake server; False when none)."""
    from siyu.integrations.wecom.fake.mount import mounted_fake
    from siyu.integrations.wecom.fake.official import add_account

    fake = fake if fake is not None else mounted_fake()
    if fake is None:
        return False
    config = config_of(account)
    existing = fake.accounts.get(account.app_id)
    if existing is None:
        add_account(
            fake,
            account.app_id,
            secret=config.app_secret,
            token=config.callback_token,
            aes_key=config.callback_aes_key,
            callback_url=callback_url(settings, account.workspace_id),
        )
    else:
        with fake.lock:
            existing.update(
                secret=config.app_secret,
                token=config.callback_token,
                aes_key=config.callback_aes_key,
                callback_url=callback_url(settings, account.workspace_id),
            )
    return True


def test_connection(session: Session, config: WechatConfig, clock: Clock) -> str | None:
    """Fetch a token and the follower count (`user/get`-less: `token` alone proves the secret);
    None when it works, else the error text (also recorded on the account)."""
    from siyu.integrations.wechat.callbacks import note_error

    try:
        client_for(config)._token(fresh=True)
    except (WecomError, NotConfigured) as exc:
        note_error(session, config, exc, clock)
        return str(exc)
    return None


def ensure_fake_account(
    session: Session, *, workspace_id: int, settings: Settings, clock: Clock, fake: FakeWecom
) -> WechatOfficialAccount:
    """The demo's official account: the workspace's account on the fake (created with generated
    secrets when there is none; an existing fake one is registered on `fake` again)."""
    account = get_account(session, workspace_id)
    if account is None or not account.is_fake:
        actor = Actor.system(workspace_id, label="siyu demo")
        account = save_account(session, actor=actor, data=AccountIn(use_fake=True), settings=settings, clock=clock)
    register_fake_account(account, settings, fake)
    return account
