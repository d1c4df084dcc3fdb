"""E-mail over SMTP against a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.messaging.adapters import adapter_for
from siyu.messaging.adapters.base import Outcome, OutcomeKind
from siyu.models import AdapterKind, ChannelAccount, Delivery, Workspace
from tests.factories import make_workspace
from tests.messaging.adapters.helpers import BACKOFF, Attempt, context, outgoing, queue, send_until_done
from tests.messaging.factories import make_account, make_content

CREDENTIALS = {"username": "news@brand.example", "password": "smtp-password"}


@dataclass
class Mailbox:
    """An aiosmtpd handler: keeps what it received; some addresses are refused or deferred."""

    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    data_reply: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 <nobody@example.com>: Recipient address rejected"
        if address.startswith("busy@"):
            return "451 4.3.0 Mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        # SMTP carries CRLF line ends; keep the message as the sender's library wrote it.
        content = bytes(envelope.original_content or envelope.content).replace(b"\r\n", b"\n")
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), content))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        CREDENTIALS["username"].encode(),
        CREDENTIALS["password"].encode(),
    )
    return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 235 or 535 itself


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, authenticator=_authenticate, auth_require_tls=False
    )
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def _setup(db: Session, clock: FrozenClock, port: int, **settings: Any) -> tuple[Workspace, ChannelAccount]:
    workspace = make_workspace(db, clock=clock)
    account = make_account(
        db,
        workspace=workspace,
        clock=clock,
        kind=AdapterKind.EMAIL,
        settings={"host": "127.0.0.1", "port": port, "from_address": "星河咖啡 <news@brand.example>", "timeout_s": 1}
        | settings,
        credentials=CREDENTIALS,
    )
    return workspace, account


def test_a_message_arrives_with_subject_body_link_and_stable_message_id(
    db: Session, clock: FrozenClock, smtp: tuple[Mailbox, int]
) -> None:
    # given an e-mail account on the local server
    mailbox, port = smtp
    _, account = _setup(db, clock, port)
    item = outgoing(
        41,
        "wangfang@example.com",
        "王芳，您的会员礼已到账",
        subject="双十一会员专享",
        link="https://siyu.example/s/Xy12",
        unsubscribe_url="https://siyu.example/u/tok",
    )
    # when it is sent
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), [item])
    # then the server received exactly this message
    assert outcomes == [Outcome(41, OutcomeKind.SENT, provider_message_id="<siyu-delivery-41@brand.example>")]
    ((mail_from, rcpt_tos, raw),) = mailbox.received
    assert (mail_from, rcpt_tos) == ("news@brand.example", ["wangfang@example.com"])
    message = message_from_bytes(raw, policy=email_policy.default)
    headers = {k: str(message[k]) for k in ("From", "To", "Subject", "Message-ID", "Date", "List-Unsubscribe")}
    assert headers == {
        "From": "星河咖啡 <news@brand.example>",
        "To": "wangfang@example.com",
        "Subject": "双十一会员专享",
        "Message-ID": "<siyu-delivery-41@brand.example>",
        "Date": "Mon, 23 Nov 2026 02:00:00 +0000",
        "List-Unsubscribe": "<https://siyu.example/u/tok>",
    }
    assert message.get_content() == "王芳，您的会员礼已到账\n\nhttps://siyu.example/s/Xy12\n"


def test_refused_and_deferred_recipients(db: Session, clock: FrozenClock, smtp: tuple[Mailbox, int]) -> None:
    # given one good, one unknown (550) and one temporarily unavailable (451) recipient
    mailbox, port = smtp
    _, account = _setup(db, clock, port)
    batch = [outgoing(1, "nobody@example.com"), outgoing(2, "busy@example.com"), outgoing(3, "lilei@example.com")]
    # when they are sent on one connection
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), batch)
    # then 5xx fails, 4xx retries, and the good one still went out
    assert [(o.delivery_id, o.kind, o.reason) for o in outcomes] == [
        (1, OutcomeKind.FAILED, "smtp_550"),
        (2, OutcomeKind.RETRY, "smtp_451"),
        (3, OutcomeKind.SENT, None),
    ]
    assert [r[1] for r in mailbox.received] == [["lilei@example.com"]]


def test_a_server_that_never_answers_is_a_timeout(db: Session, clock: FrozenClock) -> None:
    # given a port that accepts connections and never greets
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        _, account = _setup(db, clock, silent.getsockname()[1], timeout_s=0.3)
        # when a batch is sent
        outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), [outgoing(1, "a@example.com")])
    # then it is retried later
    assert [(o.kind, o.reason) for o in outcomes] == [(OutcomeKind.RETRY, "timeout")]


def test_check_logs_in_and_names_the_bad_field(db: Session, clock: FrozenClock, smtp: tuple[Mailbox, int]) -> None:
    # given a wrong password and a missing sender address
    _, port = smtp
    _, account = _setup(db, clock, port)
    _, no_sender = _setup(db, clock, port, from_address="")
    # when they are checked
    with pytest.raises(InvalidInput) as bad_login:
        adapter_for(account).check(context(account, clock, dict(CREDENTIALS, password="wrong")))
    with pytest.raises(InvalidInput) as missing:
        adapter_for(no_sender).check(context(no_sender, clock, CREDENTIALS))
    # then each names its field; the right password passes
    assert bad_login.value.details == {"field": "credentials.password"}
    assert missing.value.details == {"field": "settings.from_address"}
    adapter_for(account).check(context(account, clock, CREDENTIALS))


def test_send_due_delivers_the_rendered_mail(
    db: Session, database: Database, clock: FrozenClock, smtp: tuple[Mailbox, int]
) -> None:
    # given a queued e-mail with a personalised subject and body
    mailbox, port = smtp
    workspace, account = _setup(db, clock, port)
    item = make_content(
        db, workspace=workspace, clock=clock, subject="{{ name }}，双十一快乐", body="{{ name }}，会员礼已到账"
    )
    (delivery,) = queue(
        db, workspace=workspace, clock=clock, account=account, content=item, recipients=[("王芳", "wf@example.com")]
    )
    # when the sender runs
    history = send_until_done(db, database, clock, delivery.id)
    # then the mail arrived and the delivery keeps its Message-ID
    assert history == [Attempt("sent", None, 1, None)]
    message = message_from_bytes(mailbox.received[0][2], policy=email_policy.default)
    assert (str(message["Subject"]), message.get_content()) == ("王芳，双十一快乐", "王芳，会员礼已到账\n")
    row = db.get(Delivery, delivery.id)
    assert row is not None and row.provider_message_id == f"<siyu-delivery-{delivery.id}@brand.example>"


def test_send_due_retries_a_deferring_server_with_backoff_then_fails(
    db: Session, database: Database, clock: FrozenClock, smtp: tuple[Mailbox, int]
) -> None:
    # given a server that defers every message (421 on DATA)
    mailbox, port = smtp
    mailbox.data_reply = "451 4.3.0 Try again later"
    workspace, account = _setup(db, clock, port)
    item = make_content(db, workspace=workspace, clock=clock, subject="通知", body="{{ name }}您好")
    (delivery,) = queue(
        db, workspace=workspace, clock=clock, account=account, content=item, recipients=[("王芳", "wf@example.com")]
    )
    # when the sender runs until the delivery leaves the queue
    history = send_until_done(db, database, clock, delivery.id)
    # then five tries with growing waits, then failed with the SMTP code
    assert history == [
        *(Attempt("queued", "smtp_451", n + 1, wait) for n, wait in enumerate(BACKOFF)),
        Attempt("failed", "smtp_451", 5, None),
    ]


def test_a_message_that_cannot_be_built_fails_alone_and_nothing_is_sent_twice(
    db: Session, clock: FrozenClock, smtp: tuple[Mailbox, int]
) -> None:
    # given a subject rendered with line breaks, an address smuggling a Bcc header, an address
    # naming two people, an unsubscribe link with a line break (a header that cannot be built),
    # and a plain message
    mailbox, port = smtp
    _, account = _setup(db, clock, port)
    batch = [
        outgoing(1, "wangfang@example.com", "会员礼已到账", subject="王芳\r\n双十一\n会员专享"),
        outgoing(2, "lilei@example.com\r\nBcc: all@example.com", "你好", subject="通知"),
        outgoing(3, "hanmeimei@example.com, boss@example.com", "你好", subject="通知"),
        outgoing(4, "zhaosi@example.com", "你好", subject="通知", unsubscribe_url="https://siyu.example/u/t\nX: y"),
        outgoing(5, "liuneng@example.com", "你好", subject="通知"),
    ]
    # when the batch is sent
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), batch)
    # then the subject went out on one line, the unbuildable ones failed alone, and each message
    # the server took was taken once
    assert [(o.delivery_id, o.kind, o.reason) for o in outcomes] == [
        (1, OutcomeKind.SENT, None),
        (2, OutcomeKind.FAILED, "bad_address"),
        (3, OutcomeKind.FAILED, "bad_address"),
        (4, OutcomeKind.FAILED, "bad_message"),
        (5, OutcomeKind.SENT, None),
    ]
    assert [r[1] for r in mailbox.received] == [["wangfang@example.com"], ["liuneng@example.com"]]
    subject = message_from_bytes(mailbox.received[0][2], policy=email_policy.default)["Subject"]
    assert str(subject) == "王芳 双十一 会员专享"


def test_connection_errors_never_show_credentials(db: Session, clock: FrozenClock) -> None:
    # given a closed port (OSError text is redacted like every other adapter error)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, account = _setup(db, clock, port)
    # when a batch is sent and the account is checked
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), [outgoing(1, "a@example.com")])
    with pytest.raises(InvalidInput) as checked:
        adapter_for(account).check(context(account, clock, CREDENTIALS))
    # then the send is retried and neither text names the password
    assert [(o.kind, o.reason) for o in outcomes] == [(OutcomeKind.RETRY, "connection_error")]
    assert CREDENTIALS["password"] not in f"{outcomes[0].error} {checked.value.message}"
    assert checked.value.details == {"field": "settings.host"}
