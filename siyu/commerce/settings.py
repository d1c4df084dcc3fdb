"""Commerce settings of a workspace: the unknown-customer policy, coupon restore on refund, and the
order webhook's secret (stored encrypted, shown once when rotated)."""

from __future__ import annotations

import secrets

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.schemas import Input
from siyu.messaging.crypto import decrypt_credentials, encrypt_credentials
from siyu.models import CommerceSettings, UnknownCustomerPolicy

SECRET_BYTES = 32


class CommerceSettingsIn(Input):
    unknown_customer: UnknownCustomerPolicy | None = None
    restore_coupon_on_refund: bool | None = None


class CommerceSettingsView(BaseModel):
    unknown_customer: UnknownCustomerPolicy
    restore_coupon_on_refund: bool
    has_webhook_secret: bool


def current(session: Session, *, workspace_id: int) -> CommerceSettings | None:
    """The workspace's settings row, None when never saved (every default applies)."""
    return session.scalar(select(CommerceSettings).where(CommerceSettings.workspace_id == workspace_id))


def unknown_customer_policy(session: Session, *, workspace_id: int) -> UnknownCustomerPolicy:
    row = current(session, workspace_id=workspace_id)
    return UnknownCustomerPolicy(row.unknown_customer) if row else UnknownCustomerPolicy.CREATE


def restores_coupon_on_refund(session: Session, *, workspace_id: int) -> bool:
    row = current(session, workspace_id=workspace_id)
    return row.restore_coupon_on_refund if row else True


def view(session: Session, *, workspace_id: int) -> CommerceSettingsView:
    row = current(session, workspace_id=workspace_id)
    if row is None:
        return CommerceSettingsView(
            unknown_customer=UnknownCustomerPolicy.CREATE, restore_coupon_on_refund=True, has_webhook_secret=False
        )
    return CommerceSettingsView(
        unknown_customer=UnknownCustomerPolicy(row.unknown_customer),
        restore_coupon_on_refund=row.restore_coupon_on_refund,
        has_webhook_secret=bool(row.webhook_secret_encrypted),
    )


def _locked_row(session: Session, *, workspace_id: int, clock: Clock) -> CommerceSettings:
    """The settings row under a row lock, created with the defaults if missing (a racing creator wins)."""
    query = select(CommerceSettings).where(CommerceSettings.workspace_id == workspace_id).with_for_update()
    row = session.scalar(query)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            session.add(
                CommerceSettings(
                    workspace_id=workspace_id,
                    unknown_customer=UnknownCustomerPolicy.CREATE,
                    restore_coupon_on_refund=True,
                    updated_at=clock.now(),
                )
            )
    except IntegrityError:
        pass
    row = session.scalar(query)
    assert row is not None
    return row


def update_settings(session: Session, *, actor: Actor, data: CommerceSettingsIn, clock: Clock) -> CommerceSettingsView:
    """Change the given settings (fields left out keep their value); audited."""
    actor.require(Scope.COMMERCE_SETTINGS)
    row = _locked_row(session, workspace_id=actor.workspace_id, clock=clock)
    before = {"unknown_customer": str(row.unknown_customer), "restore_coupon_on_refund": row.restore_coupon_on_refund}
    if data.unknown_customer is not None:
        row.unknown_customer = data.unknown_customer
    if data.restore_coupon_on_refund is not None:
        row.restore_coupon_on_refund = data.restore_coupon_on_refund
    row.updated_at = clock.now()
    session.flush()
    after = {"unknown_customer": str(row.unknown_customer), "restore_coupon_on_refund": row.restore_coupon_on_refund}
    record(
        session,
        actor,
        action="update",
        entity_type="commerce_settings",
        entity_id=row.id,
        before=before,
        after=after,
        clock=clock,
    )
    return view(session, workspace_id=actor.workspace_id)


def rotate_webhook_secret(session: Session, *, actor: Actor, clock: Clock) -> str:
    """Make a new webhook secret and return it: the only time it is shown. The old one stops working."""
    actor.require(Scope.COMMERCE_SETTINGS)
    row = _locked_row(session, workspace_id=actor.workspace_id, clock=clock)
    had_secret = bool(row.webhook_secret_encrypted)
    secret = "whsec_" + secrets.token_urlsafe(SECRET_BYTES)
    row.webhook_secret_encrypted = encrypt_credentials({"secret": secret})
    row.updated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action="rotate_webhook_secret",
        entity_type="commerce_settings",
        entity_id=row.id,
        before={"has_webhook_secret": had_secret},
        after={"has_webhook_secret": True},
        clock=clock,
    )
    return secret


def webhook_secret(session: Session, *, workspace_id: int) -> str | None:
    """The plain webhook secret, None when none was made yet."""
    row = current(session, workspace_id=workspace_id)
    if row is None or not row.webhook_secret_encrypted:
        return None
    value = decrypt_credentials(row.webhook_secret_encrypted).get("secret")
    return value if isinstance(value, str) else None
