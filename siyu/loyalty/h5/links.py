"""Signed links to a member's H5 center, and the member session they open.

A link carries the workspace id, the customer id and a purpose (which page it lands on), signed
with the installation's secret and timed: it works for `member_link_days` (default 30) days from
issue. Opening it sets a signed, HttpOnly, SameSite=Lax cookie holding the same member and a CSRF
token for the session's forms; the cookie lasts as long as a link does.

Times come from the injected clock (not the process's `time.time()`), so expiry is testable.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from siyu.config import Settings
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput, NotFound

_LINK_SALT = "siyu-member-link"
_SESSION_SALT = "siyu-member-session"
DEFAULT_LINK_DAYS = 30
COOKIE_NAME = "siyu_member"
COOKIE_PATH = "/m"

PURPOSES: dict[str, str] = {
    "home": "/m/",
    "points": "/m/points",
    "check_in": "/m/check-in",
    "tasks": "/m/tasks",
    "rewards": "/m/rewards",
    "redemptions": "/m/redemptions",
    "coupons": "/m/coupons",
    "referral": "/m/referral",
    "commission": "/m/commission",
    "groups": "/m/groups",
    "resources": "/m/resources",
    "challenges": "/m/challenges",
    "feed": "/m/feed",
    "lottery": "/m/lottery",
    "koc": "/m/koc",
}
"""What a link is for → the page it lands on after signing the member in."""


class MemberLinkInvalid(NotFound):
    """A forged, damaged or foreign link or session."""

    code = "member_link_invalid"


class MemberLinkExpired(NotFound):
    """A genuine link older than its validity."""

    code = "member_link_expired"
    status_code = 410


@dataclass(frozen=True)
class MemberIdentity:
    """Who a link or session says the visitor is."""

    workspace_id: int
    customer_id: int
    purpose: str = "home"


@dataclass(frozen=True)
class MemberSession:
    """A signed-in member: who, and the CSRF token their forms must echo."""

    workspace_id: int
    customer_id: int
    csrf: str


class _ClockSigner(TimestampSigner):
    """A timestamp signer reading the injected clock instead of the process's."""

    def __init__(self, *args: Any, clock: Clock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock.now().timestamp())


def _serializer(secret: str, salt: str, clock: Clock) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=salt, signer=_ClockSigner, signer_kwargs={"clock": clock})


def link_days(settings: Settings) -> int:
    """How long links (and the sessions they open) stay valid, in days."""
    return int(getattr(settings, "member_link_days", DEFAULT_LINK_DAYS))


def link_lifetime(settings: Settings) -> timedelta:
    return timedelta(days=link_days(settings))


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def member_link_token(*, workspace_id: int, customer_id: int, secret: str, clock: Clock, purpose: str = "home") -> str:
    """The signed token of a member link (what goes after `/m/enter?t=`)."""
    if purpose not in PURPOSES:
        raise InvalidInput(
            f"unknown link purpose {purpose!r}; one of {', '.join(PURPOSES)}", details={"field": "purpose"}
        )
    payload: dict[str, Any] = {"w": workspace_id, "c": customer_id}
    if purpose != "home":
        payload["p"] = purpose
    return str(_serializer(secret, _LINK_SALT, clock).dumps(payload))


def member_link_url(
    *, workspace_id: int, customer_id: int, settings: Settings, clock: Clock, purpose: str = "home"
) -> str:
    """The whole link, starting with the installation's public address."""
    token = member_link_token(
        workspace_id=workspace_id,
        customer_id=customer_id,
        secret=settings.session_secret(),
        clock=clock,
        purpose=purpose,
    )
    return f"{settings.public_url.rstrip('/')}/m/enter?{urlencode({'t': token})}"


def _load(token: str, *, secret: str, salt: str, clock: Clock, max_age: timedelta) -> dict[str, Any]:
    try:
        value = _serializer(secret, salt, clock).loads(token, max_age=int(max_age.total_seconds()))
    except SignatureExpired as exc:
        raise MemberLinkExpired("this member link has expired") from exc
    except BadSignature as exc:
        raise MemberLinkInvalid("unknown member link") from exc
    if not isinstance(value, dict) or not _positive_int(value.get("w")) or not _positive_int(value.get("c")):
        raise MemberLinkInvalid("unknown member link")
    return value


def read_link_token(token: str, *, secret: str, clock: Clock, max_age: timedelta) -> MemberIdentity:
    """The member a link names; `MemberLinkExpired` (410) past its age, `MemberLinkInvalid` (404) if forged."""
    value = _load(token, secret=secret, salt=_LINK_SALT, clock=clock, max_age=max_age)
    purpose = value.get("p", "home")
    if purpose not in PURPOSES:
        raise MemberLinkInvalid("unknown member link")
    return MemberIdentity(workspace_id=value["w"], customer_id=value["c"], purpose=purpose)


def session_cookie_value(*, workspace_id: int, customer_id: int, secret: str, clock: Clock) -> tuple[str, str]:
    """A new member session's signed cookie value and its CSRF token."""
    csrf = secrets.token_urlsafe(18)
    value = _serializer(secret, _SESSION_SALT, clock).dumps({"w": workspace_id, "c": customer_id, "x": csrf})
    return str(value), csrf


def read_session_cookie(value: str, *, secret: str, clock: Clock, max_age: timedelta) -> MemberSession:
    """The member a session cookie holds; `MemberLinkExpired` / `MemberLinkInvalid` otherwise."""
    loaded = _load(value, secret=secret, salt=_SESSION_SALT, clock=clock, max_age=max_age)
    csrf = loaded.get("x")
    if not isinstance(csrf, str) or not csrf:
        raise MemberLinkInvalid("unknown member session")
    return MemberSession(workspace_id=loaded["w"], customer_id=loaded["c"], csrf=csrf)
