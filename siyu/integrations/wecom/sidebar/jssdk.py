"""JS-SDK signatures for the sidebar page: `wx.config` (corp jsapi_ticket, `get_jsapi_ticket`) and
`wx.agentConfig` (the app's ticket, `ticket/get?type=agent_config`), both signed over
noncestr, jsapi_ticket, timestamp and the page URL (without its #fragment) with wechatpy's helper.

Tickets live two hours and their APIs are rate limited (WeCom: 400 a member-hour, 100 per app-hour),
so they are cached with their expiry in the same store as access tokens (`tokens.token_store`:
process memory, or Redis shared by every process).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from wechatpy.enterprise.client.api.jsapi import WeChatJSAPI

from siyu.integrations.wecom.client import WecomClient
from siyu.integrations.wecom.config import WecomConfig, client_for
from siyu.integrations.wecom.errors import WecomError
from siyu.kit.clock import Clock

EARLY_REFRESH_S = 300
REFRESH_INTERVAL_S = 60


@dataclass(frozen=True)
class JsSdkConfig:
    """What the page passes to `wx.config` and `wx.agentConfig`."""

    corp_id: str
    agent_id: str
    timestamp: int
    nonce_str: str
    signature: str
    agent_signature: str

    def as_json(self) -> dict[str, Any]:
        """The shape `static/sidebar/sidebar.js` reads."""
        return {
            "config": {
                "beta": True,
                "debug": False,
                "appId": self.corp_id,
                "timestamp": self.timestamp,
                "nonceStr": self.nonce_str,
                "signature": self.signature,
                "jsApiList": ["sendChatMessage", "getCurExternalContact"],
            },
            "agentConfig": {
                "corpid": self.corp_id,
                "agentid": self.agent_id,
                "timestamp": self.timestamp,
                "nonceStr": self.nonce_str,
                "signature": self.agent_signature,
                "jsApiList": ["sendChatMessage", "getCurExternalContact"],
            },
        }


def _ticket_key(client: WecomClient, kind: str) -> str:
    digest = hashlib.sha256(f"{client.API_BASE_URL}|{client.corp_id}|{client.secret}".encode()).hexdigest()[:24]
    return f"wecom_{digest}_{kind}_ticket"


def ticket(client: WecomClient, kind: str) -> str:
    """The corp (`kind="corp"`) or app (`kind="agent"`) jsapi_ticket, from the shared cache or WeCom."""
    key = _ticket_key(client, kind)
    cached = client.session.get(key)
    if cached:
        return str(cached)
    if kind == "agent":
        answer = client.call("GET", "ticket/get", params={"type": "agent_config"})
    else:
        answer = client.call("GET", "get_jsapi_ticket")
    value = answer.get("ticket")
    if not value:
        raise WecomError("no ticket in the answer", api="get_jsapi_ticket", reason="bad_response", retryable=True)
    expires_in = int(answer.get("expires_in") or 7200)
    client.session.set(key, value, max(expires_in - EARLY_REFRESH_S, 60))
    return str(value)


def forget_tickets(config: WecomConfig, *, clock: Clock) -> bool:
    """Drop the cached corp and app tickets (WeCom's client rejected a signature made with them), at
    most once every `REFRESH_INTERVAL_S` per corp so a broken page cannot burn the ticket quota.
    Returns whether they were dropped."""
    client = client_for(config, secret="app")
    marker = _ticket_key(client, "refreshed")
    if client.session.get(marker):
        return False
    client.session.set(marker, str(int(clock.now().timestamp())), REFRESH_INTERVAL_S)
    for kind in ("corp", "agent"):
        client.session.delete(_ticket_key(client, kind))
    return True


def sign(ticket_value: str, *, nonce_str: str, timestamp: int, url: str) -> str:
    """WeCom's JS-SDK signature of `url` (its #fragment dropped), via wechatpy."""
    page_url = url.split("#", 1)[0]
    return str(WeChatJSAPI.get_jsapi_signature(None, nonce_str, ticket_value, timestamp, page_url))


def js_sdk_config(config: WecomConfig, *, url: str, clock: Clock) -> JsSdkConfig:
    """Signatures of `url` for `wx.config` and `wx.agentConfig` (app secret; raises `WecomError`)."""
    client = client_for(config, secret="app")
    timestamp = int(clock.now().timestamp())
    nonce = secrets.token_hex(8)
    corp_ticket = ticket(client, "corp")
    agent_ticket = ticket(client, "agent")
    return JsSdkConfig(
        corp_id=config.corp_id,
        agent_id=config.agent_id or "",
        timestamp=timestamp,
        nonce_str=nonce,
        signature=sign(corp_ticket, nonce_str=nonce, timestamp=timestamp, url=url),
        agent_signature=sign(agent_ticket, nonce_str=nonce, timestamp=timestamp, url=url),
    )
