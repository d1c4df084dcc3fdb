"""Web OAuth (网页授权) of the official account for the member H5.

`/h5/wechat/login?ws=<id>&to=<purpose>` → WeChat's authorize page (snsapi_base: silent, openid
only; snsapi_userinfo: asks, gives nickname and unionid) → `/h5/wechat/oauth?code=&state=` →
`sns/oauth2/access_token` (+ `sns/userinfo`) → the customer holding the openid ("<appid>:<openid>")
or, failing that, the unionid; an unknown follower becomes a customer with those identities →
the member H5 session cookie (`siyu.loyalty.h5.links.session_cookie_value`, as `/m/enter` does).
wechatpy's `WeChatOAuth` builds the URL and makes the calls (its base URLs point at the fake when
the account is fake).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session
from wechatpy.exceptions import WeChatException
from wechatpy.oauth import WeChatOAuth

from siyu.auth.permissions import Actor
from siyu.customers.service.profile import ProfileInput, ingest_customer
from siyu.integrations.wechat.config import WechatConfig
from siyu.integrations.wecom.client import redact
from siyu.integrations.wecom.errors import WecomError
from siyu.kit.clock import Clock
from siyu.models import Customer, IdentityType

STATE_SALT = "siyu.wechat.oauth"
STATE_MAX_AGE = timedelta(minutes=10)
HTTP_TIMEOUT_S = 5.0
_STATE = re.compile(r"^([0-9]{1,12})Z([0-9a-f]{0,40})Z([0-9]{1,12})Z([0-9a-f]{16})Z([0-9a-f]{32})$")


class OAuthFailed(Exception):
    """The authorization came back unusable (bad state, used code, WeChat error)."""


@dataclass(frozen=True)
class OAuthUser:
    openid: str
    unionid: str | None
    nickname: str | None


class _TimedOAuth(WeChatOAuth):
    """wechatpy's helper sends without a timeout: a hung WeChat would hold the request for ever."""

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", HTTP_TIMEOUT_S)
        return super()._request(method, url_or_endpoint, **kwargs)


def oauth_client(config: WechatConfig, redirect_uri: str, state: str = "") -> WeChatOAuth:
    """wechatpy's OAuth helper pointed at the account's hosts (with a timeout)."""
    oauth = _TimedOAuth(config.app_id, config.app_secret, redirect_uri, scope=config.oauth_scope, state=state)
    oauth.API_BASE_URL = config.root_url
    oauth.OAUTH_BASE_URL = config.oauth_base_url
    return oauth


def browser_binding(nonce: str) -> str:
    """What the state carries of the login cookie's nonce (the cookie itself stays in the browser)."""
    return hashlib.sha256(nonce.encode()).hexdigest()[:16]


def _mac(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), f"{STATE_SALT}|{payload}".encode(), hashlib.sha256).hexdigest()[:32]


def sign_state(secret: str, workspace_id: int, purpose: str, *, nonce: str, issued_at: int) -> str:
    """The `state` carried through WeChat: brand, page, issue time and the browser binding, with an
    HMAC; only [0-9a-fZ] and under 128 bytes (WeChat's limit for `state`)."""
    payload = f"{workspace_id}Z{purpose.encode().hex()}Z{issued_at}Z{browser_binding(nonce)}"
    return f"{payload}Z{_mac(secret, payload)}"


def read_state(secret: str, state: str, *, nonce: str | None, now: int) -> tuple[int, str]:
    """(workspace id, purpose) of a state this browser started (its login cookie's `nonce`);
    `OAuthFailed` when forged, stale or started in another browser (login CSRF)."""
    match = _STATE.match(state or "")
    if match is None:
        raise OAuthFailed("bad or expired state")
    workspace, purpose_hex, issued, binding, mac = match.groups()
    if not hmac.compare_digest(_mac(secret, state[: -len(mac) - 1]), mac):
        raise OAuthFailed("bad or expired state")
    if not 0 <= now - int(issued) <= STATE_MAX_AGE.total_seconds():
        raise OAuthFailed("bad or expired state")
    if not nonce or not hmac.compare_digest(browser_binding(nonce), binding):
        raise OAuthFailed("this login was started in another browser: please start again")
    try:
        purpose = bytes.fromhex(purpose_hex).decode()
    except ValueError:
        raise OAuthFailed("bad state") from None
    return int(workspace), purpose or "home"


def authorize_url(config: WechatConfig, redirect_uri: str, state: str) -> str:
    """WeChat's authorize URL (ends with `#wechat_redirect`)."""
    return str(oauth_client(config, redirect_uri, state).authorize_url)


def exchange(config: WechatConfig, redirect_uri: str, code: str) -> OAuthUser:
    """Trade the code for the user's openid (and, with snsapi_userinfo, nickname and unionid)."""
    oauth = oauth_client(config, redirect_uri)
    try:
        token = oauth.fetch_access_token(code)
        info: dict[str, Any] = {}
        if token.get("scope") == "snsapi_userinfo":
            info = oauth.get_user_info(token["openid"], token["access_token"])
    except WeChatException as exc:
        raise WecomError(
            redact(str(exc.errmsg or exc.errcode))[:300],
            api="sns/oauth2",
            code=int(exc.errcode) if exc.errcode is not None else None,
            retryable=False,
        ) from None
    except Exception as exc:  # transport failures: the member may try again
        raise WecomError(redact(str(exc))[:300], api="sns/oauth2", reason="connection_error", retryable=True) from None
    return OAuthUser(
        openid=str(token["openid"]),
        unionid=str(token.get("unionid") or info.get("unionid") or "") or None,
        nickname=str(info.get("nickname") or "") or None,
    )


def member_for(session: Session, config: WechatConfig, user: OAuthUser, clock: Clock) -> Customer:
    """The customer this WeChat user is: the one holding the openid or the unionid (both, merged,
    when they were two), created when unknown (`ingest_customer` resolves identities)."""
    openid_value = f"{config.app_id}:{user.openid}"
    identities = [(str(IdentityType.WECHAT_OPENID), openid_value)]
    if user.unionid:
        identities.append((str(IdentityType.WECHAT_UNIONID), user.unionid))
    values = {"name": user.nickname[:100]} if user.nickname else {}
    return ingest_customer(
        session,
        actor=Actor.system(config.workspace_id, label="wechat_oauth"),
        identities=identities,
        profile=ProfileInput(values=values),
        source="wechat_oauth",
        clock=clock,
    ).customer
