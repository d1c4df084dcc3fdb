"""The callback inbox: find the workspace, verify and decrypt a push, store it once, queue its work.

    answer = handle_post(database, clock, query, body)      # POST /integrations/wecom/callback
    answer = handle_verify(database, clock, query)          # GET: the echostr handshake

Both return a `CallbackAnswer` (status code and plain text). A push that cannot be trusted (wrong
signature, unknown workspace, a timestamp older than `MAX_AGE_S`) is refused with 403, one that
cannot be read (malformed XML, bad AES) with 400; either is logged and counted on the integration
(`note_refusal`, at most once a minute) and nothing is stored. A trusted push is stored in `IntegrationEvent` keyed by
the sha256 of its decrypted XML: WeCom's retries of one push become `duplicates += 1` and are
answered "success" without effect. The first copy queues `wecom_process_event`; an add
(`add_external_contact` / `add_half_external_contact`) carrying a `WelcomeCode` instead gets its
welcome message sent right after the answer (`CallbackAnswer.after`, run by the route as a
background task: WeCom wants "success" within 5 seconds, the code lives 20), which then queues the job.

Refusals are noted on the integration at most once a minute (`REFUSAL_NOTE_EVERY`), so a flood of
unauthenticated requests cannot keep rewriting its last error.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import xmltodict
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from wechatpy.crypto import _get_signature
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

from siyu.db import Database
from siyu.integrations.wecom.client import redact
from siyu.integrations.wecom.config import WecomConfig, config_of
from siyu.integrations.wecom.errors import NotConfigured
from siyu.integrations.wecom.status import note_event
from siyu.jobs.service import enqueue
from siyu.kit.clock import Clock
from siyu.models import EventSource, EventStatus, IntegrationEvent, WecomIntegration
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)

MAX_AGE_S = 600
"""A push whose signed timestamp is older (or further in the future) than this is a replay."""
PROCESS_KIND = "wecom_process_event"
WELCOME_KEY = "_welcome"
"""Payload key where the fast path leaves the welcome outcome for the event's job (not an XML field)."""
MAX_BODY_BYTES = 64 * 1024
"""A push larger than this is refused (413) before it is parsed."""
REFUSAL_NOTE_EVERY = timedelta(seconds=60)
"""A refusal becomes the integration's last error only when none was noted this recently."""
MAX_VERIFY_CANDIDATES = 50
"""A `GET` without `?ws=` tries the signature of at most this many active integrations."""


@dataclass(frozen=True)
class CallbackAnswer:
    """What the route answers; `after` (not part of equality) runs once the answer is sent."""

    status_code: int
    text: str
    after: Callable[[], None] | None = field(default=None, compare=False, repr=False)


class CallbackRefused(Exception):
    """A push siyu does not accept: `status_code` 400 or 403, `reason` a short label for logs."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason


@dataclass(frozen=True)
class StoredPush:
    event_id: int
    workspace_id: int
    is_new: bool
    payload: dict[str, Any]


def flatten(xml: str) -> dict[str, Any]:
    """The decrypted XML as a flat dict: text fields as strings, nested elements as xmltodict gives them."""
    try:
        doc = xmltodict.parse(xml)
    except Exception as exc:  # expat raises several types for broken XML
        raise CallbackRefused(400, "malformed XML") from exc
    root = doc.get("xml") if isinstance(doc, dict) else None
    if not isinstance(root, dict):
        raise CallbackRefused(400, "malformed XML: no <xml> root")
    return {str(key): ("" if value is None else value) for key, value in root.items()}


def dedup_key(xml: str) -> str:
    """WeCom retries a push with the same XML: its hash identifies the push."""
    return hashlib.sha256(xml.encode()).hexdigest()


def _workspace_param(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise CallbackRefused(400, "ws must be a workspace id")
    return int(value)


def find_integration(session: Session, *, workspace_id: int | None, corp_id: str | None) -> WecomIntegration:
    """The active integration of `?ws=`, else the single active one whose corp id is `corp_id`."""
    query = select(WecomIntegration).where(WecomIntegration.is_active.is_(True))
    if workspace_id is not None:
        rows = list(session.scalars(query.where(WecomIntegration.workspace_id == workspace_id)))
    elif corp_id:
        rows = list(session.scalars(query.where(WecomIntegration.corp_id == corp_id).limit(2)))
    else:
        rows = []
    if len(rows) != 1:
        raise CallbackRefused(403, "unknown workspace" if not rows else "ambiguous corp id: add ?ws=")
    return rows[0]


def _check_age(timestamp: str, now_epoch: float) -> None:
    if not timestamp.isascii() or not timestamp.isdigit():
        raise CallbackRefused(400, "timestamp must be a number")
    if abs(now_epoch - int(timestamp)) > MAX_AGE_S:
        raise CallbackRefused(403, "timestamp too old: replayed push refused")


def _crypto(config: WecomConfig) -> WeChatCrypto:
    if not config.callback_token or not config.callback_aes_key:
        raise CallbackRefused(403, "callback token or AES key not configured")
    try:
        return WeChatCrypto(config.callback_token, config.callback_aes_key, config.corp_id)
    except Exception as exc:  # a stored key that is not 43 characters of base64
        raise CallbackRefused(403, "callback AES key is invalid") from exc


def decrypt_push(config: WecomConfig, query: dict[str, str], body: bytes, now_epoch: float) -> str:
    """The decrypted XML of a push; `CallbackRefused` when it cannot be trusted or read."""
    signature, timestamp, nonce = (query.get(k, "") for k in ("msg_signature", "timestamp", "nonce"))
    if not signature or not timestamp or not nonce:
        raise CallbackRefused(400, "msg_signature, timestamp and nonce are required")
    _check_age(timestamp, now_epoch)
    crypto = _crypto(config)
    try:
        plain = crypto.decrypt_message(body.decode("utf-8", "replace"), signature, timestamp, nonce)
    except InvalidSignatureException as exc:
        raise CallbackRefused(403, "wrong signature") from exc
    except InvalidCorpIdException as exc:
        raise CallbackRefused(403, "push for another corp") from exc
    except Exception as exc:  # broken envelope, bad base64, bad padding
        raise CallbackRefused(400, f"cannot decrypt push ({type(exc).__name__})") from exc
    return str(plain)


def verify_url(config: WecomConfig, query: dict[str, str], now_epoch: float) -> str:
    """The echostr handshake: check the signature and return the decrypted echostr."""
    signature, timestamp, nonce, echostr = (
        query.get(k, "") for k in ("msg_signature", "timestamp", "nonce", "echostr")
    )
    if not signature or not timestamp or not nonce or not echostr:
        raise CallbackRefused(400, "msg_signature, timestamp, nonce and echostr are required")
    _check_age(timestamp, now_epoch)
    crypto = _crypto(config)
    try:
        return str(crypto.check_signature(signature, timestamp, nonce, echostr))
    except InvalidSignatureException as exc:
        raise CallbackRefused(403, "wrong signature") from exc
    except InvalidCorpIdException as exc:
        raise CallbackRefused(403, "echostr for another corp") from exc
    except Exception as exc:
        raise CallbackRefused(400, f"cannot decrypt echostr ({type(exc).__name__})") from exc


def store_push(session: Session, *, workspace_id: int, xml: str, payload: dict[str, Any], clock: Clock) -> StoredPush:
    """Store a decrypted push once. A second copy (a WeCom retry, even a concurrent one) only
    counts `duplicates` on the first row. Returns the row's id and whether this copy was the first."""
    key = dedup_key(xml)
    event = IntegrationEvent(
        workspace_id=workspace_id,
        source=EventSource.WECOM,
        dedup_key=key,
        event=str(payload.get("Event") or payload.get("MsgType") or "unknown")[:60],
        change_type=(str(payload["ChangeType"])[:60] if payload.get("ChangeType") else None),
        payload=payload,
        status=EventStatus.RECEIVED,
        received_at=clock.now(),
    )
    savepoint = session.begin_nested()
    try:
        session.add(event)
        session.flush()
        savepoint.commit()
        return StoredPush(event.id, workspace_id, True, payload)
    except IntegrityError:
        savepoint.rollback()
    where = (
        IntegrationEvent.workspace_id == workspace_id,
        IntegrationEvent.source == EventSource.WECOM,
        IntegrationEvent.dedup_key == key,
    )
    session.execute(
        update(IntegrationEvent)
        .where(*where)
        .values(duplicates=IntegrationEvent.duplicates + 1)
        .execution_options(synchronize_session=False)
    )
    existing = session.scalar(select(IntegrationEvent.id).where(*where))
    assert existing is not None
    return StoredPush(existing, workspace_id, False, payload)


def queue_processing(session: Session, *, workspace_id: int, event_id: int, clock: Clock) -> None:
    """Queue the job that runs the event's handler (sent once the transaction commits)."""
    enqueue(session, kind=PROCESS_KIND, args={"event_id": event_id}, workspace_id=workspace_id, clock=clock)


def note_refusal(session: Session, workspace_id: int, text: str, clock: Clock) -> bool:
    """The refusal as the integration's last error, unless an error was noted less than
    `REFUSAL_NOTE_EVERY` ago (one conditional UPDATE). Returns whether it was noted."""
    now = clock.now()
    result = session.execute(
        update(WecomIntegration)
        .where(
            WecomIntegration.workspace_id == workspace_id,
            or_(WecomIntegration.last_error_at.is_(None), WecomIntegration.last_error_at <= now - REFUSAL_NOTE_EVERY),
        )
        .values(last_error=redact(text)[:1000], last_error_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def _refuse(database: Database, clock: Clock, workspace_id: int | None, exc: CallbackRefused, what: str) -> None:
    logger.warning("wecom callback refused: %s", exc.reason, extra={"workspace_id": workspace_id})
    if workspace_id is None:
        return
    with database.transaction() as session:
        bind_workspace(session, workspace_id)
        note_refusal(session, workspace_id, f"callback {what} refused: {exc.reason}", clock)


def _resolve(database: Database, query: dict[str, str], corp_id: str | None) -> tuple[int, WecomConfig]:
    workspace_param = _workspace_param(query.get("ws"))
    with database.transaction(read_only=True) as session:
        integration = find_integration(session, workspace_id=workspace_param, corp_id=corp_id)
        try:
            return integration.workspace_id, config_of(integration)
        except NotConfigured as exc:
            raise CallbackRefused(403, "integration secrets unreadable") from exc


def _resolve_by_signature(database: Database, query: dict[str, str]) -> tuple[int, WecomConfig]:
    """A `GET` without `?ws=` carries no corp id: the active integration whose token signs it."""
    signature, timestamp, nonce, echostr = (
        query.get(k, "") for k in ("msg_signature", "timestamp", "nonce", "echostr")
    )
    if not signature or not timestamp or not nonce or not echostr:
        raise CallbackRefused(400, "msg_signature, timestamp, nonce and echostr are required")
    with database.transaction(read_only=True) as session:
        integrations = list(
            session.scalars(
                select(WecomIntegration)
                .where(WecomIntegration.is_active.is_(True))
                .order_by(WecomIntegration.id)
                .limit(MAX_VERIFY_CANDIDATES)
                .execution_options(siyu_unscoped=True)
            )
        )
        matches: list[tuple[int, WecomConfig]] = []
        for integration in integrations:
            try:
                config = config_of(integration)
            except NotConfigured:
                continue
            if config.callback_token and _get_signature(config.callback_token, timestamp, nonce, echostr) == signature:
                matches.append((integration.workspace_id, config))
    if len(matches) != 1:
        raise CallbackRefused(403, "unknown workspace" if not matches else "ambiguous callback token: add ?ws=")
    return matches[0]


def _envelope_corp(body: bytes) -> str | None:
    try:
        doc = xmltodict.parse(body)
    except Exception as exc:
        raise CallbackRefused(400, "malformed XML envelope") from exc
    root = doc.get("xml") if isinstance(doc, dict) else None
    if not isinstance(root, dict) or not root.get("Encrypt"):
        raise CallbackRefused(400, "malformed XML envelope: no Encrypt")
    to_user = root.get("ToUserName")
    return str(to_user) if to_user else None


def handle_verify(
    database: Database, clock: Clock, query: dict[str, str], *, now_epoch: float | None = None
) -> CallbackAnswer:
    """GET: WeCom verifies the callback URL; answer the decrypted echostr, note the verification."""
    now_epoch = time.time() if now_epoch is None else now_epoch
    workspace_id: int | None = None
    try:
        if query.get("ws"):
            workspace_id, config = _resolve(database, query, None)
        else:
            workspace_id, config = _resolve_by_signature(database, query)
        echo = verify_url(config, query, now_epoch)
    except CallbackRefused as exc:
        _refuse(database, clock, workspace_id, exc, "verification")
        return CallbackAnswer(exc.status_code, exc.reason)
    with database.transaction() as session:
        bind_workspace(session, workspace_id)
        session.execute(
            update(WecomIntegration)
            .where(WecomIntegration.workspace_id == workspace_id)
            .values(callback_verified_at=clock.now())
            .execution_options(synchronize_session=False)
        )
    return CallbackAnswer(200, echo)


def handle_post(
    database: Database, clock: Clock, query: dict[str, str], body: bytes, *, now_epoch: float | None = None
) -> CallbackAnswer:
    """POST: one pushed event. Verified, decrypted, stored once, answered "success"; its work queued
    (for an add with a welcome code: by `answer.after`, which sends the welcome first)."""
    from siyu.integrations.wecom.callbacks.welcome import needs_fast_path, send_fast_path

    now_epoch = time.time() if now_epoch is None else now_epoch
    workspace_id: int | None = None
    try:
        if len(body) > MAX_BODY_BYTES:
            raise CallbackRefused(413, "push too large")
        corp_id = _envelope_corp(body)
        workspace_id, config = _resolve(database, query, corp_id)
        xml = decrypt_push(config, query, body, now_epoch)
        payload = flatten(xml)
    except CallbackRefused as exc:
        _refuse(database, clock, workspace_id, exc, "push")
        return CallbackAnswer(exc.status_code, exc.reason)
    fast = needs_fast_path(payload)
    with database.transaction() as session:
        bind_workspace(session, workspace_id)
        stored = store_push(session, workspace_id=workspace_id, xml=xml, payload=payload, clock=clock)
        note_event(session, workspace_id, clock)
        if stored.is_new and not fast:
            queue_processing(session, workspace_id=workspace_id, event_id=stored.event_id, clock=clock)
    if stored.is_new and fast:
        # After the row is committed (a retry arriving now is a duplicate), before the job reads it,
        # and after "success" is on its way (the route runs it as a background task).
        return CallbackAnswer(200, "success", after=lambda: send_fast_path(database, clock, config, stored))
    return CallbackAnswer(200, "success")
