"""Identity types and value normalisation: one canonical text per real-world identity."""

from __future__ import annotations

import re
import unicodedata

from siyu.customers.errors import InvalidIdentity
from siyu.kit.phone import InvalidPhone, normalize_phone
from siyu.models import IdentityType

BUILTIN_TYPES = frozenset(str(t) for t in IdentityType)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CUSTOM_TYPE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
MAX_VALUE_LENGTH = 200


def is_valid_type_key(key: str) -> bool:
    return bool(_CUSTOM_TYPE.match(key))


def normalize_identity(type_: str, value: str, *, phone_region: str = "CN") -> str:
    """Canonical form of an identity value, or `InvalidIdentity` naming the type.

    Phones become E.164, e-mail lower case, everything else NFKC-normalised and stripped.
    """
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if not text:
        raise InvalidIdentity(f"{type_} is empty", details={"field": type_})
    if type_ == IdentityType.PHONE:
        try:
            return normalize_phone(text, region=phone_region)
        except InvalidPhone as exc:
            raise InvalidIdentity("invalid phone number", details={"field": "phone"}) from exc
    if type_ == IdentityType.EMAIL:
        text = text.lower()
        if not _EMAIL.match(text):
            raise InvalidIdentity("invalid e-mail address", details={"field": "email"})
    if type_ == IdentityType.WECHAT_OPENID and ":" not in text:
        raise InvalidIdentity("wechat_openid must be written <appid>:<openid>", details={"field": type_})
    if len(text) > MAX_VALUE_LENGTH:
        raise InvalidIdentity(f"{type_} longer than {MAX_VALUE_LENGTH} characters", details={"field": type_})
    return text
