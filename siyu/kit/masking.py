"""Mask personal data and secrets in text and structured values before they are logged.

PIPL treats phone numbers, e-mail addresses and platform ids (openid, unionid, WeCom's
external_userid) as personal information, and a log line outlives the consent it was collected
under; secrets in a log line are a credential leak. So logs keep only enough to tell two values
apart: a phone keeps its first three and last four digits (138****1234), an e-mail its first
letter and domain (a***@example.com), a platform id its first four characters (wmAB***), and a
secret nothing at all (***).

Every mask is idempotent: masking masked text changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

# Key names whose values are secrets wherever they appear (extra fields, key=value text, JSON).
_SECRET_KEY = (
    r"(?:access_token|refresh_token|corpsecret|corp_secret|client_secret|app_secret|api_key|apikey"
    r"|password|passwd|secret|token|authorization|cookie|encoding_aes_key|aes_key|signature)"
)
_SECRET_KEY_NAME = re.compile(
    r"secret|token|password|passwd|authorization|cookie|api_?key|credential|signature|aes_key", re.IGNORECASE
)
_ID_KEY_NAME = re.compile(r"openid|unionid|external_?userid|from_?user_?name|to_?user_?name", re.IGNORECASE)
_PHONE_KEY_NAME = re.compile(r"phone|mobile|tel$", re.IGNORECASE)
_EMAIL_KEY_NAME = re.compile(r"e_?mail", re.IGNORECASE)

# A value: a double-quoted string (escapes allowed), a single-quoted one, or a bare word.
_VALUE = r"""(?:"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s&,;}]+)"""
# A header's value runs to the end of the line (a Cookie header carries several `;`-separated
# cookies, some quoted), unless the whole value is one quoted string.
_AUTH_HEADER = re.compile(
    r"""(?i)\b(authorization|set-cookie|cookie|x-csrf-token)(\s*[:=]\s*)(?:("(?:[^"\\]|\\.)*"|'[^']*')|[^\r\n]+)"""
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]+")
_KEY_VALUE = re.compile(rf"(?i)(?<![A-Za-z0-9])(['\"]?)({_SECRET_KEY})\1(\s*[:=]\s*)({_VALUE})")
# Query parameters that carry a credential: the member link token `t`, OAuth `code`, `sign`.
_QUERY_SECRET = re.compile(r"(?i)([?&](?:t|code|sign|sig|ticket)=)(?!\*\*\*)[^&\s'\"#]+")
_UNSUBSCRIBE_PATH = re.compile(r"(/u/)(?!\*\*\*)[^/?#\s'\"]+")
_SIYU_TOKEN = re.compile(r"\bsiyu_[A-Za-z0-9_-]{12,}")
_EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})")
# Mainland mobiles (with or without +86/86) and other E.164 numbers; never a run of digits inside a
# longer number or an order number such as TB13800001234. Mainland mobiles may be grouped 3-4-4 by
# spaces or hyphens (138 0000 1234, +86-138-0000-1234), the same separator throughout.
_PHONE = re.compile(r"(?<![0-9A-Za-z*])(\+?(?:86[ -]?)?1[3-9]\d([ -]?)\d{4}\2\d{4}|\+[1-9]\d{7,14})(?![0-9A-Za-z*])")
# WeCom external_userid (wm…/wo…) and WeChat openid/unionid (o… , 28 characters).
# Real ids mix upper case and digits, which keeps words such as "workspace_settings" readable.
_MIXED = r"(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[0-9])"
_PLATFORM_ID = re.compile(
    rf"(?<![A-Za-z0-9_-])((?:wm|wo)[A-Za-z0-9_-]{{2}}){_MIXED}[A-Za-z0-9_-]{{16,}}(?![A-Za-z0-9_-])"
)
_OPENID = re.compile(rf"(?<![A-Za-z0-9_-])(o[A-Za-z0-9_-]{{3}}){_MIXED}[A-Za-z0-9_-]{{24}}(?![A-Za-z0-9_-])")


def mask_phone(value: str) -> str:
    """138****1234: the first digits and the last four of a phone number (separators dropped)."""
    digits = value.strip().replace(" ", "").replace("-", "")
    if len(digits) < 8:
        return MASK
    return digits[:-8] + "****" + digits[-4:]


def mask_email(value: str) -> str:
    """a***@example.com."""
    local, at, domain = value.strip().partition("@")
    if not at or not local:
        return MASK
    return f"{local[0]}***@{domain}"


def mask_platform_id(value: str) -> str:
    """wmAB***: enough to tell ids apart in a log, not enough to address the person."""
    return value[:4] + MASK if len(value) > 4 else MASK


# Cheap tests that skip a pass when its pattern cannot match: most log lines ("request", an access
# line) hold no secret name, and running every pass costs tens of microseconds a line.
_MAY_HAVE_PHONE = re.compile(r"[0-9]{3}[ -]?[0-9]{4}")
_MAY_HAVE_ID = re.compile(r"[A-Za-z0-9_-]{20}")


def _mentions_header(lowered: str) -> bool:
    return "authorization" in lowered or "cookie" in lowered or "x-csrf-token" in lowered


def _mentions_secret(lowered: str) -> bool:
    # Every name in `_SECRET_KEY` contains one of these; an `or` chain beats a loop or a regex here.
    return (
        "token" in lowered
        or "secret" in lowered
        or "passw" in lowered
        or "key" in lowered
        or "signature" in lowered
        or "authorization" in lowered
        or "cookie" in lowered
    )


def _quoted_mask(value: str) -> str:
    quote = value[0] if value[:1] in ("'", '"') and len(value) > 1 and value[-1] == value[0] else ""
    return f"{quote}{MASK}{quote}"


def mask_text(text: str) -> str:
    """`text` with secrets, phone numbers, e-mails and platform ids masked."""
    if not text:
        return text
    lowered = text.lower()
    separated = ":" in text or "=" in text
    if separated and _mentions_header(lowered):
        text = _AUTH_HEADER.sub(lambda m: m.group(1) + m.group(2) + _quoted_mask(m.group(3) or ""), text)
    if "bearer" in lowered or "basic" in lowered:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    if separated and _mentions_secret(lowered):
        text = _KEY_VALUE.sub(
            lambda m: m.group(1) + m.group(2) + m.group(1) + m.group(3) + _quoted_mask(m.group(4)), text
        )
    if "=" in text:
        text = _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, text)
    if "/u/" in text:
        text = _UNSUBSCRIBE_PATH.sub(lambda m: m.group(1) + MASK, text)
    if "siyu_" in text:
        text = _SIYU_TOKEN.sub("siyu_" + MASK, text)
    if "@" in text:
        text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    if _MAY_HAVE_PHONE.search(text):
        text = _PHONE.sub(lambda m: mask_phone(m.group(1)), text)
    if _MAY_HAVE_ID.search(text):
        text = _PLATFORM_ID.sub(lambda m: m.group(1) + MASK, text)
        text = _OPENID.sub(lambda m: m.group(1) + MASK, text)
    return text


# Numbers under these names are counts, ids, durations: `token_id=7`, `phone_count=3` stay readable.
_NUMERIC_KEY_NAME = re.compile(r"(?:_id|_ids|_count|_len|_length|_ttl|_s|_ms|_at|expires_in)$", re.IGNORECASE)


def mask_value(key: str, value: Any) -> Any:
    """A structured log field masked by its name (`password`, `phone`, `openid`…) and its content."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, int | float) and not isinstance(value, bool):
        # `phone=13800001234` and `pin=123456` are as personal or secret as their string forms.
        if not key or _NUMERIC_KEY_NAME.search(key):
            return value
        if _SECRET_KEY_NAME.search(key):
            return MASK
        if _PHONE_KEY_NAME.search(key):
            return mask_phone(str(int(value)) if isinstance(value, float) and value.is_integer() else str(value))
        return value
    if isinstance(value, str):
        if _SECRET_KEY_NAME.search(key):
            return MASK
        if _ID_KEY_NAME.search(key):
            return mask_platform_id(value)
        if _PHONE_KEY_NAME.search(key):
            return mask_phone(value)
        if _EMAIL_KEY_NAME.search(key) and "@" in value:
            return mask_email(value)
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_value(key, v) for v in value]
    return value
