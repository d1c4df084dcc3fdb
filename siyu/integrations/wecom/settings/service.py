"""The WeCom integration's configuration and health, as the integration page and its API show them.

    view = integration_view(session, actor, settings)           # everything the page shows, no secret
    save_settings(session, actor=actor, data=SettingsIn(...), clock=clock, settings=settings)
    checks = check_connection(session, actor=actor, clock=clock)  # gettoken per secret + one read call

Secrets are sealed with `siyu.messaging.crypto` and never come back out: the view carries only which
ones are set. A blank secret on save keeps the saved one. With `use_fake`, the integration talks to the
fake WeCom server mounted at `/fake-wecom` (see `fake.mount`) and the corp is registered there.

Switching between a real corp and the fake never carries secrets across: real → fake uses only what
the admin typed and makes up the rest (so a real secret never lands in the fake's state file), fake →
real drops the made-up ones. Registering on the fake changes the in-memory fake before the database
commits; a rolled-back save can leave the corp registered there, which is harmless (the fake is a
sandbox) and the connection test registers the corp again from the saved row.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.config import Settings
from siyu.integrations.wecom.client import redact
from siyu.integrations.wecom.config import SECRET_FIELDS, config_of, get_integration
from siyu.integrations.wecom.errors import NotConfigured, WecomError, WecomRateLimited
from siyu.integrations.wecom.status import note_error
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.messaging.crypto import decrypt_credentials, encrypt_credentials
from siyu.models import (
    AuditEntry,
    EventStatus,
    IntegrationEvent,
    Staff,
    WecomIntegration,
    WecomSyncRun,
)
from siyu.models.integration import DEFAULT_WECOM_API

SYNC_SCOPES = ("full", "staff", "customers", "groups")
"""Runs of the full sync; the contact-way push and the tag sync keep bookkeeping rows of their own."""

FAKE_PREFIX = "/fake-wecom"
CALLBACK_PATH = "/integrations/wecom/callback"
AUDIT_ENTITY = "wecom_integration"
EVENT_LIMIT = 50
_CORP_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_AGENT_ID = re.compile(r"^[0-9]{1,32}$")
_TOKEN = re.compile(r"^[A-Za-z0-9]{3,32}$")
"""WeCom's rule for the callback Token: 3–32 letters or digits."""


class SettingsIn(BaseModel):
    """What an admin submits. Secrets: None or "" keeps the saved value."""

    corp_id: str = Field(default="", max_length=64)
    agent_id: str | None = Field(default=None, max_length=32)
    contact_secret: str | None = Field(default=None, max_length=200)
    app_secret: str | None = Field(default=None, max_length=200)
    callback_token: str | None = Field(default=None, max_length=32)
    callback_aes_key: str | None = Field(default=None, max_length=43)
    use_fake: bool = False
    is_active: bool = True


@dataclass(frozen=True)
class Check:
    """One step of the connection test: which field it tests, whether it worked, WeCom's answer."""

    step: str
    field: str
    ok: bool
    message: str = ""


@dataclass
class IntegrationView:
    """The integration page's content (never a secret)."""

    integration: WecomIntegration | None
    secrets_set: dict[str, bool]
    callback_url: str | None
    fake_api_base_url: str
    events: Sequence[IntegrationEvent] = ()
    event_counts: dict[str, int] = field(default_factory=dict)
    sync_run: WecomSyncRun | None = None
    audit: Sequence[AuditEntry] = ()


def fake_api_base_url(settings: Settings) -> str:
    """Where the built-in fake WeCom answers API calls: `public_url + /fake-wecom/cgi-bin/`."""
    return settings.public_url.rstrip("/") + FAKE_PREFIX + "/cgi-bin/"


def callback_url(settings: Settings, workspace_id: int) -> str:
    """The URL to paste in WeCom's 接收事件服务器 settings."""
    return f"{settings.public_url.rstrip('/')}{CALLBACK_PATH}?ws={workspace_id}"


def valid_aes_key(value: str) -> bool:
    """An EncodingAESKey: 43 characters of base64 that decode (with '=') to a 32-byte AES key."""
    if len(value) != 43:
        return False
    try:
        return len(base64.b64decode(value + "=", validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _secrets_of(integration: WecomIntegration | None) -> dict[str, Any]:
    if integration is None or not integration.secrets_encrypted:
        return {}
    return decrypt_credentials(integration.secrets_encrypted)


def _audit_values(integration: WecomIntegration, saved: dict[str, Any]) -> dict[str, Any]:
    # Never a secret: only whether each one is set.
    return {
        "corp_id": integration.corp_id,
        "agent_id": integration.agent_id,
        "api_base_url": integration.api_base_url,
        "is_fake": integration.is_fake,
        "is_active": integration.is_active,
        **{f"has_{name}": bool(saved.get(name)) for name in SECRET_FIELDS},
    }


def _validated(data: SettingsIn, saved: dict[str, Any]) -> tuple[str, str | None, dict[str, str]]:
    corp_id = data.corp_id.strip()
    agent_id = (data.agent_id or "").strip() or None
    if not corp_id and not data.use_fake:
        raise InvalidInput("corp_id: required", details={"field": "corp_id"})
    if corp_id and not _CORP_ID.match(corp_id):
        raise InvalidInput("corp_id: letters, digits, '-' or '_' only", details={"field": "corp_id"})
    if agent_id is not None and not _AGENT_ID.match(agent_id):
        raise InvalidInput("agent_id: expected a number", details={"field": "agent_id"})
    merged = {name: str(saved.get(name) or "") for name in SECRET_FIELDS}
    for name in SECRET_FIELDS:
        typed = (getattr(data, name) or "").strip()
        if typed:
            merged[name] = typed
    token, key = merged["callback_token"], merged["callback_aes_key"]
    if token and not _TOKEN.match(token):
        raise InvalidInput("callback_token: 3 to 32 letters or digits", details={"field": "callback_token"})
    if key and not valid_aes_key(key):
        raise InvalidInput(
            "callback_aes_key: expected 43 characters of base64 (EncodingAESKey)", details={"field": "callback_aes_key"}
        )
    return corp_id, agent_id, merged


def _fill_fake(corp_id: str, agent_id: str | None, merged: dict[str, str]) -> tuple[str, str]:
    """A fake corp needs no real secrets: make up whichever the admin left empty."""
    corp_id = corp_id or "wwfake" + secrets.token_hex(5)
    for name in ("contact_secret", "app_secret"):
        merged[name] = merged[name] or secrets.token_urlsafe(24)
    merged["callback_token"] = merged["callback_token"] or secrets.token_hex(8)
    merged["callback_aes_key"] = merged["callback_aes_key"] or base64.b64encode(secrets.token_bytes(32)).decode()[:43]
    return corp_id, agent_id or "1000002"


def _require_fake() -> None:
    from siyu.integrations.wecom.fake.mount import mounted_fake

    if mounted_fake() is None:
        raise InvalidInput(
            "use_fake: the built-in fake WeCom is not running (start siyu with SIYU_FAKE_WECOM=true)",
            details={"field": "use_fake"},
        )


def _check_corp_free(session: Session, workspace_id: int, corp_id: str) -> None:
    """A fake corp belongs to one workspace: refuse a corp id another workspace's integration uses."""
    other = session.scalar(
        select(WecomIntegration.id)
        .where(WecomIntegration.corp_id == corp_id, WecomIntegration.workspace_id != workspace_id)
        .execution_options(siyu_unscoped=True)
        .limit(1)
    )
    if other is not None:
        raise InvalidInput("corp_id: already used by another workspace", details={"field": "corp_id"})


def fake_members(session: Session, workspace_id: int) -> list[tuple[str, str, bool]]:
    """The workspace's staff with a WeCom userid, as (userid, name, active): the fake corp's members."""
    rows = session.execute(
        select(Staff.wecom_user_id, Staff.name, Staff.is_active)
        .where(Staff.workspace_id == workspace_id, Staff.wecom_user_id.is_not(None))
        .order_by(Staff.id)
    )
    return [(str(userid), str(name), bool(active)) for userid, name, active in rows]


def register_fake_corp(
    integration: WecomIntegration,
    settings: Settings,
    *,
    required: bool = True,
    members: Sequence[tuple[str, str, bool]] = (),
) -> bool:
    """Create or update the integration's corp on the mounted fake server, pushing to siyu's callback URL.

    `members` (see `fake_members`) join the fake corp's directory when it does not know them yet, so a
    workspace's staff can carry contact ways and receive customers without a real corp.

    False when no fake is mounted (and `required` is off); `InvalidInput` naming `use_fake` otherwise.
    The caller checks that no other workspace uses the corp id (`save_settings` does).
    """
    from siyu.integrations.wecom.fake.mount import mounted_fake

    fake = mounted_fake()
    if fake is None:
        if required:
            _require_fake()
        return False
    values = config_of(integration)
    with fake.lock:
        corp = fake.corps.get(values.corp_id)
        if corp is None:
            corp = fake.add_corp(values.corp_id, contact_secret=values.contact_secret, app_secret=values.app_secret)
        corp.contact_secret, corp.app_secret = values.contact_secret, values.app_secret
        corp.agent_id = values.agent_id or corp.agent_id
        corp.callback_url = callback_url(settings, integration.workspace_id)
        corp.callback_token, corp.callback_aes_key = values.callback_token, values.callback_aes_key
        if members:
            corp.departments.setdefault("1", {"id": 1, "name": values.corp_id, "parentid": 0})
        for userid, name, active in members:
            corp.users.setdefault(
                userid, {"userid": userid, "name": name, "department": [1], "status": 1 if active else 5}
            )
    from siyu.integrations.wecom.fake.mount import save_soon

    save_soon()
    return True


def save_settings(
    session: Session, *, actor: Actor, data: SettingsIn, clock: Clock, settings: Settings
) -> WecomIntegration:
    """Create or update the workspace's integration (admins: `integrations:manage`); audited without secrets.

    Bad input raises `InvalidInput` naming the field, with nothing written.
    """
    actor.require(Scope.INTEGRATIONS_MANAGE)
    integration = get_integration(session, actor.workspace_id)
    try:
        saved = _secrets_of(integration)
    except InvalidInput:  # sealed under a key no longer configured: the admin types them again
        saved = {}
    switching = integration is not None and integration.is_fake != data.use_fake
    # Secrets never cross between a real corp and the fake: only what is typed now counts.
    corp_id, agent_id, merged = _validated(data, {} if switching else saved)
    if data.use_fake:
        _require_fake()
        kept_corp = integration.corp_id if integration is not None and integration.is_fake else ""
        corp_id, agent_id = _fill_fake(corp_id or kept_corp, agent_id, merged)
        _check_corp_free(session, actor.workspace_id, corp_id)
    now = clock.now()
    before = _audit_values(integration, saved) if integration is not None else None
    if integration is None:
        integration = WecomIntegration(workspace_id=actor.workspace_id, created_at=now)
        session.add(integration)
    changed = [name for name in SECRET_FIELDS if merged[name] != str(saved.get(name) or "")]
    reconnect = changed or integration.corp_id != corp_id or integration.is_fake != data.use_fake
    integration.corp_id, integration.agent_id = corp_id, agent_id
    integration.secrets_encrypted = encrypt_credentials({k: v for k, v in merged.items() if v})
    integration.is_fake, integration.is_active = data.use_fake, data.is_active
    if data.use_fake:
        integration.api_base_url = fake_api_base_url(settings)
    elif before is not None and before["is_fake"]:
        integration.api_base_url = DEFAULT_WECOM_API
    else:
        integration.api_base_url = integration.api_base_url or DEFAULT_WECOM_API
    if reconnect:  # the old error and check said nothing about the new settings
        integration.last_error = integration.last_error_at = integration.last_checked_at = None
    integration.updated_at = now
    session.flush()
    if data.use_fake:
        register_fake_corp(integration, settings, members=fake_members(session, actor.workspace_id))
    record(
        session,
        actor,
        action="create" if before is None else "update",
        entity_type=AUDIT_ENTITY,
        entity_id=integration.id,
        before=before,
        after=_audit_values(integration, merged) | {"secrets_changed": changed},
        clock=clock,
    )
    return integration


TRUSTED_IP = "trusted_ip"
"""The check's `field` when WeCom refuses siyu's IP (60020: add it to the app's 企业可信IP)."""
RATE_LIMIT = "rate_limit"
"""The check's `field` when siyu's limiter (or WeCom's 45009) held the call back: try again later."""


def _error_field(exc: WecomError, secret_field: str) -> str:
    code = exc.code
    if isinstance(exc, WecomRateLimited) or code in (45009, 45033):
        return RATE_LIMIT
    if code == 60020:  # not from a trusted IP
        return TRUSTED_IP
    if code in (40013, 40089):  # invalid corpid
        return "corp_id"
    if code in (40001, 40091, 42001, 40014):  # wrong secret / token refused
        return secret_field
    if code in (301002, 48002):  # not allowed: app visibility, API permission
        return secret_field
    if code in (40056, 301024, 60011):  # agent id / visibility
        return "agent_id"
    return secret_field if exc.code is not None else "api_base_url"


def _describe(exc: WecomError) -> str:
    prefix = f"[{exc.code}] " if exc.code is not None else ""
    return redact(prefix + str(exc))[:300]


def _read_call(step: str, api: str, params: dict[str, Any], field_name: str, call: Any) -> Check:
    try:
        call("GET", api, params=params)
    except WecomError as exc:
        return Check(step, _error_field(exc, field_name), False, _describe(exc))
    return Check(step, field_name, True)


def check_connection(session: Session, *, actor: Actor, clock: Clock, settings: Settings | None = None) -> list[Check]:
    """Fetch a token with each secret and make one read call with it; record the outcome.

    Success sets `last_checked_at` and clears the last error; a failure becomes the integration's last
    error (`note_error`). For the built-in fake (with `settings`), the corp is registered again first,
    so a fake whose state was lost or rolled back matches the saved configuration.
    """
    from siyu.integrations.wecom.config import client_for

    actor.require(Scope.INTEGRATIONS_WRITE)
    integration = get_integration(session, actor.workspace_id)
    if integration is None:
        raise InvalidInput("WeCom is not configured", details={"field": "corp_id"})
    try:
        config = config_of(integration)
    except NotConfigured as exc:
        raise InvalidInput(str(exc), details={"field": "contact_secret"}) from exc
    if integration.is_fake and settings is not None:
        _check_corp_free(session, actor.workspace_id, config.corp_id)
        register_fake_corp(integration, settings, required=False, members=fake_members(session, actor.workspace_id))
    checks: list[Check] = []
    plans: list[tuple[str, str, str, dict[str, Any]]] = [
        ("contact", "contact_secret", "externalcontact/get_follow_user_list", {}),
    ]
    if config.app_secret:
        agent = {"agentid": config.agent_id} if config.agent_id else {}
        plans.append(("app", "app_secret", "agent/get" if config.agent_id else "user/simplelist", agent))
    for secret, field_name, api, params in plans:
        try:
            client = client_for(config, secret=secret)  # type: ignore[arg-type]
        except NotConfigured as exc:
            checks.append(Check(f"{secret}:gettoken", field_name, False, str(exc)))
            continue
        try:
            client.fetch_access_token()
        except Exception as exc:  # mapped to a WecomError, never a 500
            error = client.error("gettoken", exc)
            checks.append(Check(f"{secret}:gettoken", _error_field(error, field_name), False, _describe(error)))
            continue
        checks.append(Check(f"{secret}:gettoken", field_name, True))
        checks.append(_read_call(f"{secret}:{api}", api, params, field_name, client.call))
    failed = [c for c in checks if not c.ok]
    if failed:
        note_error(session, actor.workspace_id, f"connection test: {failed[0].step}: {failed[0].message}", clock)
    else:  # the old error said nothing about what works now
        integration.last_checked_at = clock.now()
        integration.last_error = integration.last_error_at = None
    record(
        session,
        actor,
        action="test",
        entity_type=AUDIT_ENTITY,
        entity_id=integration.id,
        after={"ok": not failed, "failed": [f"{c.step}: {c.message}" for c in failed]},
        clock=clock,
    )
    return checks


def list_events(
    session: Session, workspace_id: int, *, status: str | None = None, limit: int = EVENT_LIMIT
) -> Sequence[IntegrationEvent]:
    """The latest callback events, newest first (`status`: only those, e.g. "failed")."""
    query = select(IntegrationEvent).where(IntegrationEvent.workspace_id == workspace_id)
    if status:
        if status not in {str(s) for s in EventStatus}:
            raise InvalidInput(f"status: one of {', '.join(EventStatus)}", details={"field": "status"})
        query = query.where(IntegrationEvent.status == status)
    return list(
        session.scalars(
            query.order_by(IntegrationEvent.received_at.desc(), IntegrationEvent.id.desc()).limit(max(1, limit))
        )
    )


def integration_view(
    session: Session, actor: Actor, settings: Settings, *, event_status: str | None = None
) -> IntegrationView:
    """Everything the integration page shows: settings (secrets only as set/unset), health, events,
    the latest sync run and the configuration's audit trail."""
    actor.require(Scope.INTEGRATIONS_READ)
    integration = get_integration(session, actor.workspace_id)
    try:
        saved = _secrets_of(integration)
    except InvalidInput:
        saved = {}
    view = IntegrationView(
        integration=integration,
        secrets_set={name: bool(saved.get(name)) for name in SECRET_FIELDS},
        callback_url=callback_url(settings, actor.workspace_id),
        fake_api_base_url=fake_api_base_url(settings),
    )
    if integration is None:
        return view
    view.events = list_events(session, actor.workspace_id, status=event_status)
    counts = session.execute(
        select(IntegrationEvent.status, func.count())
        .where(IntegrationEvent.workspace_id == actor.workspace_id)
        .group_by(IntegrationEvent.status)
    )
    view.event_counts = {str(status): int(n) for status, n in counts}
    view.sync_run = session.scalar(
        select(WecomSyncRun)
        .where(WecomSyncRun.workspace_id == actor.workspace_id, WecomSyncRun.scope.in_(list(SYNC_SCOPES)))
        .order_by(WecomSyncRun.started_at.desc(), WecomSyncRun.id.desc())
        .limit(1)
    )
    view.audit = list(
        session.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.workspace_id == actor.workspace_id,
                AuditEntry.entity_type == AUDIT_ENTITY,
            )
            .order_by(AuditEntry.id.desc())
            .limit(10)
        )
    )
    return view
