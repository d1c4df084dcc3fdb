"""Anonymous visitors of public pages (live code scans, short link clicks).

A visitor carries a random cookie; siyu stores only its hash, and the client IP only as a salted
hash, so scans and clicks can be counted per person without keeping who they are.
"""

from __future__ import annotations

import hashlib
import secrets

from fastapi import Request
from starlette.responses import Response

from siyu.kit.ids import sha256_hex

VISITOR_COOKIE = "siyu_vid"
VISITOR_MAX_AGE = 400 * 24 * 3600  # the longest lifetime browsers keep a cookie


def visitor_cookie(request: Request) -> tuple[str, bool]:
    """The visitor's raw cookie value and whether it was just made (then call `remember_visitor`)."""
    raw = request.cookies.get(VISITOR_COOKIE, "")
    if 16 <= len(raw) <= 64 and raw.isascii() and raw.replace("-", "").replace("_", "").isalnum():
        return raw, False
    return secrets.token_urlsafe(18), True


def visitor_id(raw_cookie: str) -> str:
    """The stored visitor key: a hash of the cookie value (32 hex characters)."""
    return sha256_hex(raw_cookie)[:32]


def remember_visitor(response: Response, raw_cookie: str) -> None:
    response.set_cookie(VISITOR_COOKIE, raw_cookie, max_age=VISITOR_MAX_AGE, httponly=True, samesite="lax")


def client_ip_hash(request: Request, *, salt: str) -> str | None:
    """SHA-256 of a per-installation salt and the client address; None when there is no address."""
    host = request.client.host if request.client else None
    if not host:
        return None
    return hashlib.sha256(f"{salt}:{host}".encode()).hexdigest()


def short_user_agent(request: Request) -> str | None:
    agent = request.headers.get("user-agent")
    return agent[:300] if agent else None
