"""Provider status reports: a later word on a sent message (delivered, read, failed).

Adapters whose providers push reports expose
`parse_status_callback(settings, credentials, request: CallbackRequest) -> list[StatusReport]`
(raising `CallbackError` for a bad signature or token) and `CALLBACK_ACK`, the body the provider
expects back. `record_status` applies reports to deliveries found by (channel account, provider
message id), each report once: a `DeliveryCallback` row per (account, callback key) makes a
replayed or re-sent report change nothing.
"""

from __future__ import annotations

import hmac
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock, as_utc
from siyu.kit.errors import DomainError, NotFound
from siyu.messaging import admission
from siyu.messaging.adapters.base import CallbackError, StatusReport
from siyu.messaging.crypto import decrypt_credentials
from siyu.models import AdapterKind, ChannelAccount, Delivery, DeliveryCallback, DeliveryStatus
from siyu.workspaces.scope import bind_workspace

_CALLBACK_MODULES = {
    AdapterKind.WEBHOOK: "siyu.messaging.adapters.webhook",
    AdapterKind.SMS_ALIYUN: "siyu.messaging.adapters.sms_aliyun",
    AdapterKind.SMS_TENCENT: "siyu.messaging.adapters.sms_tencent",
}
"""Kinds whose providers push status reports (WeCom results are polled, see `tasks`)."""
TOKEN_HEADER = "x-siyu-token"


@dataclass(frozen=True)
class CallbackRequest:
    """What a provider sent: header names lower-cased, the query string, the raw body, and when."""

    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    now: datetime


def check_token(settings: Mapping[str, Any], credentials: Mapping[str, Any], request: CallbackRequest) -> None:
    """For providers that cannot sign: the account's `callback_token` (credentials, or settings)
    must come as `?token=` or an `X-Siyu-Token` header."""
    expected = str(credentials.get("callback_token") or settings.get("callback_token") or "")
    if not expected:
        raise CallbackError("status callbacks are not configured for this account (no callback_token)")
    given = request.query.get("token") or request.headers.get(TOKEN_HEADER) or ""
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise CallbackError("bad callback token")


def handle_callback(
    session: Session, *, account_id: int, request: CallbackRequest, clock: Clock
) -> tuple[int, dict[str, Any]]:
    """Verify and record one provider push; returns (reports recorded, body to answer with).
    Raises `NotFound` for an unknown account or a kind without callbacks, `CallbackError` for a
    push that cannot be trusted (nothing is written then)."""
    account = session.get(ChannelAccount, account_id)
    if account is None or AdapterKind(account.kind) not in _CALLBACK_MODULES:
        raise NotFound("no such channel account taking status callbacks")
    bind_workspace(session, account.workspace_id)
    module = importlib.import_module(_CALLBACK_MODULES[AdapterKind(account.kind)])
    try:
        credentials = decrypt_credentials(account.credentials_encrypted)
    except DomainError as exc:
        raise CallbackError("the account's credentials cannot be read") from exc
    reports = module.parse_status_callback(dict(account.settings or {}), credentials, request)
    recorded = record_status(session, account=account, reports=reports, clock=clock)
    return recorded, dict(module.CALLBACK_ACK)


def record_status(session: Session, *, account: ChannelAccount, reports: Sequence[StatusReport], clock: Clock) -> int:
    """Apply status reports to the account's deliveries; returns how many were new and matched.
    A report for an unknown message id is ignored; a report seen before changes nothing."""
    now = clock.now()
    recorded = 0
    releases: list[Delivery] = []
    for report in reports:
        key = (report.callback_key or f"{report.provider_message_id}:{report.status}")[:200]
        seen = session.scalar(
            select(DeliveryCallback.id).where(
                DeliveryCallback.channel_account_id == account.id, DeliveryCallback.callback_key == key
            )
        )
        if seen is not None:
            continue
        delivery = session.scalar(
            select(Delivery)
            .where(
                Delivery.workspace_id == account.workspace_id,
                Delivery.channel_account_id == account.id,
                Delivery.provider_message_id == report.provider_message_id,
            )
            .with_for_update()
        )
        if delivery is None:
            continue
        try:
            # The unique key settles a race between two copies of the same report.
            with session.begin_nested():
                session.add(
                    DeliveryCallback(
                        workspace_id=account.workspace_id,
                        channel_account_id=account.id,
                        callback_key=key,
                        delivery_id=delivery.id,
                        status=report.status[:20],
                        payload={
                            "provider_message_id": report.provider_message_id,
                            "status": report.status,
                            "at": report.at.isoformat() if report.at else None,
                            "error": report.error,
                        },
                        received_at=now,
                    )
                )
        except IntegrityError:
            continue
        apply_report(session, delivery, report, clock, releases)
        recorded += 1
    admission.release_slots(session, releases, clock)
    session.flush()
    return recorded


def apply_report(
    session: Session, delivery: Delivery, report: StatusReport, clock: Clock, releases: list[Delivery]
) -> None:
    """Move a delivery forward (sent → delivered → read) or to failed; never backwards. A failed
    delivery joins `releases`, whose cap slots the caller gives back at the end."""
    at = as_utc(report.at) if report.at else clock.now()
    if report.status in ("delivered", "read"):
        if delivery.delivered_at is None:
            delivery.delivered_at = at
        if report.status == "read" and delivery.read_at is None:
            delivery.read_at = at
        if delivery.status in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.SENDING):
            delivery.status = DeliveryStatus.READ if delivery.read_at else DeliveryStatus.DELIVERED
    elif report.status == "failed" and delivery.status in (DeliveryStatus.SENT, DeliveryStatus.SENDING):
        delivery.status, delivery.reason = DeliveryStatus.FAILED, "undelivered"
        delivery.error = (report.error or "")[:500] or None
        releases.append(delivery)
