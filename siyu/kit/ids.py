"""Random identifiers and secret tokens."""

from __future__ import annotations

import hashlib
import secrets


def random_token(nbytes: int = 24) -> str:
    """URL-safe random text with `nbytes` of entropy."""
    return secrets.token_urlsafe(nbytes)


def sha256_hex(text: str) -> str:
    """Hex SHA-256 of `text`: how high-entropy secrets such as API tokens are stored."""
    return hashlib.sha256(text.encode()).hexdigest()
