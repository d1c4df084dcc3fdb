"""Tencent Cloud SMS through the official SDK against a local server answering {"Response": {...}}."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.messaging.adapters import adapter_for
from siyu.messaging.adapters.base import Outcome, OutcomeKind
from siyu.models import AdapterKind, ChannelAccount, Delivery, Workspace
from tests.factories import make_workspace
from tests.messaging.adapters.fakes import FakeServer, Reply, fake_server
from tests.messaging.adapters.fakes import Request as HttpRequest
from tests.messaging.adapters.helpers import BACKOFF, Attempt, context, outgoing, queue, send_until_done
from tests.messaging.factories import make_account, make_content

CREDENTIALS = {"secret_id": "AKIDtest", "secret_key": "test-key"}


def _status(phone: str, code: str = "Ok", message: str = "send success") -> dict[str, Any]:
    serial = f"2640:{phone[-4:]}" if code == "Ok" else ""
    return {"SerialNo": serial, "PhoneNumber": phone, "Fee": 1 if code == "Ok" else 0, "SessionContext": "",
            "Code": code, "Message": message, "IsoCode": "CN"}  # fmt: skip


class FakeTencent:
    """sms 2021-01-11 SendSms: checks the TC3 signature header, answers per number."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.codes: dict[str, tuple[str, str]] = {}
        self.always: Reply | None = None
        server.route("POST", "/", self.send_sms)

    @property
    def settings(self) -> dict[str, object]:
        return {
            "sdk_app_id": "1400006666",
            "sign_name": "星河咖啡",
            "template_id": "449739",
            "endpoint": self.server.url.removeprefix("http://"),
            "protocol": "http",
            "timeout_s": 1,
        }

    def send_sms(self, request: HttpRequest) -> Reply:
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("TC3-HMAC-SHA256 Credential=AKIDtest/") or "Signature=" not in authorization:
            return Reply(
                200,
                {"Response": {"Error": {"Code": "AuthFailure.SignatureFailure", "Message": "bad"}, "RequestId": "c"}},
            )
        assert request.headers["x-tc-action"] == "SendSms"
        if self.always is not None:
            return self.always
        numbers = request.json()["PhoneNumberSet"]
        statuses = [_status(n, *self.codes.get(n, ("Ok", "send success"))) for n in numbers]
        return Reply(
            200, {"Response": {"SendStatusSet": statuses, "RequestId": "a0aabda6-cf91-4f3e-a81f-9198114a2279"}}
        )

    def sent(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.server.requests]


@pytest.fixture
def tencent() -> Iterator[FakeTencent]:
    with fake_server() as server:
        yield FakeTencent(server)


def _setup(db: Session, clock: FrozenClock, tencent: FakeTencent) -> tuple[Workspace, ChannelAccount]:
    workspace = make_workspace(db, clock=clock)
    account = make_account(
        db,
        workspace=workspace,
        clock=clock,
        kind=AdapterKind.SMS_TENCENT,
        settings=tencent.settings,
        credentials=CREDENTIALS,
    )
    return workspace, account


def test_identical_parameters_share_a_call_and_each_number_gets_an_outcome(
    db: Session, clock: FrozenClock, tencent: FakeTencent
) -> None:
    # given three recipients of the same parameters (one number is invalid, one over its daily limit)
    # and a fourth with personal parameters
    _, account = _setup(db, clock, tencent)
    tencent.codes = {
        "+8613800000002": ("InvalidParameterValue.IncorrectPhoneNumber", "invalid number"),
        "+8613800000003": ("LimitExceeded.PhoneNumberDailyLimit", "daily limit"),
    }
    same = {"1": "双十一", "2": "8折"}
    batch = [
        outgoing(1, "+8613800000001", "", params=same),
        outgoing(2, "+8613800000002", "", params=same),
        outgoing(3, "+8613800000003", "", params=same),
        outgoing(4, "+8613800000004", "", params={"2": "9折", "1": "会员日"}),
    ]
    # when the batch is sent
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), batch)
    # then two calls went out, parameters in positional order
    assert tencent.sent() == [
        {
            "PhoneNumberSet": ["+8613800000001", "+8613800000002", "+8613800000003"],
            "SmsSdkAppId": "1400006666",
            "TemplateId": "449739",
            "SignName": "星河咖啡",
            "TemplateParamSet": ["双十一", "8折"],
        },
        {
            "PhoneNumberSet": ["+8613800000004"],
            "SmsSdkAppId": "1400006666",
            "TemplateId": "449739",
            "SignName": "星河咖啡",
            "TemplateParamSet": ["会员日", "9折"],
            "SessionContext": "siyu-delivery-4",
        },
    ]
    assert outcomes == [
        Outcome(1, OutcomeKind.SENT, provider_message_id="2640:0001"),
        Outcome(
            2,
            OutcomeKind.FAILED,
            reason="InvalidParameterValue.Incorrec",
            error="InvalidParameterValue.IncorrectPhoneNumber: invalid number",
        ),
        Outcome(
            3, OutcomeKind.REJECTED, reason="platform_capped", error="LimitExceeded.PhoneNumberDailyLimit: daily limit"
        ),
        Outcome(4, OutcomeKind.SENT, provider_message_id="2640:0004"),
    ]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(502, b"bad gateway"), (OutcomeKind.RETRY, "server_error")),
        (Reply(200, {}, delay_s=2.5), (OutcomeKind.RETRY, "timeout")),
        (
            Reply(200, {"Response": {"Error": {"Code": "InternalError.Timeout", "Message": "x"}, "RequestId": "b"}}),
            (OutcomeKind.RETRY, "InternalError.Timeout"),
        ),
        (
            Reply(
                200, {"Response": {"Error": {"Code": "AuthFailure.SecretIdNotFound", "Message": "x"}, "RequestId": "b"}}
            ),
            (OutcomeKind.FAILED, "AuthFailure.SecretIdNotFound"),
        ),
    ],
)
def test_call_errors_map_to_retry_or_failure(
    db: Session, clock: FrozenClock, tencent: FakeTencent, reply: Reply, expected: tuple[OutcomeKind, str]
) -> None:
    # given Tencent answering with a 5xx, a timeout or an error response
    _, account = _setup(db, clock, tencent)
    tencent.always = reply
    # when a recipient is sent
    outcomes = adapter_for(account).send(context(account, clock, CREDENTIALS), [outgoing(1, "+8613800000001", "")])
    # then the outcome is mapped
    assert [(o.kind, o.reason) for o in outcomes] == [expected]


def test_the_fake_refuses_unsigned_requests(db: Session, clock: FrozenClock, tencent: FakeTencent) -> None:
    # given credentials the SDK signs with another secret id
    _, account = _setup(db, clock, tencent)
    # when sent
    outcomes = adapter_for(account).send(
        context(account, clock, {"secret_id": "AKIDother", "secret_key": "k"}), [outgoing(1, "+8613800000001", "")]
    )
    # then the signature failure is a permanent failure
    assert [(o.kind, o.reason) for o in outcomes] == [(OutcomeKind.FAILED, "AuthFailure.SignatureFailure")]


def test_check_names_the_missing_field(db: Session, clock: FrozenClock, tencent: FakeTencent) -> None:
    # given an account without an SDK app id and credentials without a key
    workspace = make_workspace(db, clock=clock)
    incomplete = make_account(
        db, workspace=workspace, clock=clock, kind=AdapterKind.SMS_TENCENT, settings={"sign_name": "星河咖啡"}
    )
    _, account = _setup(db, clock, tencent)
    # when they are checked
    with pytest.raises(InvalidInput) as no_app:
        adapter_for(incomplete).check(context(incomplete, clock, CREDENTIALS))
    with pytest.raises(InvalidInput) as no_key:
        adapter_for(account).check(context(account, clock, {"secret_id": "AKIDtest"}))
    # then each error names its field
    assert no_app.value.details == {"field": "settings.sdk_app_id"}
    assert no_key.value.details == {"field": "credentials.secret_key"}


def test_send_due_sends_the_rendered_parameters(
    db: Session, database: Database, clock: FrozenClock, tencent: FakeTencent
) -> None:
    # given a queued delivery of a template with the customer's name in position 1
    workspace, account = _setup(db, clock, tencent)
    item = make_content(db, workspace=workspace, clock=clock, body="1={{ name }}\n2=8折", sms_template_code="449739")
    (delivery,) = queue(
        db, workspace=workspace, clock=clock, account=account, content=item, recipients=[("王芳", "+8613800000001")]
    )
    # when the sender runs
    history = send_until_done(db, database, clock, delivery.id)
    # then it went out once with the name, and the serial number is kept for status reports
    assert history == [Attempt("sent", None, 1, None)]
    assert tencent.sent()[0]["TemplateParamSet"] == ["王芳", "8折"]
    row = db.get(Delivery, delivery.id)
    assert row is not None and row.provider_message_id == "2640:0001"


def test_send_due_retries_with_backoff_then_fails(
    db: Session, database: Database, clock: FrozenClock, tencent: FakeTencent
) -> None:
    # given Tencent answering 503 to every call
    workspace, account = _setup(db, clock, tencent)
    item = make_content(db, workspace=workspace, clock=clock, body="1={{ name }}", sms_template_code="449739")
    (delivery,) = queue(
        db, workspace=workspace, clock=clock, account=account, content=item, recipients=[("王芳", "+8613800000001")]
    )
    tencent.always = Reply(503, b"unavailable")
    # when the sender runs until the delivery leaves the queue
    history = send_until_done(db, database, clock, delivery.id)
    # then five tries with growing waits, then failed with the reason
    assert history == [
        *(Attempt("queued", "server_error", n + 1, wait) for n, wait in enumerate(BACKOFF)),
        Attempt("failed", "server_error", 5, None),
    ]
    assert len(tencent.server.requests) == 5
