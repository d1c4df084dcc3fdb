"""A workspace's official-account settings with its secrets opened.

config = load_account(session, workspace_id)         # raises NotConfigured
client = client_for(config)                          # `siyu.integrations.wechat.client`
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.integrations.wecom.errors import NotConfigured
from siyu.kit.errors import DomainError
from siyu.messaging.crypto import decrypt_credentials
from siyu.models import WechatOfficialAccount

SECRET_FIELDS = ("app_secret", "callback_token", "callback_aes_key")


@dataclass(frozen=True)
class WechatConfig:
    """Everything needed to call the official account's API and read its callbacks."""

    account_id: int
    workspace_id: int
    app_id: str
    api_base_url: str
    is_fake: bool
    oauth_scope: str
    app_secret: str
    callback_token: str
    callback_aes_key: str

    def __repr__(self) -> str:  # never print a secret
        return f"WechatConfig(workspace_id={self.workspace_id}, app_id={self.app_id!r}, is_fake={self.is_fake})"

    @property
    def root_url(self) -> str:
        """The API host (`https://api.weixin.qq.com/`, or the fake's `/oa/`): `sns/*` lives here."""
        base = self.api_base_url if self.api_base_url.endswith("/") else self.api_base_url + "/"
        return base[: -len("cgi-bin/")] if base.endswith("cgi-bin/") else base

    @property
    def oauth_base_url(self) -> str:
        """Where the web-authorization page lives (`…/connect/oauth2/authorize`)."""
        return self.root_url + "connect/" if self.is_fake else "https://open.weixin.qq.com/connect/"


def config_of(account: WechatOfficialAccount) -> WechatConfig:
    """Open an account's secrets (`NotConfigured` when they cannot be read)."""
    try:
        secrets = decrypt_credentials(account.secrets_encrypted)
    except DomainError as exc:
        raise NotConfigured(str(exc)) from exc
    return WechatConfig(
        account_id=account.id,
        workspace_id=account.workspace_id,
        app_id=account.app_id,
        api_base_url=account.api_base_url,
        is_fake=account.is_fake,
        oauth_scope=account.oauth_scope,
        **{name: str(secrets.get(name) or "") for name in SECRET_FIELDS},
    )


def get_account(session: Session, workspace_id: int) -> WechatOfficialAccount | None:
    """The workspace's official account row (active or not), or None."""
    return session.scalar(select(WechatOfficialAccount).where(WechatOfficialAccount.workspace_id == workspace_id))


def load_account(session: Session, workspace_id: int) -> WechatConfig:
    """The workspace's active official account; raises `NotConfigured` when there is none."""
    account = get_account(session, workspace_id)
    if account is None or not account.is_active:
        raise NotConfigured("the official account is not configured for this workspace")
    return config_of(account)
