"""Cursor pagination: a cursor is an opaque, URL-safe encoding of the last row's sort key."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from siyu.kit.errors import InvalidInput
from siyu.kit.ids import MAX_ID

T = TypeVar("T")

MAX_PAGE_SIZE = 200


def encode_cursor(key: Any) -> str:
    raw = json.dumps(key, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    """Decode a cursor made by `encode_cursor`; a tampered one is a 422 naming `cursor`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid cursor", details={"field": "cursor"}) from exc


def decode_id_cursor(cursor: str) -> int:
    """A cursor holding a row id (as made by `encode_cursor(row.id)`); 422 for anything else."""
    value = decode_cursor(cursor)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_ID:
        raise InvalidInput("invalid cursor", details={"field": "cursor"})
    return value


@dataclass
class Page(Generic[T]):
    """One page of results and the cursor for the next (None on the last page)."""

    items: list[T]
    next_cursor: str | None
