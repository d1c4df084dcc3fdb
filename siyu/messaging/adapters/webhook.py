"""The generic signed webhook: one JSON POST per recipient to the operator's endpoint.

Request body: {"delivery_id", "idempotency_key", "customer_id", "address", "message"}.
Headers: `X-Siyu-Timestamp` (Unix seconds), `X-Siyu-Signature: sha256=<hex>` where hex is
HMAC-SHA256(secret, f"{timestamp}.".encode() + body) — the timestamp is signed with the body so
a captured request cannot be replayed later under a fresh timestamp — and `Idempotency-Key`.

Answers: 2xx → sent (provider id: the response JSON's "id", else the idempotency key);
408, 429, 5xx, timeouts and refused connections → retried with backoff; other 4xx → failed.

Status callbacks come back to `/integrations/messaging/{account_id}/status`, signed the same
way, with {"reports": [{"id", "status": "delivered"|"read"|"failed", "at"?, "error"?, "event_id"?}]}
(or one such object); a timestamp more than 5 minutes from now is rejected.

Settings: `url` (required), `timeout_s` (default 10). Credentials: `secret` (required).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from siyu.kit.clock import as_utc
from siyu.kit.errors import InvalidInput
from siyu.messaging.adapters.base import (
    CallbackError,
    Capabilities,
    Needs,
    Outcome,
    OutcomeKind,
    Outgoing,
    SendContext,
    StatusReport,
    callback_id,
    clean_text,
    redact,
    unexpected_error,
)
from siyu.messaging.callbacks import CallbackRequest
from siyu.models import ContentKind

SIGNATURE_HEADER = "X-Siyu-Signature"
TIMESTAMP_HEADER = "X-Siyu-Timestamp"
TOLERANCE_S = 300
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
"""Unix seconds; twelve digits reach the year 33658, and a longer number overflows a float."""
logger = logging.getLogger(__name__)
CALLBACK_ACK: dict[str, Any] = {}
_STATUSES = frozenset({"delivered", "read", "failed"})


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The `X-Siyu-Signature` value for a body sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
    """Raise `CallbackError` unless the signature matches and the timestamp is within 5 minutes."""
    timestamp = headers.get(TIMESTAMP_HEADER.lower(), "")
    signature = headers.get(SIGNATURE_HEADER.lower(), "")
    if not secret:
        raise CallbackError("no secret configured")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise CallbackError("missing or bad timestamp")
    if abs(now.timestamp() - int(timestamp)) > TOLERANCE_S:
        raise CallbackError("timestamp too far from now")
    # As bytes: compare_digest refuses str with non-ASCII characters, which a header may hold.
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode("utf-8", "replace")):
        raise CallbackError("bad signature")


def payload(item: Outgoing) -> bytes:
    body = {
        "delivery_id": item.delivery_id,
        "idempotency_key": item.idempotency_key,
        "customer_id": item.customer_id,
        "address": item.address,
        "message": dict(item.message),
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class WebhookAdapter:
    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.capabilities = Capabilities(
            max_batch=100,
            content_kinds=frozenset(ContentKind),
            needs=Needs.NOTHING,
            consent_channel=None,
        )

    def check(self, context: SendContext) -> None:
        url = str(self.settings.get("url") or "")
        if not url.startswith(("http://", "https://")):
            raise InvalidInput("url must be an http(s) URL", details={"field": "settings.url"})
        if not str(context.credentials.get("secret") or ""):
            raise InvalidInput("secret is required", details={"field": "credentials.secret"})

    def send(self, context: SendContext, batch: Sequence[Outgoing]) -> list[Outcome]:
        url = str(self.settings.get("url") or "")
        secret = str(context.credentials.get("secret") or "")
        timeout = float(self.settings.get("timeout_s") or 10)
        if not url.startswith(("http://", "https://")) or not secret:
            return [
                Outcome(i.delivery_id, OutcomeKind.FAILED, reason="bad_settings", error="url or secret missing")
                for i in batch
            ]
        outcomes: list[Outcome] = []
        for item in batch:
            try:
                body = payload(item)
            except (TypeError, ValueError) as exc:  # a message that is not JSON: this recipient only
                error = redact(str(exc))[:500]
                outcomes.append(Outcome(item.delivery_id, OutcomeKind.FAILED, reason="bad_message", error=error))
                continue
            timestamp = int(context.clock.now().timestamp())
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "User-Agent": "siyu-webhook/1",
                    TIMESTAMP_HEADER: str(timestamp),
                    SIGNATURE_HEADER: sign(secret, timestamp, body),
                    "Idempotency-Key": item.idempotency_key,
                },
            )
            outcomes.append(self._post(request, item, timeout))
        return outcomes

    def _post(self, request: urllib.request.Request, item: Outgoing, timeout: float) -> Outcome:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer = response.read(64 * 1024)
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
            kind = OutcomeKind.RETRY if status >= 500 or status in (408, 429) else OutcomeKind.FAILED
            return Outcome(item.delivery_id, kind, reason=f"http_{status}", error=f"HTTP {status}")
        except TimeoutError as exc:
            error = redact(str(exc))[:500] or "timed out"
            return Outcome(item.delivery_id, OutcomeKind.RETRY, reason="timeout", error=error)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            kind_reason = "timeout" if isinstance(reason, TimeoutError) else "connection_error"
            return Outcome(item.delivery_id, OutcomeKind.RETRY, reason=kind_reason, error=redact(str(exc))[:500])
        except http.client.HTTPException as exc:
            # A garbled or cut-off answer: the endpoint may have the message; the next try carries
            # the same Idempotency-Key.
            error = redact(f"{type(exc).__name__}: {exc}")[:500]
            return Outcome(item.delivery_id, OutcomeKind.RETRY, reason="bad_response", error=error)
        except ValueError as exc:  # a URL urllib cannot use ("http://host:port" with a bad port)
            error = redact(str(exc))[:500]
            return Outcome(item.delivery_id, OutcomeKind.FAILED, reason="bad_settings", error=error)
        except Exception as exc:  # a bug on our side: failing (not retrying) never sends a message twice
            error = unexpected_error(logger, exc)
            return Outcome(item.delivery_id, OutcomeKind.FAILED, reason="adapter_error", error=error)
        provider_id = item.idempotency_key
        try:
            parsed = json.loads(answer) if answer else None
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("id") not in (None, ""):
            provider_id = str(parsed["id"])[:100]
        return Outcome(item.delivery_id, OutcomeKind.SENT, provider_message_id=provider_id)


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(str(value)))
    except (ValueError, OverflowError):  # OverflowError: year 1 with a positive offset
        return None


def parse_status_callback(
    settings: Mapping[str, Any], credentials: Mapping[str, Any], request: CallbackRequest
) -> list[StatusReport]:
    """Verify the signature, then read {"reports": [...]} (or one report object)."""
    verify(str(credentials.get("secret") or ""), request.headers, request.body, request.now)
    try:
        data = json.loads(request.body)
    except (ValueError, RecursionError) as exc:  # ValueError: also bytes that are not UTF-8
        raise CallbackError("the body is not JSON") from exc
    rows = data.get("reports", [data]) if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise CallbackError("expected a list of reports")
    reports = []
    for row in rows:
        # Rows that cannot name one of our messages are skipped, not refused: the rest still count.
        if not isinstance(row, dict):
            continue
        message_id, status = callback_id(row.get("id")), row.get("status")
        if message_id is None or not isinstance(status, str) or status not in _STATUSES:
            continue
        key = clean_text(row.get("event_id") or f"{message_id}:{status}", 200)
        reports.append(
            StatusReport(
                provider_message_id=message_id,
                status=status,
                at=_parse_time(row.get("at")),
                error=clean_text(row["error"]) if row.get("error") else None,
                callback_key=key,
            )
        )
    return reports


def build(settings: dict[str, Any]) -> WebhookAdapter:
    return WebhookAdapter(settings)
