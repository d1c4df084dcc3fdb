"""Template messages (模板消息) of the workspace's official account as a touch channel.

Settings of the channel account: `template_id` (required) and `fields` — the template's keys
mapped to a part of the rendered message (`title`, `text`, `description`, `subject`, `link`,
`sent_at`) or to literal text ("=..."), as a JSON object (or its text, from the form); default
{"thing1": "title", "thing2": "text", "time3": "sent_at"}. WeChat's 2023 template rules dropped
`first`, `remark` and colours (they are no longer shown), and cap values by the key's type
(`thing` 20 characters, `character_string` 32, `phrase` 5…): values are cut to fit.
The message's `link` becomes the template's `url`; a `miniprogram` {appid, pagepath} is passed on.
The app id and secret are the workspace's official account (`/integrations/wechat`), not the
channel account's credentials. The address is the follower's WECHAT_OPENID identity of the
account's current app ("<appid>:<openid>", routed by `siyu.messaging.reach`); an openid of another
app id is never used.

Answers: msgid → sent (provider id = msgid; TEMPLATESENDJOBFINISH later says delivered/failed);
43004 (not following) → rejected "not_following" and the official-account consent withdrawn;
40003 (unknown openid) → failed; rate limits, system busy and transport errors → retried; other
errcodes → failed with the code.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers.service.timeline import set_consent
from siyu.db import get_database
from siyu.integrations.wechat.client import OfficialClient, client_for
from siyu.integrations.wechat.config import WechatConfig, load_account
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.messaging.adapters.base import (
    Capabilities,
    Needs,
    Outcome,
    OutcomeKind,
    Outgoing,
    SendContext,
    unexpected_error,
)
from siyu.models import Consent, ConsentChannel, ConsentStatus, ContentKind, Identity, IdentityType
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
DEFAULT_FIELDS = {"thing1": "title", "thing2": "text", "time3": "sent_at"}
MESSAGE_PARTS = frozenset({"title", "text", "description", "subject", "link", "sent_at"})
TEMPLATE_KEY = re.compile(r"^[a-z_]{1,32}[0-9]{0,3}$")
VALUE_LIMITS = {"thing": 20, "character_string": 32, "phrase": 5, "name": 10, "number": 32, "amount": 32}
CHINA = timezone(timedelta(hours=8))


def parse_fields(raw: Any) -> dict[str, str]:
    """The `fields` setting as {template key: message part or "=literal"}; `InvalidInput` naming
    `settings.fields` when it is not a JSON object of that shape. Empty → the default."""
    if raw in (None, "", {}):
        return dict(DEFAULT_FIELDS)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InvalidInput("fields: not valid JSON", details={"field": "settings.fields"}) from None
    if not isinstance(raw, dict) or not raw:
        raise InvalidInput("fields: a JSON object of template keys", details={"field": "settings.fields"})
    fields: dict[str, str] = {}
    for key, source in raw.items():
        if not isinstance(key, str) or not TEMPLATE_KEY.match(key):
            raise InvalidInput(f"fields: bad template key {key!r}", details={"field": "settings.fields"})
        if not isinstance(source, str) or not (source.startswith("=") or source in MESSAGE_PARTS):
            raise InvalidInput(
                f"fields.{key}: one of {', '.join(sorted(MESSAGE_PARTS))} or =literal",
                details={"field": "settings.fields"},
            )
        fields[key] = source
    return fields


def _limit(key: str) -> int:
    kind = key.rstrip("0123456789")
    return VALUE_LIMITS.get(kind, 200)


def template_data(fields: Mapping[str, str], message: Mapping[str, Any]) -> dict[str, Any]:
    """The template's `data` from the rendered message: {"key": {"value": ...}}."""
    data: dict[str, Any] = {}
    for key, source in fields.items():
        value = source[1:] if source.startswith("=") else str(message.get(source) or "")
        data[key] = {"value": value[: _limit(key)]}
    return data


@contextmanager
def _reading(context: SendContext) -> Iterator[Session]:
    """The caller's session when it gave one (checks, in-transaction use), else a short read-only
    transaction of our own: external sends get no session."""
    if context.session is not None:
        yield context.session
        return
    with get_database().transaction(read_only=True) as session:
        bind_workspace(session, context.account.workspace_id)
        yield session


class OfficialAccountAdapter:
    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.fields = parse_fields(self.settings.get("fields"))  # refused at save (`_check_settings`)
        self.capabilities = Capabilities(
            max_batch=100,
            content_kinds=frozenset({ContentKind.TEXT, ContentKind.LINK, ContentKind.MINIPROGRAM}),
            needs=Needs.WECHAT_OPENID,
            consent_channel=ConsentChannel.OFFICIAL_ACCOUNT,
        )

    def check(self, context: SendContext) -> None:
        if not str(self.settings.get("template_id") or "").strip():
            raise InvalidInput("template_id is required", details={"field": "settings.template_id"})
        parse_fields(self.settings.get("fields"))
        try:
            with _reading(context) as session:
                load_account(session, context.account.workspace_id)
        except NotConfigured as exc:
            raise InvalidInput(
                f"the workspace's official account is not set up (/integrations/wechat): {exc}",
                details={"field": "official_account"},
            ) from exc

    def _openids(self, session: Session, config: WechatConfig, batch: Sequence[Outgoing]) -> dict[int, str]:
        prefix = config.app_id + ":"
        rows = session.execute(
            select(Identity.customer_id, Identity.value).where(
                Identity.workspace_id == config.workspace_id,
                Identity.type == IdentityType.WECHAT_OPENID,
                Identity.customer_id.in_([i.customer_id for i in batch]),
                Identity.value.startswith(prefix, autoescape=True),
            )
        )
        return {cid: value[len(prefix) :] for cid, value in rows}

    def send(self, context: SendContext, batch: Sequence[Outgoing]) -> list[Outcome]:
        template_id = str(self.settings.get("template_id") or "").strip()
        try:
            with _reading(context) as session:
                config = load_account(session, context.account.workspace_id)
                unaddressed = [i for i in batch if not i.address]
                looked_up = self._openids(session, config, unaddressed) if unaddressed else {}
            client = client_for(config)
        except NotConfigured as exc:
            return [Outcome(i.delivery_id, OutcomeKind.FAILED, reason="not_configured", error=str(exc)) for i in batch]
        if not template_id:
            return [
                Outcome(i.delivery_id, OutcomeKind.FAILED, reason="bad_settings", error="template_id missing")
                for i in batch
            ]
        prefix = config.app_id + ":"
        outcomes = []
        for item in batch:
            if item.address:
                openid = item.address[len(prefix) :] if item.address.startswith(prefix) else None
            else:
                openid = looked_up.get(item.customer_id)
            outcomes.append(self._send_one(client, template_id, item, openid, context.clock))
        blocked = [item for item, o in zip(batch, outcomes, strict=True) if o.reason == "not_following"]
        if blocked:
            _withdraw(context, config, blocked)
        return outcomes

    def _send_one(
        self, client: OfficialClient, template_id: str, item: Outgoing, openid: str | None, clock: Clock
    ) -> Outcome:
        if not openid:
            return Outcome(
                item.delivery_id, OutcomeKind.FAILED, reason="no_openid", error="no follower openid of this account"
            )
        message = dict(item.message)
        message.setdefault("sent_at", clock.now().astimezone(CHINA).strftime("%Y-%m-%d %H:%M"))
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": template_data(self.fields, message),
        }
        if message.get("link"):
            body["url"] = str(message["link"])
        mini = message.get("miniprogram")
        if isinstance(mini, dict) and mini.get("appid"):
            body["miniprogram"] = {"appid": mini["appid"], "pagepath": mini.get("pagepath") or mini.get("page") or ""}
        try:
            answer = client.call("POST", "message/template/send", data=body)
        except WecomError as exc:
            if exc.code == 43004:
                return Outcome(item.delivery_id, OutcomeKind.REJECTED, reason="not_following", error=str(exc))
            kind = OutcomeKind.RETRY if exc.retryable else OutcomeKind.FAILED
            return Outcome(item.delivery_id, kind, reason=exc.reason[:30], error=str(exc)[:500])
        except Exception as exc:  # a bug on our side: this recipient fails, the batch goes on
            return Outcome(item.delivery_id, OutcomeKind.FAILED, reason="error", error=unexpected_error(logger, exc))
        return Outcome(item.delivery_id, OutcomeKind.SENT, provider_message_id=str(answer.get("msgid")))


def _withdraw(context: SendContext, config: WechatConfig, items: Sequence[Outgoing]) -> None:
    """43004: WeChat says they no longer follow (the unsubscribe push was missed): withdraw the
    consent in a transaction of our own (the send's session is not ours to write through)."""
    try:
        with get_database().transaction() as session:
            bind_workspace(session, config.workspace_id)
            actor = Actor.system(config.workspace_id, label="official_account")
            for customer_id in sorted({i.customer_id for i in items}):
                status = session.scalar(
                    select(Consent.status).where(
                        Consent.customer_id == customer_id, Consent.channel == ConsentChannel.OFFICIAL_ACCOUNT
                    )
                )
                if status == ConsentStatus.UNSUBSCRIBED:
                    continue
                set_consent(
                    session,
                    actor=actor,
                    customer_id=customer_id,
                    channel=ConsentChannel.OFFICIAL_ACCOUNT,
                    status=ConsentStatus.UNSUBSCRIBED,
                    source="official_account_43004",
                    clock=context.clock,
                )
    except Exception as exc:  # the outcomes stand; the next send meets 43004 again
        unexpected_error(logger, exc)


def build(settings: Mapping[str, Any]) -> OfficialAccountAdapter:
    """The adapter of an `official_account` channel account."""
    return OfficialAccountAdapter(settings)
