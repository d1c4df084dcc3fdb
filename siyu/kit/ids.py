"""Random identifiers and secret tokens."""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated

from pydantic import Field

MAX_ID = 2**63 - 1
"""Largest id a BIGINT column holds; larger ids in requests are rejected, not sent to the database."""


DbId = Annotated[int, Field(gt=0, le=MAX_ID)]
"""An id in a request body or query."""


def parse_id(text: str | None) -> int | None:
    """An id typed by a person ("42"), or None for anything else (only ASCII digits, within range)."""
    text = (text or "").strip()
    # 19 digits hold any id; longer text is refused before int() (which rejects >4,300 digits)
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def random_token(nbytes: int = 24) -> str:
    """URL-safe random text with `nbytes` of entropy."""
    return secrets.token_urlsafe(nbytes)


def sha256_hex(text: str) -> str:
    """Hex SHA-256 of `text`: how high-entropy secrets such as API tokens are stored."""
    return hashlib.sha256(text.encode()).hexdigest()
