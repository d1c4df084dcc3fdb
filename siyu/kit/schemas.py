"""The base of every API request shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator


def find_nul(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string holding a NUL character, if any."""
    if isinstance(value, str):
        return path or "body" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            key_path = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return key_path
            if (found := find_nul(item, key_path)) is not None:
                return found
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if (found := find_nul(item, f"{path}.{index}" if path else str(index))) is not None:
                return found
    return None


class Input(BaseModel):
    """Request bodies: text may not contain NUL characters, which PostgreSQL cannot store."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if (path := find_nul(data)) is not None:
            raise ValueError(f"{path} contains a NUL character")
        return data
