"""E-mail over SMTP (smtplib): one connection per batch, one message per recipient.

Settings: `host` and `from_address` (required; e.g. "星河咖啡 <news@brand.example>"), `port`
(default 465 with `ssl`, 587 with `starttls`, else 25), `starttls` (upgrade with STARTTLS),
`ssl` (implicit TLS), `timeout_s` (default 10), `message_id_domain` (default: the sender's domain).
Credentials (optional): `username`, `password` — the adapter logs in when they are given.

Each message carries `Message-ID: <siyu-delivery-{id}@{domain}>`, derived from the delivery's
idempotency key, so a message sent again after a crash is recognisably the same one, and a
`List-Unsubscribe` header with the recipient's unsubscribe link.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr
from typing import Any

from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.messaging.adapters.base import (
    Capabilities,
    Needs,
    Outcome,
    OutcomeKind,
    Outgoing,
    SendContext,
    redact,
    unexpected_error,
)
from siyu.models import ConsentChannel, ContentKind

logger = logging.getLogger(__name__)


def _port(settings: Mapping[str, Any]) -> int:
    if settings.get("port"):
        return int(settings["port"])
    return 465 if settings.get("ssl") else 587 if settings.get("starttls") else 25


def _domain(settings: Mapping[str, Any]) -> str:
    explicit = settings.get("message_id_domain")
    if explicit:
        return str(explicit)
    address = parseaddr(str(settings.get("from_address") or ""))[1]
    return address.rpartition("@")[2] or "siyu.invalid"


def one_line(text: str) -> str:
    """`text` with its line breaks (CR, LF, CRLF…) as spaces: a rendered subject may hold a
    customer's name or a template's newline, and a header value must not break the header."""
    return " ".join(text.splitlines()).strip()


def recipient(address: str | None) -> str | None:
    """The one e-mail address in `address`, or None when it holds none or several (a customer's
    "a@x.cn, b@y.cn" must not send one delivery to two people)."""
    found = getaddresses([str(address or "")])
    if len(found) != 1 or "@" not in found[0][1]:
        return None
    return found[0][1]


def build_message(settings: Mapping[str, Any], item: Outgoing, clock: Clock) -> EmailMessage:
    """The MIME message for one recipient: subject, text body with the link, stable Message-ID.
    Raises `ValueError` for a header the message cannot carry (a line break in the address)."""
    message = EmailMessage()
    message["From"] = str(settings["from_address"])
    message["To"] = str(item.address)
    message["Subject"] = one_line(str(item.message.get("subject") or item.message.get("title") or ""))
    message["Date"] = format_datetime(clock.now())
    message["Message-ID"] = f"<{item.idempotency_key}@{_domain(settings)}>"
    if settings.get("reply_to"):
        message["Reply-To"] = str(settings["reply_to"])
    if item.message.get("unsubscribe_url"):
        message["List-Unsubscribe"] = f"<{item.message['unsubscribe_url']}>"
    text = str(item.message.get("text") or "")
    link = item.message.get("link")
    if link and str(link) not in text:
        text = f"{text}\n\n{link}" if text else str(link)
    message.set_content(text + "\n")
    return message


def _connect(settings: Mapping[str, Any], credentials: Mapping[str, Any]) -> smtplib.SMTP:
    host, port, timeout = str(settings["host"]), _port(settings), float(settings.get("timeout_s") or 10)
    smtp: smtplib.SMTP
    if settings.get("ssl"):
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    try:
        smtp.ehlo()
        if settings.get("starttls"):
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if credentials.get("username"):
            smtp.login(str(credentials["username"]), str(credentials.get("password") or ""))
    except BaseException:
        smtp.close()
        raise
    return smtp


def _reset(smtp: smtplib.SMTP) -> bool:
    """Abort a half-done transaction; False when the connection did not survive."""
    try:
        smtp.rset()
    except (smtplib.SMTPException, OSError):
        return False
    return True


def _classify(exc: Exception) -> tuple[OutcomeKind, str, str]:
    """SMTP 4xx and lost connections retry; 5xx (refused recipient, bad login) fail."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()), (550, b"refused"))
        kind = OutcomeKind.RETRY if 400 <= code < 500 else OutcomeKind.FAILED
        return kind, f"smtp_{code}", redact(text.decode("utf-8", "replace"))[:500]
    if isinstance(exc, smtplib.SMTPResponseException):
        kind = OutcomeKind.RETRY if 400 <= exc.smtp_code < 500 else OutcomeKind.FAILED
        error = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return kind, f"smtp_{exc.smtp_code}", redact(error)[:500]
    # smtplib reports a reply that never came as "Connection unexpectedly closed: timed out".
    if isinstance(exc, TimeoutError) or (isinstance(exc, smtplib.SMTPServerDisconnected) and "timed out" in str(exc)):
        return OutcomeKind.RETRY, "timeout", redact(str(exc))[:500] or "timed out"
    if isinstance(exc, smtplib.SMTPException | OSError):
        return OutcomeKind.RETRY, "connection_error", redact(str(exc))[:500]
    # Anything else is a bug on our side; failing (not retrying) never sends a message twice.
    return OutcomeKind.FAILED, "adapter_error", unexpected_error(logger, exc)


class EmailAdapter:
    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.capabilities = Capabilities(
            max_batch=200,
            content_kinds=frozenset({ContentKind.TEXT, ContentKind.LINK}),
            needs=Needs.EMAIL,
            consent_channel=ConsentChannel.EMAIL,
        )

    def check(self, context: SendContext) -> None:
        for name in ("host", "from_address"):
            if not str(self.settings.get(name) or "").strip():
                raise InvalidInput(f"{name} is required", details={"field": f"settings.{name}"})
        if "@" not in parseaddr(str(self.settings["from_address"]))[1]:
            raise InvalidInput("from_address is not an e-mail address", details={"field": "settings.from_address"})
        try:
            _port(self.settings)
        except ValueError as exc:
            raise InvalidInput("port must be a number", details={"field": "settings.port"}) from exc
        if context.credentials.get("username") and not context.credentials.get("password"):
            raise InvalidInput("password is required with a username", details={"field": "credentials.password"})
        try:
            _connect(self.settings, context.credentials).quit()
        except smtplib.SMTPAuthenticationError as exc:
            raise InvalidInput(
                f"the SMTP server refused the login ({exc.smtp_code})", details={"field": "credentials.password"}
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise InvalidInput(
                f"cannot reach the SMTP server: {redact(str(exc))}", details={"field": "settings.host"}
            ) from exc

    def send(self, context: SendContext, batch: Sequence[Outgoing]) -> list[Outcome]:
        """Send each message once on one connection. A message that cannot be built, or that the
        server refuses, fails alone; a lost connection leaves the rest for the next try."""
        try:
            smtp = _connect(self.settings, context.credentials)
        except Exception as exc:
            kind, reason, error = _classify(exc)
            return [Outcome(i.delivery_id, kind, reason=reason, error=error) for i in batch]
        outcomes: list[Outcome] = []
        try:
            for index, item in enumerate(batch):
                outcome, connected = self._send_one(smtp, item, context.clock)
                outcomes.append(outcome)
                if not connected:
                    # The messages after this one were never handed over: they wait for the next try.
                    lost = outcome if outcome.kind == OutcomeKind.RETRY else None
                    outcomes += [
                        Outcome(
                            i.delivery_id,
                            OutcomeKind.RETRY,
                            reason=lost.reason if lost else "connection_error",
                            error=lost.error if lost else "the SMTP connection was lost",
                        )
                        for i in batch[index + 1 :]
                    ]
                    break
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
        return outcomes

    def _send_one(self, smtp: smtplib.SMTP, item: Outgoing, clock: Clock) -> tuple[Outcome, bool]:
        """The outcome of one message, and whether the connection can carry the next one."""
        address = recipient(item.address)
        if address is None:
            reason = "no_email" if not item.address else "bad_address"
            return Outcome(item.delivery_id, OutcomeKind.FAILED, reason=reason, error=reason), True
        try:
            message = build_message(self.settings, item, clock)
        except Exception as exc:  # a header the message cannot carry: this recipient only
            error = redact(str(exc))[:500] or type(exc).__name__
            return Outcome(item.delivery_id, OutcomeKind.FAILED, reason="bad_message", error=error), True
        try:
            smtp.send_message(message, to_addrs=[address])
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
            # smtplib reset the transaction (or closed on 421; the next message will notice).
            kind, reason, error = _classify(exc)
            return Outcome(item.delivery_id, kind, reason=reason, error=error), True
        except (smtplib.SMTPNotSupportedError, ValueError) as exc:
            # Refused before the transaction began (a non-ASCII address the server cannot take).
            error = redact(str(exc))[:500] or type(exc).__name__
            return Outcome(item.delivery_id, OutcomeKind.FAILED, reason="bad_message", error=error), True
        except (smtplib.SMTPException, OSError) as exc:
            kind, reason, error = _classify(exc)
            return Outcome(item.delivery_id, kind, reason=reason, error=error), False
        except Exception as exc:
            kind, reason, error = _classify(exc)  # FAILED: retrying a bug could send the message twice
            return Outcome(item.delivery_id, kind, reason=reason, error=error), _reset(smtp)
        return Outcome(item.delivery_id, OutcomeKind.SENT, provider_message_id=str(message["Message-ID"])), True


def build(settings: dict[str, Any]) -> EmailAdapter:
    return EmailAdapter(settings)
