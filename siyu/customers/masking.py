"""The one rule for showing personal contact data: whole to roles with `customers:pii`, masked to others."""

from __future__ import annotations

from siyu.auth.permissions import Actor, Scope
from siyu.kit.phone import display_phone, mask_phone
from siyu.models import IdentityType


def sees_pii(actor: Actor) -> bool:
    """Whether the actor may see phone numbers and e-mail addresses whole."""
    return actor.can(Scope.CUSTOMERS_PII)


def mask_email(email: str | None) -> str | None:
    """ "lily@example.com" → "l***@example.com"."""
    if not email or "@" not in email:
        return email
    local, _, domain = email.partition("@")
    return local[:1] + "***@" + domain


def shown_phone(phone: str | None, *, whole: bool, national: bool = False) -> str | None:
    """A phone as a reader may see it: E.164 (or national for mainland numbers) when whole, else masked."""
    if not whole:
        return mask_phone(phone)
    return display_phone(phone) if national else phone


def shown_email(email: str | None, *, whole: bool) -> str | None:
    return email if whole else mask_email(email)


def shown_identity(type_: str, value: str, *, whole: bool) -> str:
    """Identity values: phones and e-mail follow the rule above; platform ids are not contact data."""
    if type_ == IdentityType.PHONE:
        return shown_phone(value, whole=whole) or value
    if type_ == IdentityType.EMAIL:
        return shown_email(value, whole=whole) or value
    return value
