"""Channel accounts: list, create, change and test the ways a workspace sends.

Credentials are sealed with `siyu.messaging.crypto` before they touch the session and are never
returned, logged or written to the audit trail: audit entries say only whether they changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, DomainError, InvalidInput, NotFound
from siyu.messaging.adapters import adapter_for
from siyu.messaging.adapters.base import SendContext
from siyu.messaging.crypto import decrypt_credentials, encrypt_credentials
from siyu.messaging.schemas import AccountIn
from siyu.models import ChannelAccount

_MAX_ERROR = 500


def list_accounts(session: Session, actor: Actor) -> Sequence[ChannelAccount]:
    """The workspace's channel accounts, by name."""
    actor.require(Scope.TOUCH_READ)
    query = select(ChannelAccount).where(ChannelAccount.workspace_id == actor.workspace_id)
    return session.scalars(query.order_by(ChannelAccount.name, ChannelAccount.id)).all()


def get_account(session: Session, actor: Actor, account_id: int) -> ChannelAccount:
    """One account of the actor's workspace (404 for another workspace's id)."""
    actor.require(Scope.TOUCH_READ)
    account = session.scalar(
        select(ChannelAccount).where(ChannelAccount.id == account_id, ChannelAccount.workspace_id == actor.workspace_id)
    )
    if account is None:
        raise NotFound(f"channel account {account_id} not found")
    return account


def _name_taken(session: Session, workspace_id: int, name: str, except_id: int | None = None) -> bool:
    query = select(ChannelAccount.id).where(ChannelAccount.workspace_id == workspace_id, ChannelAccount.name == name)
    if except_id is not None:
        query = query.where(ChannelAccount.id != except_id)
    return session.scalar(query.limit(1)) is not None


def _check_settings(account: ChannelAccount) -> None:
    """Build the adapter once so settings it cannot use are refused now, not at the first send."""
    try:
        adapter_for(account)
    except ImportError as exc:
        raise InvalidInput(f"no adapter for {account.kind} is installed", details={"field": "kind"}) from exc
    except InvalidInput as exc:
        details = dict(exc.details) if isinstance(exc.details, dict) else {}
        field = str(details.get("field") or "")
        details["field"] = field if field.startswith("settings") else f"settings.{field}" if field else "settings"
        raise InvalidInput(exc.message, details=details) from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(f"settings: {exc}", details={"field": "settings"}) from exc


def _audit_values(account: ChannelAccount) -> dict[str, Any]:
    # Never the credentials themselves: only whether there are some.
    return {
        "name": account.name,
        "kind": str(account.kind),
        "settings": dict(account.settings or {}),
        "is_active": account.is_active,
        "has_credentials": bool(account.credentials_encrypted),
    }


def create_account(session: Session, *, actor: Actor, data: AccountIn, clock: Clock) -> ChannelAccount:
    """Add an account; its name is unique in the workspace (409 naming "name")."""
    actor.require(Scope.TOUCH_CHANNELS)
    if _name_taken(session, actor.workspace_id, data.name):
        raise Conflict(f"a channel account named {data.name!r} exists", details={"field": "name"})
    now = clock.now()
    account = ChannelAccount(
        workspace_id=actor.workspace_id,
        name=data.name,
        kind=data.kind,
        settings=dict(data.settings),
        credentials_encrypted=encrypt_credentials(data.credentials) if data.credentials else None,
        is_active=data.is_active,
        last_error=None,
        created_at=now,
        updated_at=now,
    )
    _check_settings(account)
    session.add(account)
    session.flush()
    record(
        session,
        actor,
        action="create",
        entity_type="channel_account",
        entity_id=account.id,
        after=_audit_values(account),
        clock=clock,
    )
    return account


def update_account(session: Session, *, actor: Actor, account_id: int, data: AccountIn, clock: Clock) -> ChannelAccount:
    """Replace an account's name, settings and state; credentials: None keeps, {} clears, else replaces.

    The kind cannot change: deliveries and callbacks already refer to the account as that kind.
    """
    actor.require(Scope.TOUCH_CHANNELS)
    account = get_account(session, actor, account_id)
    if data.kind != account.kind:
        raise InvalidInput("the kind of a channel account cannot change", details={"field": "kind"})
    if _name_taken(session, actor.workspace_id, data.name, except_id=account.id):
        raise Conflict(f"a channel account named {data.name!r} exists", details={"field": "name"})
    before = _audit_values(account)
    account.name, account.settings, account.is_active = data.name, dict(data.settings), data.is_active
    if data.credentials is not None:
        account.credentials_encrypted = encrypt_credentials(data.credentials) if data.credentials else None
        account.last_error = None  # new credentials: the old error no longer says anything
    _check_settings(account)
    account.updated_at = clock.now()
    after = _audit_values(account) | {"credentials_changed": data.credentials is not None}
    record(
        session,
        actor,
        action="update",
        entity_type="channel_account",
        entity_id=account.id,
        before=before,
        after=after,
        clock=clock,
    )
    return account


def test_account(session: Session, *, actor: Actor, account_id: int, clock: Clock) -> None:
    """Ask the provider whether the settings and credentials work.

    Success clears `last_error`; failure stores it and raises `InvalidInput` with the provider's
    message. The caller's transaction holds the stored error: a handler that wants it kept after
    the refusal commits before answering (the API does).
    """
    actor.require(Scope.TOUCH_CHANNELS)
    account = get_account(session, actor, account_id)
    error: DomainError | None = None
    try:
        credentials = decrypt_credentials(account.credentials_encrypted)
        adapter = adapter_for(account)
        adapter.check(SendContext(session=session, clock=clock, account=account, credentials=credentials))
    except ImportError:
        error = InvalidInput(f"no adapter for {account.kind} is installed", details={"field": "kind"})
    except DomainError as exc:
        error = InvalidInput(exc.message, details=exc.details if isinstance(exc.details, dict) else None)
    except Exception as exc:  # a provider SDK or network error: report it, never a 500
        error = InvalidInput(f"{type(exc).__name__}: {exc}", details={"field": "credentials"})
    account.last_error = error.message[:_MAX_ERROR] if error is not None else None
    record(
        session,
        actor,
        action="test",
        entity_type="channel_account",
        entity_id=account.id,
        after={"ok": error is None, "error": account.last_error},
        clock=clock,
    )
    if error is not None:
        raise error
