"""SMS through Tencent Cloud (腾讯云短信, sms 2021-01-11) with the official SDK.

`SendSms` takes one template parameter list for up to 200 numbers, so recipients whose rendered
parameters are identical share a call; personalised parameters (a name, a short link) mean one
call per recipient. `SendStatusSet` answers per number.

Settings: `sdk_app_id` and `sign_name` (required), `template_id` (default when the content names
none), `region` (default ap-guangzhou), `endpoint` (default sms.tencentcloudapi.com), `protocol`
("https"; tests use "http"), `timeout_s` (default 10), `link_param` (the template position, e.g.
"3", that receives the recipient's short link when the body does not set it; default none).
Template parameters are the body's `key=value` lines; keys are positions ("1=…", "2=…") and are
sent in numeric order. Credentials: `secret_id`, `secret_key`; `callback_token` for status reports.

Status reports: set the SMS console's 回调地址 to
`/integrations/messaging/{account_id}/status?token=<callback_token>`.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models, sms_client

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
MAX_NUMBERS = 200
DEFAULT_ENDPOINT = "sms.tencentcloudapi.com"
CALLBACK_ACK = {"result": 0, "errmsg": "OK"}
"""The answer Tencent Cloud's status callback expects."""
_CHINA = timezone(timedelta(hours=8))
_RETRY_PREFIXES = ("InternalError", "RequestLimitExceeded", "ClientNetworkError", "ServerNetworkError")


def template_params(message: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """The positional parameters: the body's `key=value` lines (numeric keys in order)."""
    params = {str(k): str(v) for k, v in (message.get("params") or {}).items()}
    link_param = str(settings.get("link_param") or "")
    if link_param and message.get("link") and link_param not in params:
        params[link_param] = str(message["link"])
    keys = list(params)
    if all(k.isdigit() for k in keys):
        keys.sort(key=int)
    return [params[k] for k in keys]


def classify_code(code: str) -> tuple[OutcomeKind, str]:
    """A per-number or per-call error code → (outcome, reason)."""
    if code.startswith("LimitExceeded"):
        return OutcomeKind.REJECTED, "platform_capped"
    if code.startswith(_RETRY_PREFIXES):
        return OutcomeKind.RETRY, code[:30]
    return OutcomeKind.FAILED, code[:30]


def _client(settings: Mapping[str, Any], credentials: Mapping[str, Any]) -> sms_client.SmsClient:
    profile = HttpProfile(
        protocol=str(settings.get("protocol") or "https"),
        endpoint=str(settings.get("endpoint") or DEFAULT_ENDPOINT),
        reqTimeout=int(float(settings.get("timeout_s") or 10)),
    )
    return sms_client.SmsClient(
        credential.Credential(str(credentials.get("secret_id") or ""), str(credentials.get("secret_key") or "")),
        str(settings.get("region") or "ap-guangzhou"),
        ClientProfile(httpProfile=profile),
    )


class TencentSmsAdapter:
    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.capabilities = Capabilities(
            max_batch=MAX_NUMBERS,
            content_kinds=frozenset({ContentKind.TEXT, ContentKind.LINK}),
            needs=Needs.PHONE,
            consent_channel=ConsentChannel.SMS,
        )

    def check(self, context: SendContext) -> None:
        for name in ("sdk_app_id", "sign_name"):
            if not str(self.settings.get(name) or "").strip():
                raise InvalidInput(f"{name} is required", details={"field": f"settings.{name}"})
        for name in ("secret_id", "secret_key"):
            if not str(context.credentials.get(name) or "").strip():
                raise InvalidInput(f"{name} is required", details={"field": f"credentials.{name}"})

    def send(self, context: SendContext, batch: Sequence[Outgoing]) -> list[Outcome]:
        """One `SendSms` per template and parameter list, each number in at most one call."""
        try:
            client = _client(self.settings, context.credentials)
        except (TypeError, ValueError) as exc:  # settings the form did not check (timeout_s)
            error = redact(str(exc))[:500]
            return [Outcome(i.delivery_id, OutcomeKind.FAILED, reason="bad_settings", error=error) for i in batch]
        outcomes: list[Outcome] = []
        groups: dict[tuple[str, tuple[str, ...]], list[Outgoing]] = defaultdict(list)
        for item in batch:
            template = item.message.get("sms_template_code") or self.settings.get("template_id")
            if not item.address or not template:
                reason = "no_phone" if not item.address else "no_sms_template"
                outcomes.append(Outcome(item.delivery_id, OutcomeKind.FAILED, reason=reason, error=reason))
                continue
            try:
                params = tuple(template_params(item.message, self.settings))
            except (AttributeError, TypeError, ValueError) as exc:  # malformed parameters: this recipient only
                error = redact(str(exc))[:500]
                outcomes.append(Outcome(item.delivery_id, OutcomeKind.FAILED, reason="bad_message", error=error))
                continue
            groups[(str(template), params)].append(item)
        for (template, params), items in groups.items():
            for start in range(0, len(items), MAX_NUMBERS):
                outcomes += self._send_one(client, template, list(params), items[start : start + MAX_NUMBERS])
        return outcomes

    def _send_one(
        self, client: sms_client.SmsClient, template: str, params: list[str], items: Sequence[Outgoing]
    ) -> list[Outcome]:
        request = models.SendSmsRequest()
        request.SmsSdkAppId = str(self.settings.get("sdk_app_id") or "")
        request.SignName = str(self.settings.get("sign_name") or "")
        request.TemplateId = template
        request.TemplateParamSet = params
        request.PhoneNumberSet = [str(i.address) for i in items]
        if len(items) == 1:
            request.SessionContext = items[0].idempotency_key
        try:
            response = client.SendSms(request)
        except TencentCloudSDKException as exc:
            code = str(exc.get_code() or "")
            text = redact(str(exc.get_message() or code))[:500]
            if code == "ClientNetworkError":
                reason = "timeout" if "timed out" in text.lower() else "connection_error"
                return [Outcome(i.delivery_id, OutcomeKind.RETRY, reason=reason, error=text) for i in items]
            if code == "ServerNetworkError":
                return [Outcome(i.delivery_id, OutcomeKind.RETRY, reason="server_error", error=text) for i in items]
            kind, reason = classify_code(code)
            return [Outcome(i.delivery_id, kind, reason=reason, error=f"{code}: {text}"[:500]) for i in items]
        except Exception as exc:  # a bug on our side: failing (not retrying) never sends a message twice
            error = unexpected_error(logger, exc)
            return [Outcome(i.delivery_id, OutcomeKind.FAILED, reason="adapter_error", error=error) for i in items]
        by_number = {str(s.PhoneNumber): s for s in response.SendStatusSet or []}
        outcomes = []
        for item in items:
            status = by_number.get(str(item.address))
            if status is None:
                outcomes.append(Outcome(item.delivery_id, OutcomeKind.FAILED, reason="no_status", error="not answered"))
            elif status.Code == "Ok":
                outcomes.append(Outcome(item.delivery_id, OutcomeKind.SENT, provider_message_id=status.SerialNo))
            else:
                kind, reason = classify_code(str(status.Code))
                error = redact(f"{status.Code}: {status.Message}")[:500]
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
    """Tencent's status callback: a JSON array of {"sid", "report_status", "errmsg", "user_receive_time", …}."""
    check_token(settings, credentials, request)
    try:
        rows = json.loads(request.body)
    except (ValueError, RecursionError) as exc:  # ValueError: also bytes that are not UTF-8
        raise CallbackError("the body is not JSON") from exc
    if not isinstance(rows, list):
        raise CallbackError("a status callback is a JSON array")
    reports = []
    for row in rows:
        # Rows that cannot name one of our messages are skipped, not refused: the rest still count.
        message_id = callback_id(row.get("sid")) if isinstance(row, dict) else None
        if message_id is None:
            continue
        status = "delivered" if row.get("report_status") == "SUCCESS" else "failed"
        reports.append(
            StatusReport(
                provider_message_id=message_id,
                status=status,
                at=_report_time(row.get("user_receive_time")),
                error=None if status == "delivered" else clean_text(row.get("errmsg") or "undelivered"),
                callback_key=f"{message_id}:{status}",
            )
        )
    return reports


def build(settings: dict[str, Any]) -> TencentSmsAdapter:
    return TencentSmsAdapter(settings)
