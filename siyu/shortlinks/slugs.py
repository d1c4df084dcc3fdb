"""Slugs, target URLs and UTM tags: the pure rules of short links (no database)."""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from siyu.kit.errors import InvalidInput

BASE62 = string.digits + string.ascii_letters
CAMPAIGN_SLUG_LENGTH = 7
"""62^7 ≈ 3.5e12 campaign slugs: short enough to type from a package card."""
RECIPIENT_SLUG_LENGTH = 12
"""62^12 ≈ 2^71: a per-recipient slug identifies a person, so it must not be guessable."""
SLUG_PATTERN = re.compile(r"[A-Za-z0-9_-]{3,32}")
"""Every slug siyu serves (random ones are base62; custom ones may also use _ and -)."""
MAX_URL_LENGTH = 2000
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
MAX_UTM_VALUE = 100
# The characters Starlette's RedirectResponse leaves alone in a Location header: targets are
# stored already quoted with the same set, so the Location sent is exactly the stored URL.
LOCATION_SAFE = ":/%#?=@[]!$&'()*+,;"
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_CONTROL_ONLY = re.compile(r"[\x00-\x1f\x7f]")


def random_slug(length: int = CAMPAIGN_SLUG_LENGTH) -> str:
    """A random base62 slug from the operating system's CSPRNG."""
    return "".join(secrets.choice(BASE62) for _ in range(length))


def is_wellformed_slug(slug: str) -> bool:
    """Whether `slug` could be a slug at all (charset and length), before any lookup."""
    return SLUG_PATTERN.fullmatch(slug) is not None


def validate_custom_slug(slug: str) -> str:
    """A custom campaign slug: 3–32 of A–Z, a–z, 0–9, _ and -; else 422 naming `slug`."""
    if not is_wellformed_slug(slug):
        raise InvalidInput(
            "slug must be 3-32 characters of letters, digits, _ and -", details={"field": "slug", "value": slug[:40]}
        )
    return slug


def validate_target_url(url: str, *, field: str = "target_url") -> str:
    """An absolute http(s) URL of at most 2000 characters, returned in the form it is redirected to."""
    text = (url or "").strip()
    if not text:
        raise InvalidInput(f"{field} is required", details={"field": field})
    if _CONTROL.search(text):
        raise InvalidInput(f"{field} may not contain spaces or control characters", details={"field": field})
    try:
        parts = urlsplit(text)
        hostname = parts.hostname
        _ = parts.port  # raises for a port that is not a number in range
    except ValueError as exc:
        raise InvalidInput(f"{field} is not a valid URL", details={"field": field}) from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(f"{field} must start with http:// or https://", details={"field": field})
    if not hostname:
        raise InvalidInput(f"{field} needs a host name", details={"field": field})
    netloc = parts.netloc
    if not netloc.isascii():
        try:
            netloc = netloc.replace(hostname, hostname.encode("idna").decode("ascii"))
        except UnicodeError as exc:
            raise InvalidInput(f"{field} has an invalid host name", details={"field": field}) from exc
    normalised = quote(urlunsplit(parts._replace(scheme=parts.scheme.lower(), netloc=netloc)), safe=LOCATION_SAFE)
    if len(normalised) > MAX_URL_LENGTH:
        raise InvalidInput(f"{field} is longer than {MAX_URL_LENGTH} characters", details={"field": field})
    return normalised


def is_redirectable(url: Any) -> bool:
    """Whether a stored value (e.g. a variant's `content["target_url"]`) is a URL we may redirect to."""
    if not isinstance(url, str):
        return False
    try:
        validate_target_url(url)
    except InvalidInput:
        return False
    return True


def validate_utm(utm: Mapping[str, Any] | None) -> dict[str, str]:
    """UTM tags: only the five utm_* keys, text values of at most 100 characters; empty ones dropped."""
    if not utm:
        return {}
    unknown = sorted(str(k) for k in utm if k not in UTM_KEYS)
    if unknown:
        raise InvalidInput(
            f"unknown UTM tag {unknown[0]!r}; use {', '.join(UTM_KEYS)}", details={"field": f"utm.{unknown[0]}"}
        )
    tags: dict[str, str] = {}
    for key in UTM_KEYS:
        value = utm.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or len(value.strip()) > MAX_UTM_VALUE or _CONTROL_ONLY.search(value):
            raise InvalidInput(
                f"{key} must be text of at most {MAX_UTM_VALUE} characters",
                details={"field": f"utm.{key}"},
            )
        if value.strip():
            tags[key] = value.strip()
    return tags


def with_utm(url: str, utm: Mapping[str, str] | None) -> str:
    """`url` with the UTM tags appended; a parameter the URL already carries is kept as it is."""
    if not utm:
        return url
    parts = urlsplit(url)
    present = {key for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    additions = [(key, utm[key]) for key in UTM_KEYS if key in utm and key not in present]
    if not additions:
        return url
    query = parts.query + ("&" if parts.query else "") + urlencode(additions)
    return urlunsplit(parts._replace(query=query))
