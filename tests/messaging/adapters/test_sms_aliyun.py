"""Aliyun SMS through the official SDK against a local server answering dysmsapi's JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.messaging.adapters import adapter_for
from siyu.messaging.adapters.base import Outcome, OutcomeKind
from siyu.models import AdapterKind, ChannelAccount, Delivery, ShortLink, Workspace
from tests.factories import make_workspace
from tests.messaging.adapters.fakes import FakeServer, Reply, fake_server
from tests.messaging.adapters.fakes import Request as HttpRequest
from tests.messaging.adapters.helpers import BACKOFF, Attempt, context, outgoing, queue, send_until_done
from tests.messaging.factories import make_account, make_content

CREDENTIALS = {"access_key_id": "LTAI5tTestKey", "access_key_secret": "test-secret"}


class FakeAliyun:
    """dysmsapi SendSms: answers per phone number from `answers`, OK with a BizId otherwise."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.answers: dict[str, Reply] = {}
        self.always: Reply | None = None
        server.route("POST", "/", self.send_sms)

    @property
    def settings(self) -> dict[str, object]:
        return {
            "sign_name": "星河咖啡",
            "template_code": "SMS_000001",
            "endpoint": self.server.url.removeprefix("http://"),
            "protocol": "http",
            "timeout_s": 0.5,
        }

    def send_sms(self, request: HttpRequest) -> Reply:
        assert request.headers["x-acs-action"] == "SendSms"
        assert request.headers["authorization"].startswith("ACS3-HMAC-SHA256 Credential=LTAI5tTestKey,")
        if self.always is not None:
            return self.always
        phone = request.query["PhoneNumbers"]
        return self.answers.get(
            phone, Reply(200, {"Code": "OK", "Message": "OK", "BizId": f"900619746936498440^{phone}", "RequestId": "r"})
        )

    def sent(self) -> list[dict[str, str]]:
        keys = ("PhoneNumbers", "SignName", "TemplateCode", "TemplateParam", "OutId")
        return [{k: r.query[k] for k in keys} for r in self.server.requests]


@pytest.fixture
def aliyun() -> Iterator[FakeAliyun]:
    with fake_server() as server:
        yield FakeAliyun(server)


def _setup(db: Session, clock: FrozenClock, aliyun: FakeAliyun) -> tuple[Workspace, ChannelAccount]:
    workspace = make_workspace(db, clock=clock)
    account = make_account(
        db,
        workspace=workspace,
        clock=clock,
        kind=AdapterKind.SMS_ALIYUN,
        settings=aliyun.settings,
        credentials=CREDENTIALS,
    )
    return workspace, account


def test_each_recipient_gets_an_outcome(db: Session, clock: FrozenClock, aliyun: FakeAliyun) -> None:
    # given three recipients: one fine, one with a bad number, one over Aliyun's own frequency limit
    _, account = _setup(db, clock, aliyun)
    aliyun.answers = {
        "13800000002": Reply(200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": "r"}),
        "13800000003": Reply(200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "业务限流", "RequestId": "r"}),
    }
    batch = [
        outgoing(1, "+8613800000001", "", params={"name": "王芳"}, link="https://siyu.example/s/Ab1"),
        outgoing(2, "+8613800000002", "", params={"name": "李雷"}),
        outgoing(3, "+8613800000003", "", params={"name": "韩梅梅"}, sms_template_code="SMS_777"),
    ]
    # when the batch is sent
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), batch)
    # then every recipient was one SendSms with its own parameters and its own outcome
    assert aliyun.sent() == [
        {
            "PhoneNumbers": "13800000001",
            "SignName": "星河咖啡",
            "TemplateCode": "SMS_000001",
            "TemplateParam": '{"name": "王芳", "link": "https://siyu.example/s/Ab1"}',
            "OutId": "siyu-delivery-1",
        },
        {
            "PhoneNumbers": "13800000002",
            "SignName": "星河咖啡",
            "TemplateCode": "SMS_000001",
            "TemplateParam": '{"name": "李雷"}',
            "OutId": "siyu-delivery-2",
        },
        {
            "PhoneNumbers": "13800000003",
            "SignName": "星河咖啡",
            "TemplateCode": "SMS_777",
            "TemplateParam": '{"name": "韩梅梅"}',
            "OutId": "siyu-delivery-3",
        },
    ]
    assert outcomes == [
        Outcome(1, OutcomeKind.SENT, provider_message_id="900619746936498440^13800000001"),
        Outcome(
            2, OutcomeKind.FAILED, reason="isv.MOBILE_NUMBER_ILLEGAL", error="isv.MOBILE_NUMBER_ILLEGAL: 非法手机号"
        ),
        Outcome(3, OutcomeKind.REJECTED, reason="platform_capped", error="isv.BUSINESS_LIMIT_CONTROL: 业务限流"),
    ]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            Reply(503, {"Code": "ServiceUnavailable", "Message": "busy", "RequestId": "r"}),
            (OutcomeKind.RETRY, "http_503"),
        ),
        (Reply(200, {}, delay_s=1.5), (OutcomeKind.RETRY, "timeout")),
        (
            Reply(400, {"Code": "Throttling.User", "Message": "slow down", "RequestId": "r"}),
            (OutcomeKind.RETRY, "Throttling.User"),
        ),
        (
            Reply(404, {"Code": "InvalidAccessKeyId.NotFound", "Message": "no such key", "RequestId": "r"}),
            (OutcomeKind.FAILED, "InvalidAccessKeyId.NotFound"),
        ),
    ],
)
def test_transport_and_account_errors_apply_to_the_whole_batch(
    db: Session, clock: FrozenClock, aliyun: FakeAliyun, reply: Reply, expected: tuple[OutcomeKind, str]
) -> None:
    # given Aliyun failing every call the same way
    _, account = _setup(db, clock, aliyun)
    aliyun.always = reply
    # when two recipients are sent
    batch = [outgoing(1, "+8613800000001", "", params={}), outgoing(2, "+8613800000002", "", params={})]
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), batch)
    # then both get the mapped outcome after a single call
    assert [(o.kind, o.reason) for o in outcomes] == [expected, expected]
    assert len(aliyun.server.requests) == 1


def test_check_names_the_missing_field(db: Session, clock: FrozenClock, aliyun: FakeAliyun) -> None:
    # given an account without a sign name and credentials without a secret
    workspace = make_workspace(db, clock=clock)
    unsigned = make_account(db, workspace=workspace, clock=clock, kind=AdapterKind.SMS_ALIYUN, settings={})
    _, account = _setup(db, clock, aliyun)
    # when they are checked
    with pytest.raises(InvalidInput) as no_sign:
        adapter_for(unsigned).check(context(unsigned, clock, CREDENTIALS))
    with pytest.raises(InvalidInput) as no_secret:
        adapter_for(account).check(context(account, clock, {"access_key_id": "LTAI5tTestKey"}))
    # then each error names its field
    assert no_sign.value.details == {"field": "settings.sign_name"}
    assert no_secret.value.details == {"field": "credentials.access_key_secret"}
    adapter_for(account).check(context(account, clock, CREDENTIALS))


def test_send_due_sends_the_template_with_the_recipients_short_link(
    db: Session, database: Database, clock: FrozenClock, aliyun: FakeAliyun
) -> None:
    # given an SMS template whose parameters are the name and the recipient's short link
    workspace, account = _setup(db, clock, aliyun)
    item = make_content(
        db,
        workspace=workspace,
        clock=clock,
        body="name={{ name }}\nlink={{ link }}",
        sms_template_code="SMS_520",
        link_url="https://shop.example/double11",
    )
    (delivery,) = queue(
        db, workspace=workspace, clock=clock, account=account, content=item, recipients=[("王芳", "+8613800000001")]
    )
    # when the sender runs
    history = send_until_done(db, database, clock, delivery.id)
    # then it went out once with the name and this recipient's own short link
    assert history == [Attempt("sent", None, 1, None)]
    row = db.get(Delivery, delivery.id)
    assert row is not None and row.short_link_id is not None
    link = db.get(ShortLink, row.short_link_id)
    assert link is not None
    expected_link = f"{database.settings.public_url.rstrip('/')}/s/{link.slug}"
    (sent,) = aliyun.sent()
    assert json.loads(sent["TemplateParam"]) == {"name": "王芳", "link": expected_link}
    assert (sent["TemplateCode"], row.provider_message_id) == ("SMS_520", "900619746936498440^13800000001")


def test_send_due_retries_with_backoff_then_fails(
    db: Session, database: Database, clock: FrozenClock, aliyun: FakeAliyun
) -> None:
    # given Aliyun answering 503 to every call
    workspace, account = _setup(db, clock, aliyun)
    item = make_content(db, workspace=workspace, clock=clock, body="name={{ name }}", sms_template_code="SMS_520")
    (delivery,) = queue(
        db, workspace=workspace, clock=clock, account=account, content=item, recipients=[("王芳", "+8613800000001")]
    )
    aliyun.always = Reply(503, {"Code": "ServiceUnavailable", "Message": "busy", "RequestId": "r"})
    # when the sender runs until the delivery leaves the queue
    history = send_until_done(db, database, clock, delivery.id)
    # then five tries with growing waits, then failed with the reason
    assert history == [
        *(Attempt("queued", "http_503", n + 1, wait) for n, wait in enumerate(BACKOFF)),
        Attempt("failed", "http_503", 5, None),
    ]
    assert len(aliyun.server.requests) == 5
