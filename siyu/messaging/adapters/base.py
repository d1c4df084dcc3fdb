"""The interface every channel adapter implements, and the outcomes a send reports."""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.models import ChannelAccount, ConsentChannel, ContentKind


class Needs(StrEnum):
    """What a customer must have for an adapter to reach them."""

    NOTHING = "nothing"
    PHONE = "phone"
    EMAIL = "email"
    WECOM_FRIEND = "wecom_friend"
    """An open friend edge with a staff member who has a WeCom user id, and an external_userid."""
    WECHAT_OPENID = "wechat_openid"
    """A WECHAT_OPENID identity ("<appid>:<openid>"): an official-account follower."""


@dataclass(frozen=True)
class Capabilities:
    max_batch: int
    """Most recipients in one provider call (WeCom: 10,000 external user ids per staff member)."""
    content_kinds: frozenset[ContentKind]
    needs: Needs
    consent_channel: ConsentChannel | None
    """The consent row that governs marketing on this adapter (unsubscribed → suppressed)."""
    in_transaction: bool = False
    """The send is a database write in the caller's transaction (sandbox): claim, send and result
    commit together, so a crash can neither lose nor repeat it."""
    group_messages: bool = False
    """Sends to community groups rather than to customers."""


@dataclass(frozen=True)
class Outgoing:
    """One rendered message for one recipient."""

    delivery_id: int
    customer_id: int
    address: str | None
    """Phone (E.164), e-mail, WeCom external_userid, or None for the sandbox."""
    message: Mapping[str, Any]
    """{"kind", "text", "subject"?, "link"?, "title"?, "description"?, "media_url"?, "miniprogram"?,
    "sms_template_code"?, "params"?}."""
    staff_userid: str | None = None
    """The WeCom user id of the staff member who sends it."""

    @property
    def idempotency_key(self) -> str:
        """Sent to providers that deduplicate, so a retried batch is not sent twice."""
        return f"siyu-delivery-{self.delivery_id}"


class OutcomeKind(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    """A timeout, 5xx or rate limit: try again later with backoff."""
    FAILED = "failed"
    """A permanent error for this recipient (bad number, bad credentials…)."""
    REJECTED = "rejected"
    """The provider refused by its own rule (e.g. WeCom: already received another mass message)."""


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    kind: OutcomeKind
    provider_message_id: str | None = None
    error: str | None = None
    reason: str | None = None
    """A short code stored on the delivery: "timeout", "http_503", "isv.MOBILE_NUMBER_ILLEGAL"…"""


@dataclass(frozen=True)
class StatusReport:
    """A provider's later word on one message: delivered, read, failed."""

    provider_message_id: str
    status: str
    """"delivered", "read", "failed"."""
    at: datetime | None = None
    error: str | None = None
    callback_key: str | None = None
    """Identifies this report for deduplication; defaults to message id + status."""


@dataclass
class SendContext:
    session: Session
    """For in-transaction adapters only; others must not write through it."""
    clock: Clock
    account: ChannelAccount
    credentials: dict[str, Any] = field(default_factory=dict)


class Adapter(Protocol):
    capabilities: Capabilities

    def send(self, context: SendContext, batch: Sequence[Outgoing]) -> list[Outcome]:
        """Send a batch (≤ `capabilities.max_batch`); one outcome per item, never raising for one
        recipient's failure."""
        ...

    def check(self, context: SendContext) -> None:
        """Verify settings and credentials (raise `InvalidInput` naming the field)."""
        ...


class CallbackError(Exception):
    """A status callback that cannot be trusted (bad signature) or read."""


def clean_text(value: Any, limit: int = 500) -> str:
    """`value` from a status callback as text the database takes: without NUL characters
    (PostgreSQL refuses them) or lone surrogates (JSON's "\\ud800" cannot be encoded), at most
    `limit` characters."""
    text = str(value)[:limit]
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def callback_id(value: Any) -> str | None:
    """A provider message id from a status callback, or None when it cannot be one a send
    recorded: not a string or integer, empty, longer than the column (100), or holding characters
    the database refuses."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    if not text or len(text) > 100 or clean_text(text) != text:
        return None
    return text


_SECRET_NAME = (
    # A credential parameter, alone or with a prefix ("access_token", "x-acs-signature",
    # "callback_token"), but not a longer word that merely contains one ("keyword", "monkey").
    r"(?<![A-Za-z0-9])(?:[A-Za-z0-9]+[_-])*"
    r"(?:corpsecret|access_key_secret|accesskeysecret|secret_key|secretkey|secret|access_token"
    r"|password|token|signature|key)"
    r"(?![A-Za-z0-9_])"
)
_QUERY_SECRET = re.compile(rf"({_SECRET_NAME}=)[^&\s'\"<>]+", re.IGNORECASE)
_JSON_SECRET = re.compile(
    rf"""(["']{_SECRET_NAME}["']\s*:\s*)(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|-?[0-9][0-9.eE+-]*)""",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with the values of credential parameters replaced by `***`: `corpsecret=…`,
    `access_token=…` in URLs (requests and wechatpy put them in their error messages) and
    `"secret": "…"` in JSON or Python reprs. Exception text goes through this before it becomes a
    delivery error, a channel check error or a log line, which people without the credentials read."""
    text = _QUERY_SECRET.sub(r"\1***", text)
    return _JSON_SECRET.sub(r'\1"***"', text)


def unexpected_error(logger: logging.Logger, exc: BaseException) -> str:
    """Log an exception no adapter expected (a bug on our side) with its stack but without its
    unredacted text, and return the redacted text for the outcome."""
    text = redact(repr(exc))[:500]
    stack = "".join(traceback.format_tb(exc.__traceback__))
    logger.error("unexpected adapter error: %s\n%s", text, stack)
    return text
