"""A workspace's WeCom settings with its secrets opened, and clients built from them.

config = load_config(session, workspace_id)          # raises NotConfigured
client = client_for(config, secret="contact")        # 客户联系 secret: externalcontact/*
client = client_for(config, secret="app")            # self-built app: JS-SDK, OAuth, agent
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import get_database
from siyu.integrations.wecom.client import WecomClient, build_client
from siyu.integrations.wecom.errors import NotConfigured
from siyu.kit.errors import DomainError
from siyu.messaging.crypto import decrypt_credentials
from siyu.models import WecomIntegration

SECRET_FIELDS = ("contact_secret", "app_secret", "callback_token", "callback_aes_key")


@dataclass(frozen=True)
class WecomConfig:
    """Everything needed to call WeCom and read its callbacks for one workspace."""

    integration_id: int
    workspace_id: int
    corp_id: str
    agent_id: str | None
    api_base_url: str
    is_fake: bool
    contact_secret: str
    app_secret: str
    callback_token: str
    callback_aes_key: str

    def __repr__(self) -> str:  # never print a secret
        return f"WecomConfig(workspace_id={self.workspace_id}, corp_id={self.corp_id!r}, is_fake={self.is_fake})"


def config_of(integration: WecomIntegration) -> WecomConfig:
    try:
        secrets = decrypt_credentials(integration.secrets_encrypted)
    except DomainError as exc:
        raise NotConfigured(str(exc)) from exc
    return WecomConfig(
        integration_id=integration.id,
        workspace_id=integration.workspace_id,
        corp_id=integration.corp_id,
        agent_id=integration.agent_id,
        api_base_url=integration.api_base_url,
        is_fake=integration.is_fake,
        **{name: str(secrets.get(name) or "") for name in SECRET_FIELDS},
    )


def get_integration(session: Session, workspace_id: int) -> WecomIntegration | None:
    return session.scalar(select(WecomIntegration).where(WecomIntegration.workspace_id == workspace_id))


def load_config(session: Session, workspace_id: int) -> WecomConfig:
    """The workspace's active WeCom configuration; raises `NotConfigured` when there is none."""
    integration = get_integration(session, workspace_id)
    if integration is None or not integration.is_active:
        raise NotConfigured("WeCom is not configured for this workspace")
    return config_of(integration)


def client_for(config: WecomConfig, *, secret: Literal["contact", "app"] = "contact") -> WecomClient:
    """A client authenticated with the customer-contact secret or the self-built app's secret."""
    value = config.contact_secret if secret == "contact" else config.app_secret
    if not value:
        raise NotConfigured(f"the {secret} secret is not set")
    settings = get_database().settings
    return build_client(config.corp_id, value, base_url=config.api_base_url, broker_url=settings.broker_url)
