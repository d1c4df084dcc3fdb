"""Phone numbers: normalise to E.164 with `phonenumbers`, mask for display."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber

_SEPARATORS = re.compile(r"[\s\-().·]")
# Mainland mobile numbers written the most common way ("13800138000"): phonenumbers still
# decides validity, this only spares it the parsing on the hot import path.
_PLAIN_CN_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_CN = PhoneMetadata.metadata_for_region("CN")
# `parse` strips a national prefix or carrier code matching this (e.g. "179xx" IP-dialling
# prefixes) before anything else; numbers it matches take the full path.
_CN_NATIONAL_PREFIX = (
    re.compile(_CN.national_prefix_for_parsing)
    if _CN is not None and _CN.national_prefix_for_parsing and not _CN.national_prefix_transform_rule
    else None
)


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
    if text.startswith("+86") or (region == "CN" and not text.startswith("+")):
        fast = _plain_cn_mobile(text.removeprefix("+86"))
        if fast is not None:
            return fast
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {raw!r}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"not a valid phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _plain_cn_mobile(national: str) -> str | None:
    """E.164 of a plain mainland mobile number, exactly as `parse` + `is_valid_number` would
    give it; None sends the number down the full path (which also words any error)."""
    if _CN_NATIONAL_PREFIX is None or not _PLAIN_CN_MOBILE.fullmatch(national) or _CN_NATIONAL_PREFIX.match(national):
        return None
    # What `parse` returns for such a number: no prefix to strip, no leading zero, no extension.
    number = PhoneNumber(country_code=86, national_number=int(national))
    return "+86" + national if phonenumbers.is_valid_number(number) else None


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
