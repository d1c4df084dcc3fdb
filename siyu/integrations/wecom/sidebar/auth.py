"""Who is using the sidebar: WeCom OAuth (snsapi_base) → the staff member, kept in a signed cookie.

    nonce = new_nonce()                                           # also set as the NONCE_COOKIE
    url = authorize_url(config, redirect_uri=..., state=state_token(ws, nonce, ...))
    staff = staff_for_code(session, config, code)                # auth/getuserinfo → Staff by userid
    value, csrf = session_cookie_value(workspace_id, staff.id, secret=..., clock=...)
    signed = read_session_cookie(value, secret=..., clock=...)   # SidebarSession or SidebarSessionInvalid

The OAuth `state` is signed and carries a nonce that is also set as a short-lived cookie on the browser
that started the sign-in, so a `code` + `state` pair cannot be replayed in someone else's browser
(login CSRF). The session cookie holds the workspace, the staff id and a CSRF token for the sidebar's
forms, signed with the installation's secret and timed by the injected clock (`SESSION_HOURS`, short:
WeCom clients are shared devices in stores; `/sidebar` always redoes the silent OAuth anyway).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.integrations.wecom.config import WecomConfig, client_for
from siyu.integrations.wecom.errors import WecomError
from siyu.kit.clock import Clock
from siyu.kit.errors import PermissionDenied, Unauthenticated
from siyu.models import Staff

REAL_OAUTH_BASE = "https://open.weixin.qq.com"
COOKIE_NAME = "siyu_sidebar"
NONCE_COOKIE = "siyu_sidebar_nonce"
COOKIE_PATH = "/sidebar"
SESSION_HOURS = 2
STATE_MINUTES = 10
_SESSION_SALT = "siyu-wecom-sidebar-session"
_STATE_SALT = "siyu-wecom-sidebar-state"


class SidebarSessionInvalid(Unauthenticated):
    """No sidebar session, or a forged or expired one: the page starts the OAuth again."""

    code = "sidebar_session_invalid"


class UnknownStaff(PermissionDenied):
    """The WeCom member is not a (active) staff member of the workspace."""

    code = "sidebar_unknown_staff"


@dataclass(frozen=True)
class SidebarSession:
    """A signed-in staff member and the CSRF token the sidebar's forms echo."""

    workspace_id: int
    staff_id: int
    csrf: str


class _ClockSigner(TimestampSigner):
    def __init__(self, *args: Any, clock: Clock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock.now().timestamp())


def _serializer(secret: str, salt: str, clock: Clock) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=salt, signer=_ClockSigner, signer_kwargs={"clock": clock})


def session_lifetime() -> timedelta:
    """How long a sidebar session lasts after the OAuth."""
    return timedelta(hours=SESSION_HOURS)


def oauth_base(config: WecomConfig) -> str:
    """`https://open.weixin.qq.com` for a real corp; the fake server's root when `is_fake`."""
    if not config.is_fake:
        return REAL_OAUTH_BASE
    base = config.api_base_url.rstrip("/")
    return base[: -len("/cgi-bin")] if base.endswith("/cgi-bin") else base


def js_sdk_urls(config: WecomConfig) -> list[str]:
    """The scripts the page loads for `wx`: WeCom's jweixin + jwxwork, or the fake's shim."""
    if config.is_fake:
        return [oauth_base(config) + "/js/jwxwork.js"]
    return ["https://res.wx.qq.com/open/js/jweixin-1.2.0.js", "https://res.wx.qq.com/wwopen/js/jwxwork-1.0.0.js"]


def new_nonce() -> str:
    """A fresh random nonce for one OAuth round trip (cookie + signed state)."""
    return secrets.token_urlsafe(18)


def state_token(workspace_id: int, nonce: str, *, secret: str, clock: Clock) -> str:
    """The signed `state` of an OAuth round trip (binds the answer to this workspace and browser nonce)."""
    return str(_serializer(secret, _STATE_SALT, clock).dumps({"w": workspace_id, "n": nonce}))


def read_state(token: str, *, secret: str, clock: Clock, nonce: str | None) -> int:
    """The workspace of a `state` whose nonce equals the browser's nonce cookie; `SidebarSessionInvalid`
    if forged, older than `STATE_MINUTES`, or started in another browser (nonce missing or different)."""
    try:
        value = _serializer(secret, _STATE_SALT, clock).loads(token, max_age=STATE_MINUTES * 60)
    except (BadSignature, SignatureExpired) as exc:
        raise SidebarSessionInvalid("OAuth state invalid or expired") from exc
    workspace_id = value.get("w") if isinstance(value, dict) else None
    if not isinstance(workspace_id, int) or isinstance(workspace_id, bool) or workspace_id <= 0:
        raise SidebarSessionInvalid("OAuth state invalid")
    signed_nonce = value.get("n")
    if not isinstance(signed_nonce, str) or not nonce or not secrets.compare_digest(signed_nonce, nonce):
        raise SidebarSessionInvalid("OAuth state was not started in this browser")
    return workspace_id


def authorize_url(config: WecomConfig, *, redirect_uri: str, state: str) -> str:
    """WeCom's OAuth page for a silent (snsapi_base) sign-in inside the WeCom client (with the app's
    `agentid` when configured, as WeCom asks for self-built apps)."""
    params = {
        "appid": config.corp_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": "snsapi_base",
        "state": state,
    }
    if config.agent_id:
        params["agentid"] = str(config.agent_id)
    query = urlencode(params)
    return f"{oauth_base(config)}/connect/oauth2/authorize?{query}#wechat_redirect"


def staff_for_code(session: Session, config: WecomConfig, code: str) -> Staff:
    """The active staff member an OAuth `code` belongs to (`auth/getuserinfo` with the app secret).

    WeCom answers `{"userid", "user_ticket"?}` for a corp member and `{"openid", "external_userid"}` for
    a non-member (older corps: `{"UserId", "DeviceId"}` / `{"OpenId"}`). Raises `WecomError` when WeCom
    refuses the code (40029: used or expired), `UnknownStaff` when the member is not an active staff
    member here or is not a corp member at all."""
    if not code:
        raise WecomError("missing code", api="auth/getuserinfo", code=40029, retryable=False)
    answer = client_for(config, secret="app").call("GET", "auth/getuserinfo", params={"code": code})
    userid = str(answer.get("userid") or answer.get("UserId") or "")
    if not userid:
        raise UnknownStaff("not a member of the corp")
    staff = session.scalar(
        select(Staff).where(Staff.workspace_id == config.workspace_id, Staff.wecom_user_id == userid)
    )
    if staff is None or not staff.is_active:
        raise UnknownStaff("this WeCom member is not an active staff member", details={"userid": userid})
    return staff


def session_cookie_value(workspace_id: int, staff_id: int, *, secret: str, clock: Clock) -> tuple[str, str]:
    """A new sidebar session's signed cookie value and its CSRF token."""
    csrf = secrets.token_urlsafe(18)
    value = _serializer(secret, _SESSION_SALT, clock).dumps({"w": workspace_id, "s": staff_id, "x": csrf})
    return str(value), csrf


def read_session_cookie(value: str | None, *, secret: str, clock: Clock) -> SidebarSession:
    """The staff member a cookie holds; `SidebarSessionInvalid` when missing, forged or expired."""
    if not value:
        raise SidebarSessionInvalid("no sidebar session")
    try:
        loaded = _serializer(secret, _SESSION_SALT, clock).loads(value, max_age=int(session_lifetime().total_seconds()))
    except (BadSignature, SignatureExpired) as exc:
        raise SidebarSessionInvalid("sidebar session invalid or expired") from exc
    if not isinstance(loaded, dict):
        raise SidebarSessionInvalid("sidebar session invalid")
    workspace_id, staff_id, csrf = loaded.get("w"), loaded.get("s"), loaded.get("x")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (workspace_id, staff_id)):
        raise SidebarSessionInvalid("sidebar session invalid")
    if not isinstance(csrf, str) or not csrf:
        raise SidebarSessionInvalid("sidebar session invalid")
    assert isinstance(workspace_id, int) and isinstance(staff_id, int)
    return SidebarSession(workspace_id=workspace_id, staff_id=staff_id, csrf=csrf)
