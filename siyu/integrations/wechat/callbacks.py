"""The official account's callback inbox: verify, decrypt, deduplicate, store, process.

WeChat signs every push (`signature` = sha1 of the sorted token, timestamp, nonce); in safe mode
(`encrypt_type=aes`) the body is AES-encrypted and `msg_signature` covers it (wechatpy's
`WeChatCrypto` checks and decrypts). Each decrypted push is stored once in `IntegrationEvent`
(source official_account, `dedup_key` = sha256 of the decrypted XML): WeChat's retries of the same
push count as `duplicates`. The stored event is committed first; the one `user/info` call a
follow needs (`lookup`) is made with no transaction open, and its answer handed to `process`, which
runs in a transaction of its own inside a savepoint; a failure leaves the event FAILED for the
sweep job to retry.

Events: `subscribe` (with `EventKey` "qrscene_<state>" when through a parametric QR), `SCAN`
(already a follower; `EventKey` = state), `unsubscribe`, `TEMPLATESENDJOBFINISH` (`MsgID`, `Status`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import xmltodict
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.session import SessionStorage

from siyu.auth.permissions import Actor
from siyu.customers.service.profile import ProfileInput, ingest_customer
from siyu.customers.service.tags import assign_tag
from siyu.customers.service.timeline import set_consent, system_event
from siyu.db import get_database
from siyu.experiments.assignment import convert
from siyu.integrations.wechat.client import OfficialClient, client_for
from siyu.integrations.wechat.config import WechatConfig
from siyu.integrations.wecom.client import redact
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.integrations.wecom.tokens import token_store
from siyu.kit.clock import Clock
from siyu.livecodes.adds import claim_scan
from siyu.livecodes.state import decode_state
from siyu.messaging.adapters.base import StatusReport
from siyu.messaging.callbacks import record_status
from siyu.models import (
    AdapterKind,
    Channel,
    ChannelAccount,
    Consent,
    ConsentChannel,
    ConsentStatus,
    Customer,
    EventSource,
    EventStatus,
    Identity,
    IdentityType,
    IntegrationEvent,
    LiveCode,
    LiveCodeTag,
    TagSource,
    WechatOfficialAccount,
)

logger = logging.getLogger(__name__)
MAX_AGE_S = 600
"""Pushes whose timestamp is further than this from now are refused as replays."""
MAX_ATTEMPTS = 5
REJECTION_NOTE_EVERY = timedelta(seconds=60)
"""A rejected push is written to the account's last error at most this often (anyone can post)."""
USER_BLOCK = "failed:user block"


class CallbackRejected(Exception):
    """A push siyu does not trust or cannot read; `status` is the HTTP answer (400/403)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def signature_of(*parts: str) -> str:
    """WeChat's signature: sha1 of the sorted parts (token, timestamp, nonce[, encrypted body])."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def verify_url(config: WechatConfig, *, signature: str, timestamp: str, nonce: str, echostr: str) -> str:
    """WeChat's URL check: the echostr back when the signature is right."""
    if not _same(signature_of(config.callback_token, timestamp, nonce), signature):
        raise CallbackRejected("wrong signature", 403)
    return echostr


def _nonce_key(config: WechatConfig, timestamp: str, nonce: str) -> str:
    digest = hashlib.sha256(f"{config.account_id}|{timestamp}|{nonce}".encode()).hexdigest()[:32]
    return f"wechat_nonce_{digest}"


def _remember_nonce(seen: SessionStorage, config: WechatConfig, timestamp: str, nonce: str, body: bytes) -> None:
    """Refuse a (timestamp, nonce) already used with another body in the last 10 minutes; WeChat's
    own retries repeat the same body and pass (the store deduplicates them)."""
    key = _nonce_key(config, timestamp, nonce)
    body_hash = hashlib.sha256(body).hexdigest()
    before = seen.get(key)
    if before is not None and not _same(str(before), body_hash):
        raise CallbackRejected("nonce reused with another body (replay?)", 403)
    if before is None:
        seen.set(key, body_hash, MAX_AGE_S)


def open_push(
    config: WechatConfig,
    params: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    seen: SessionStorage | None = None,
) -> str:
    """The decrypted XML of a push (`CallbackRejected` for a bad signature, a replay or bad AES).

    With an EncodingAESKey configured only safe-mode pushes are accepted: a plain push's signature
    covers the token, timestamp and nonce but not the body, so anyone who saw one signature could
    post any body with it. (timestamp, nonce) pairs are remembered for `MAX_AGE_S` (`seen`: the
    shared token store) and refused when they come back with another body."""
    timestamp, nonce = params.get("timestamp", ""), params.get("nonce", "")
    if not _same(signature_of(config.callback_token, timestamp, nonce), params.get("signature", "")):
        raise CallbackRejected("wrong signature", 403)
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except ValueError:
        raise CallbackRejected("bad timestamp") from None
    if age > MAX_AGE_S:
        raise CallbackRejected("timestamp too old (replay?)", 403)
    encrypted = params.get("encrypt_type") == "aes"
    if config.callback_aes_key and not encrypted:
        raise CallbackRejected("plain push refused: the account is in safe mode (encrypt_type=aes)", 403)
    if encrypted and not config.callback_aes_key:
        raise CallbackRejected("encrypted push but no EncodingAESKey configured")
    if seen is None:
        seen = token_store(get_database().settings.broker_url)
    text = body.decode("utf-8", "replace")
    if not encrypted:
        _remember_nonce(seen, config, timestamp, nonce, body)
        return text
    try:
        envelope = xmltodict.parse(text).get("xml") or {}
        encrypt = str(envelope.get("Encrypt") or "")
    except Exception:
        raise CallbackRejected("malformed XML") from None
    if not _same(signature_of(config.callback_token, timestamp, nonce, encrypt), params.get("msg_signature", "")):
        raise CallbackRejected("wrong msg_signature", 403)
    _remember_nonce(seen, config, timestamp, nonce, body)  # only once the body is proven WeChat's
    crypto = WeChatCrypto(config.callback_token, config.callback_aes_key, config.app_id)
    try:
        return str(crypto.decrypt_message(text, params.get("msg_signature", ""), timestamp, nonce))
    except InvalidSignatureException:
        raise CallbackRejected("wrong msg_signature", 403) from None
    except Exception:  # wechatpy raises several types for bad base64/AES/appid
        raise CallbackRejected("cannot decrypt the push") from None


def parse(xml: str) -> dict[str, Any]:
    """The push as a flat dict of its fields (`CallbackRejected` for malformed XML)."""
    try:
        parsed = xmltodict.parse(xml)
    except Exception:
        raise CallbackRejected("malformed XML") from None
    root = parsed.get("xml") if isinstance(parsed, dict) else None
    if not isinstance(root, dict) or not root.get("FromUserName"):
        raise CallbackRejected("malformed XML")
    return {k: ("" if v is None else v) for k, v in root.items()}


def store(
    session: Session, config: WechatConfig, xml: str, payload: dict[str, Any], clock: Clock
) -> tuple[IntegrationEvent, bool]:
    """Store a push once: (event, True) the first time, (the stored event, False) for a retry."""
    key = hashlib.sha256(xml.encode()).hexdigest()
    event_name = str(payload.get("Event") or payload.get("MsgType") or "")[:60]
    try:
        with session.begin_nested():
            event = IntegrationEvent(
                workspace_id=config.workspace_id,
                source=EventSource.OFFICIAL_ACCOUNT,
                dedup_key=key,
                event=event_name,
                change_type=None,
                payload=payload,
                status=EventStatus.RECEIVED,
                received_at=clock.now(),
            )
            session.add(event)
            session.flush()
    except IntegrityError:
        session.execute(
            update(IntegrationEvent)
            .where(
                IntegrationEvent.workspace_id == config.workspace_id,
                IntegrationEvent.source == EventSource.OFFICIAL_ACCOUNT,
                IntegrationEvent.dedup_key == key,
            )
            .values(duplicates=IntegrationEvent.duplicates + 1)
            .execution_options(synchronize_session=False)
        )
        stored = session.scalar(
            select(IntegrationEvent).where(
                IntegrationEvent.workspace_id == config.workspace_id,
                IntegrationEvent.source == EventSource.OFFICIAL_ACCOUNT,
                IntegrationEvent.dedup_key == key,
            )
        )
        assert stored is not None
        return stored, False
    session.execute(
        update(WechatOfficialAccount)
        .where(WechatOfficialAccount.id == config.account_id)
        .values(last_event_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    return event, True


def note_error(session: Session, config: WechatConfig, error: BaseException | str, clock: Clock) -> None:
    """Record the account's latest error (secrets redacted) for the page."""
    session.execute(
        update(WechatOfficialAccount)
        .where(WechatOfficialAccount.id == config.account_id)
        .values(last_error=redact(str(error))[:1000], last_error_at=clock.now())
        .execution_options(synchronize_session=False)
    )


def note_rejection(session: Session, config: WechatConfig, error: str, clock: Clock) -> bool:
    """Record a rejected push as the last error unless one was recorded in the last minute
    (rejections come from anyone: they must not turn into a write per request). True if written."""
    now = clock.now()
    result = session.execute(
        update(WechatOfficialAccount)
        .where(
            WechatOfficialAccount.id == config.account_id,
            (WechatOfficialAccount.last_error_at.is_(None))
            | (WechatOfficialAccount.last_error_at <= now - REJECTION_NOTE_EVERY),
        )
        .values(last_error=redact(error)[:1000], last_error_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


UserInfo = Mapping[str, Any] | WecomError | NotConfigured
"""What `user/info` answered for a follow: its JSON, or the error (WeChat's, or no app secret)."""


def lookup(payload: Mapping[str, Any], config: WechatConfig, client: OfficialClient | None = None) -> UserInfo | None:
    """Ask `user/info` for the follower of a `subscribe` / `SCAN` push (None for other pushes).
    Called with no transaction open: the answer, or the error, is passed to `process`."""
    if payload.get("MsgType") != "event" or str(payload.get("Event") or "") not in ("subscribe", "SCAN"):
        return None
    openid = str(payload.get("FromUserName") or "")
    try:
        answer: Mapping[str, Any] = (client or client_for(config)).call(
            "GET", "user/info", params={"openid": openid, "lang": "zh_CN"}
        )
    except (WecomError, NotConfigured) as exc:
        return exc
    return answer


def process(
    session: Session, event: IntegrationEvent, config: WechatConfig, clock: Clock, info: UserInfo | None = None
) -> None:
    """Run one stored event (in a savepoint): PROCESSED / IGNORED, or FAILED with the error.
    `info` is `lookup`'s answer for the event (fetched before the transaction); a follow without
    it fails (retried by the sweep), WeChat is never called here."""
    event.attempts += 1
    try:
        with session.begin_nested():
            handled = _handle(session, event.payload, config, clock, info)
        event.status = EventStatus.PROCESSED if handled else EventStatus.IGNORED
        event.error = None
    except Exception as exc:  # recorded on the row and the account; the sweep retries
        if not isinstance(exc, WecomError):
            logger.exception("official account event %s failed", event.id)
        event.status = EventStatus.FAILED
        event.error = redact(str(exc))[:1000]
        note_error(session, config, exc, clock)
    event.processed_at = clock.now()
    session.flush()


def _at(payload: Mapping[str, Any], clock: Clock) -> datetime:
    """When siyu saw the event: processing follows receipt within the request, and WeChat's
    CreateTime (kept in the payload) comes from a clock siyu does not control."""
    return clock.now()


def _handle(
    session: Session, payload: dict[str, Any], config: WechatConfig, clock: Clock, info: UserInfo | None
) -> bool:
    if payload.get("MsgType") != "event":
        return False
    name = str(payload.get("Event") or "")
    if name == "subscribe":
        key = str(payload.get("EventKey") or "")
        follow(session, config, payload, clock, scene=key.removeprefix("qrscene_") or None, info=info)
        return True
    if name == "SCAN":
        follow(session, config, payload, clock, scene=str(payload.get("EventKey") or "") or None, info=info)
        return True
    if name == "unsubscribe":
        unfollow(session, config, payload, clock)
        return True
    if name == "TEMPLATESENDJOBFINISH":
        template_finished(session, config, payload, clock)
        return True
    return False


def _event_key(kind: str, config: WechatConfig, payload: Mapping[str, Any]) -> str:
    """The timeline idempotency key of one push (the same push processed again adds nothing)."""
    parts = [str(payload.get(k) or "") for k in ("FromUserName", "CreateTime", "Event", "EventKey")]
    return f"wechat-{kind}:" + hashlib.sha256("|".join([config.app_id, *parts]).encode()).hexdigest()[:40]


def _identity(config: WechatConfig, openid: str) -> str:
    return f"{config.app_id}:{openid}"


def follow(
    session: Session,
    config: WechatConfig,
    payload: Mapping[str, Any],
    clock: Clock,
    *,
    scene: str | None,
    info: UserInfo | None,
) -> Customer:
    """A follower (new or scanning again): customer with the openid (and unionid), consent granted
    (once: a later SCAN or re-delivery keeps the date the follow started), the live code's tags
    when `scene` is one of its states. Only a `subscribe` claims a landing-page scan and converts
    the experiment exposure: a follower's SCAN says nothing about which visitor just scanned.

    `info` is `lookup`'s answer (WeChat is not called while the transaction is open): a retryable
    WeChat error, `NotConfigured` or None (never looked up) is raised (the event stays FAILED for
    the sweep); another WeChat error is recorded and the follow goes on without the unionid."""
    openid = str(payload["FromUserName"])
    subscribing = str(payload.get("Event")) == "subscribe"
    at = _at(payload, clock)
    if info is None:
        raise WecomError("not fetched before processing", api="user/info", reason="not_fetched", retryable=True)
    if isinstance(info, NotConfigured) or (isinstance(info, WecomError) and info.retryable):
        raise info
    if isinstance(info, WecomError):
        note_error(session, config, info, clock)  # follow anyway, without the unionid
        info = {}
    identities = [(str(IdentityType.WECHAT_OPENID), _identity(config, openid))]
    if info.get("unionid"):
        identities.append((str(IdentityType.WECHAT_UNIONID), str(info["unionid"])))
    actor = Actor.system(config.workspace_id, label="official_account")
    # `user/info` has had no nickname or avatar since December 2021: names come from sns/userinfo.
    customer = ingest_customer(
        session,
        actor=actor,
        identities=identities,
        profile=ProfileInput(values={}),
        source="official_account",
        clock=clock,
        observed_at=at,
    ).customer
    consent = session.scalar(
        select(Consent.status).where(
            Consent.customer_id == customer.id, Consent.channel == ConsentChannel.OFFICIAL_ACCOUNT
        )
    )
    if consent != ConsentStatus.GRANTED:
        set_consent(
            session,
            actor=actor,
            customer_id=customer.id,
            channel=ConsentChannel.OFFICIAL_ACCOUNT,
            status=ConsentStatus.GRANTED,
            source="official_account",
            clock=clock,
            changed_at=at,
        )
    properties: dict[str, Any] = {"app_id": config.app_id, "event": str(payload.get("Event")), "scene": scene}
    decoded = decode_state(scene)
    code = (
        session.scalar(
            select(LiveCode).where(LiveCode.id == decoded.live_code_id, LiveCode.workspace_id == config.workspace_id)
        )
        if decoded
        else None
    )
    if code is not None and decoded is not None:
        channel = (
            session.scalar(
                select(Channel).where(Channel.id == decoded.channel_id, Channel.workspace_id == config.workspace_id)
            )
            if decoded.channel_id
            else None
        )
        if channel is not None and customer.first_channel is None:
            customer.first_channel = channel.name
        scan = (
            claim_scan(
                session,
                code=code,
                scan_id=None,
                staff_id=None,
                variant=decoded.variant,
                customer_id=customer.id,
                at=at,
                any_staff=True,
            )
            if subscribing
            else None
        )
        if scan is not None and code.experiment_id is not None and scan.variant is not None:
            convert(
                session, experiment_id=code.experiment_id, visitor_id=scan.visitor_id, at=at, customer_id=customer.id
            )
        tags = [
            tag_id
            for tag_id in session.scalars(select(LiveCodeTag.tag_id).where(LiveCodeTag.live_code_id == code.id)).all()
            if assign_tag(
                session, actor=actor, customer_id=customer.id, tag_id=tag_id, clock=clock, source=TagSource.RULE
            )
        ]
        properties.update(
            live_code_id=code.id,
            channel_id=channel.id if channel else None,
            channel=channel.name if channel else None,
            variant=decoded.variant,
            scan_id=scan.id if scan else None,
            tags_applied=tags,
        )
    system_event(
        session,
        customer,
        "wechat.followed",
        _event_key("follow", config, payload),
        at,
        clock,
        properties,
    )
    session.flush()
    return customer


def customer_of_openid(session: Session, config: WechatConfig, openid: str) -> Customer | None:
    """The customer holding this account's openid, or None."""
    return session.scalar(
        select(Customer)
        .join(Identity, Identity.customer_id == Customer.id)
        .where(
            Identity.workspace_id == config.workspace_id,
            Identity.type == IdentityType.WECHAT_OPENID,
            Identity.value == _identity(config, openid),
        )
    )


def withdraw(session: Session, config: WechatConfig, openid: str, source: str, clock: Clock) -> Customer | None:
    """The follower of `openid` can no longer be reached: official-account consent → unsubscribed
    (once; unknown openids and consents already withdrawn change nothing)."""
    customer = customer_of_openid(session, config, openid)
    if customer is None:
        return None
    status = session.scalar(
        select(Consent.status).where(
            Consent.customer_id == customer.id, Consent.channel == ConsentChannel.OFFICIAL_ACCOUNT
        )
    )
    if status != ConsentStatus.UNSUBSCRIBED:
        set_consent(
            session,
            actor=Actor.system(config.workspace_id, label="official_account"),
            customer_id=customer.id,
            channel=ConsentChannel.OFFICIAL_ACCOUNT,
            status=ConsentStatus.UNSUBSCRIBED,
            source=source,
            clock=clock,
            changed_at=clock.now(),
        )
    return customer


def unfollow(session: Session, config: WechatConfig, payload: Mapping[str, Any], clock: Clock) -> None:
    """A follower left: the official-account consent is withdrawn (unknown openids are ignored)."""
    customer = withdraw(session, config, str(payload["FromUserName"]), "official_account_unsubscribe", clock)
    if customer is None:
        return
    system_event(
        session,
        customer,
        "wechat.unfollowed",
        _event_key("unfollow", config, payload),
        _at(payload, clock),
        clock,
        {"app_id": config.app_id},
    )


def template_finished(session: Session, config: WechatConfig, payload: Mapping[str, Any], clock: Clock) -> int:
    """TEMPLATESENDJOBFINISH → the delivery of that msgid delivered or failed (`record_status`);
    "failed:user block" (the follower refused the account's messages) also withdraws the consent."""
    msgid = str(payload.get("MsgID") or payload.get("MsgId") or "")
    status = str(payload.get("Status") or "")
    if not msgid:
        return 0
    if status.replace(" ", "") == USER_BLOCK.replace(" ", "") and payload.get("FromUserName"):
        withdraw(session, config, str(payload["FromUserName"]), "official_account_user_block", clock)
    report = StatusReport(
        provider_message_id=msgid,
        status="delivered" if status == "success" else "failed",
        at=_at(payload, clock),
        error=None if status == "success" else status[:200],
        callback_key=f"oa:{msgid}:{status}"[:200],
    )
    accounts = session.scalars(
        select(ChannelAccount).where(
            ChannelAccount.workspace_id == config.workspace_id, ChannelAccount.kind == AdapterKind.OFFICIAL_ACCOUNT
        )
    ).all()
    return sum(record_status(session, account=account, reports=[report], clock=clock) for account in accounts)


def reclaim(session: Session, workspace_id: int, event_id: int, attempts: int) -> IntegrationEvent | None:
    """The stored event to process, locked, if it is still waiting (RECEIVED or FAILED) after
    `attempts` tries; None when another run processed it meanwhile (or holds its lock)."""
    return session.scalar(
        select(IntegrationEvent)
        .where(
            IntegrationEvent.id == event_id,
            IntegrationEvent.workspace_id == workspace_id,
            IntegrationEvent.source == EventSource.OFFICIAL_ACCOUNT,
            IntegrationEvent.status.in_([EventStatus.FAILED, EventStatus.RECEIVED]),
            IntegrationEvent.attempts == attempts,
        )
        .with_for_update(skip_locked=True)
    )


def retryable_events(session: Session, workspace_id: int, limit: int = 200) -> list[IntegrationEvent]:
    """FAILED events still under the attempt bound (oldest first), for the sweep job."""
    return list(
        session.scalars(
            select(IntegrationEvent)
            .where(
                IntegrationEvent.workspace_id == workspace_id,
                IntegrationEvent.source == EventSource.OFFICIAL_ACCOUNT,
                IntegrationEvent.status.in_([EventStatus.FAILED, EventStatus.RECEIVED]),
                IntegrationEvent.attempts < MAX_ATTEMPTS,
            )
            .order_by(IntegrationEvent.id)
            .limit(limit)
        )
    )
