"""SMS through Aliyun (阿里云短信, dysmsapi 2017-05-25) with the official SDK.

One `SendSms` per recipient: each message carries its own template parameters (the customer's
name, a per-recipient short link), and `SendSms` answers per call, so every recipient gets its own
outcome and `BizId` (`SendBatchSms` would answer once for the whole batch).

Settings: `sign_name` (required), `template_code` (default when the content names none),
`endpoint` (default dysmsapi.aliyuncs.com), `protocol` ("https"; tests use "http"), `timeout_s`
(default 10), `link_param` (default "link": the template parameter that receives the recipient's
short link when the body's `key=value` lines do not set it; "" turns this off).
Credentials: `access_key_id`, `access_key_secret`; `callback_token` for status reports.

Status reports: configure Aliyun's SmsReport HTTP push to
`/integrations/messaging/{account_id}/status?token=<callback_token>`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from alibabacloud_dysmsapi20170525 import models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi import utils_models
from darabonba.exceptions import ResponseException
from darabonba.runtime import RuntimeOptions
from Tea.exceptions import TeaException

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
from siyu.messaging.callbacks import CallbackRequest, check_token
from siyu.models import ConsentChannel, ContentKind

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "dysmsapi.aliyuncs.com"
CAPPED_CODES = frozenset({"isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL"})
"""Aliyun's own per-number frequency limits: the platform refused, like a cap."""
CALLBACK_ACK = {"code": 0, "msg": "成功"}
"""The answer Aliyun's report push expects."""
_CHINA = timezone(timedelta(hours=8))


def phone_number(address: str) -> str:
    """Aliyun wants mainland numbers without a country code and others as digits with one."""
    digits = address.strip().replace(" ", "")
    if digits.startswith("+86"):
        return digits[3:]
    return digits.removeprefix("+")


def template_params(message: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, str]:
    """The template's parameters: the body's `key=value` lines, plus the short link."""
    params = {str(k): str(v) for k, v in (message.get("params") or {}).items()}
    link_param = str(settings.get("link_param", "link") or "")
    if link_param and message.get("link") and link_param not in params:
        params[link_param] = str(message["link"])
    return params


def _client(settings: Mapping[str, Any], credentials: Mapping[str, Any]) -> Client:
    timeout_ms = int(float(settings.get("timeout_s") or 10) * 1000)
    return Client(
        utils_models.Config(
            access_key_id=str(credentials.get("access_key_id") or ""),
            access_key_secret=str(credentials.get("access_key_secret") or ""),
            endpoint=str(settings.get("endpoint") or DEFAULT_ENDPOINT),
            protocol=str(settings.get("protocol") or "https"),
            read_timeout=timeout_ms,
            connect_timeout=timeout_ms,
        )
    )


def classify_code(code: str) -> tuple[OutcomeKind, str]:
    """A response `Code` other than OK → (outcome, reason)."""
    if code in CAPPED_CODES:
        return OutcomeKind.REJECTED, "platform_capped"
    if code.startswith(("Throttling", "isp.SYSTEM_ERROR", "ServiceUnavailable", "InternalError")):
        return OutcomeKind.RETRY, code[:30]
    return OutcomeKind.FAILED, code[:30]


def _classify_exception(exc: Exception) -> tuple[OutcomeKind, str, str]:
    if isinstance(exc, ResponseException):
        status = int(getattr(exc, "status_code", 0) or 0)
        code = str(getattr(exc, "code", "") or f"http_{status}")
        message = redact(str(getattr(exc, "message", "") or code))[:500]
        if status >= 500 or status in (408, 429) or code.startswith("Throttling"):
            return OutcomeKind.RETRY, f"http_{status}" if status >= 500 else code[:30], message
        return OutcomeKind.FAILED, code[:30], message
    if isinstance(exc, TeaException):  # UnretryableException: the request never got an answer
        text = redact(str(getattr(exc, "inner_exception", None) or exc))
        return OutcomeKind.RETRY, "timeout" if "timed out" in text.lower() else "connection_error", text[:500]
    # Anything else is a bug on our side; failing (not retrying) never sends a message twice.
    return OutcomeKind.FAILED, "adapter_error", unexpected_error(logger, exc)


class AliyunSmsAdapter:
    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.capabilities = Capabilities(
            max_batch=100,
            content_kinds=frozenset({ContentKind.TEXT, ContentKind.LINK}),
            needs=Needs.PHONE,
            consent_channel=ConsentChannel.SMS,
        )

    def check(self, context: SendContext) -> None:
        if not str(self.settings.get("sign_name") or "").strip():
            raise InvalidInput("sign_name is required", details={"field": "settings.sign_name"})
        for name in ("access_key_id", "access_key_secret"):
            if not str(context.credentials.get(name) or "").strip():
                raise InvalidInput(f"{name} is required", details={"field": f"credentials.{name}"})

    def send(self, context: SendContext, batch: Sequence[Outgoing]) -> list[Outcome]:
        """One `SendSms` per recipient, each at most once."""
        try:
            client = _client(self.settings, context.credentials)
            timeout_ms = int(float(self.settings.get("timeout_s") or 10) * 1000)
        except (TypeError, ValueError) as exc:  # settings the form did not check (timeout_s)
            error = redact(str(exc))[:500]
            return [Outcome(i.delivery_id, OutcomeKind.FAILED, reason="bad_settings", error=error) for i in batch]
        runtime = RuntimeOptions(read_timeout=timeout_ms, connect_timeout=timeout_ms)
        outcomes: list[Outcome] = []
        for index, item in enumerate(batch):
            template = item.message.get("sms_template_code") or self.settings.get("template_code")
            if not item.address or not template:
                reason = "no_phone" if not item.address else "no_sms_template"
                outcomes.append(Outcome(item.delivery_id, OutcomeKind.FAILED, reason=reason, error=reason))
                continue
            try:
                request = models.SendSmsRequest(
                    phone_numbers=phone_number(item.address),
                    sign_name=str(self.settings.get("sign_name") or ""),
                    template_code=str(template),
                    template_param=json.dumps(template_params(item.message, self.settings), ensure_ascii=False),
                    out_id=item.idempotency_key,
                )
            except (AttributeError, TypeError, ValueError) as exc:  # malformed parameters: this recipient only
                error = redact(str(exc))[:500]
                outcomes.append(Outcome(item.delivery_id, OutcomeKind.FAILED, reason="bad_message", error=error))
                continue
            try:
                body = client.send_sms_with_options(request, runtime).body
            except Exception as exc:
                kind, reason, error = _classify_exception(exc)
                # A transport or account error (per-recipient errors come as a `Code` in a 200
                # answer) hits every call alike: stop and apply it to the rest, none of them sent.
                outcomes += [Outcome(i.delivery_id, kind, reason=reason, error=error) for i in batch[index:]]
                return outcomes
            code = str(getattr(body, "code", None) or "")
            if code == "OK":
                outcomes.append(Outcome(item.delivery_id, OutcomeKind.SENT, provider_message_id=body.biz_id))
                continue
            if not code:
                # An answer without a code: the message may have gone out, so it is not tried again.
                outcomes.append(
                    Outcome(item.delivery_id, OutcomeKind.FAILED, reason="bad_response", error="no Code in the answer")
                )
                continue
            kind, reason = classify_code(code)
            error = redact(f"{code}: {body.message}")[:500]
            outcomes.append(Outcome(item.delivery_id, kind, reason=reason, error=error))
        return outcomes


def _report_time(value: Any) -> datetime | None:
    try:
        return datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=_CHINA).astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: "0001-01-01 00:00:00" is before year 1 in UTC
        return None


def parse_status_callback(
    settings: Mapping[str, Any], credentials: Mapping[str, Any], request: CallbackRequest
) -> list[StatusReport]:
    """Aliyun's SmsReport push: a JSON array of {"biz_id", "success", "err_code", "report_time", …}."""
    check_token(settings, credentials, request)
    try:
        rows = json.loads(request.body)
    except (ValueError, RecursionError) as exc:  # ValueError: also bytes that are not UTF-8
        raise CallbackError("the body is not JSON") from exc
    if not isinstance(rows, list):
        raise CallbackError("an SmsReport push is a JSON array")
    reports = []
    for row in rows:
        # Rows that cannot name one of our messages are skipped, not refused: the rest still count.
        message_id = callback_id(row.get("biz_id")) if isinstance(row, dict) else None
        if message_id is None:
            continue
        status = "delivered" if row.get("success") in (True, "true") else "failed"
        reports.append(
            StatusReport(
                provider_message_id=message_id,
                status=status,
                at=_report_time(row.get("report_time")),
                error=None if status == "delivered" else clean_text(row.get("err_code") or "undelivered"),
                callback_key=f"{message_id}:{status}",
            )
        )
    return reports


def build(settings: dict[str, Any]) -> AliyunSmsAdapter:
    return AliyunSmsAdapter(settings)
