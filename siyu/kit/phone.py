"""Phone numbers: normalise to E.164 with `phonenumbers`, mask for display."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

_SEPARATORS = re.compile(r"[\s\-().·]")
# Mainland mobile numbers written the most common way ("13800138000"): phonenumbers still
# decides validity, this only spares it the region guessing on the hot import path.
_PLAIN_CN_MOBILE = re.compile(r"1[3-9]\d{9}")


class InvalidPhone(ValueError):
    """The text is not a valid phone number."""


def _clean(raw: str) -> str:
    # NFKC turns full-width digits and plus signs ("１３８", "＋") into ASCII.
    text = unicodedata.normalize("NFKC", raw).strip()
    return _SEPARATORS.sub("", text)


def normalize_phone(raw: str, *, region: str = "CN") -> str:
    """Return the E.164 form of `raw` ("+8613800138000"), or raise `InvalidPhone`.

    Accepts "+86 138-0013-8000", "8613800138000", "008613800138000" and full-width digits.
    """
    text = _clean(raw)
    if not text:
        raise InvalidPhone("empty phone number")
    if text.startswith("00"):
        text = "+" + text[2:]
    elif region == "CN" and text.startswith("86") and len(text) == 13:
        text = "+" + text
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {raw!r}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"not a valid phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str | None) -> str | None:
    """Mask the middle of a number for lists: "+8613800138000" → "138****8000"."""
    if not e164:
        return e164
    national = e164[3:] if e164.startswith("+86") else e164
    if len(national) < 8:
        return national[:2] + "*" * max(len(national) - 2, 0)
    return national[:3] + "****" + national[-4:]


def display_phone(e164: str | None) -> str | None:
    """Show a number whole, without the +86 prefix for mainland numbers."""
    if not e164:
        return e164
    return e164[3:] if e164.startswith("+86") else e164
