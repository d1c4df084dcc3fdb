"""The WeCom `state` of a live code route: at most 30 characters, decoding to code, channel, variant.

WeCom hands the `state` of the 「联系我」 code back in the add-contact callback, so everything the
add must be attributed to travels inside it: `s<code>-<channel>-<variant>`, ids in base 36
(`s1k-3-B`: live code 56, channel 3, variant "B"; an empty part means none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_STATE_LENGTH = 30  # WeCom's limit for contact_way `state`
VARIANT_KEY = re.compile(r"^[A-Za-z0-9]{1,8}$")
_STATE = re.compile(r"^s([0-9a-z]{1,8})-([0-9a-z]{0,8})-([A-Za-z0-9]{0,8})$")


@dataclass(frozen=True)
class DecodedState:
    live_code_id: int
    channel_id: int | None
    variant: str | None


def _b36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if value <= 0:
        raise ValueError("ids are positive")
    out = ""
    while value:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
    return out


def encode_state(live_code_id: int, channel_id: int | None = None, variant: str | None = None) -> str:
    """The state for a route; raises ValueError if it cannot fit WeCom's 30 characters."""
    if variant is not None and not VARIANT_KEY.match(variant):
        raise ValueError("variant keys in a live code state are 1-8 letters or digits")
    state = f"s{_b36(live_code_id)}-{_b36(channel_id) if channel_id else ''}-{variant or ''}"
    if len(state) > MAX_STATE_LENGTH or not _STATE.match(state):
        raise ValueError("live code state does not fit WeCom's 30 characters")
    return state


def decode_state(state: str | None) -> DecodedState | None:
    """The parts of a siyu state, or None for an empty or foreign state (attributed to nothing)."""
    if not state or len(state) > MAX_STATE_LENGTH:
        return None
    match = _STATE.match(state)
    if match is None:
        return None
    code, channel, variant = match.groups()
    return DecodedState(int(code, 36), int(channel, 36) if channel else None, variant or None)
