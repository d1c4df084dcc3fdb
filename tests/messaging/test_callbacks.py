"""Provider status callbacks: signed webhook reports and SMS report pushes, through the HTTP route."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.messaging.adapters.base import StatusReport
from siyu.messaging.adapters.webhook import sign
from siyu.messaging.callbacks import record_status
from siyu.models import AdapterKind, ChannelAccount, Delivery, DeliveryCallback, DeliveryStatus, Workspace
from tests.factories import make_workspace
from tests.messaging.adapters.helpers import queue
from tests.messaging.factories import make_account, make_content

SECRET = "whsec_test"


@pytest.fixture
def client(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, database=database, clock=clock, run_worker=False)) as c:
        yield c


def _sent(
    db: Session, clock: FrozenClock, workspace: Workspace, account: ChannelAccount, provider_ids: list[str]
) -> list[Delivery]:
    """Deliveries already sent through `account`, with the provider's message ids."""
    item = make_content(db, workspace=workspace, clock=clock)
    rows = queue(
        db,
        workspace=workspace,
        clock=clock,
        account=account,
        content=item,
        recipients=[(f"顾客{i}", f"+86138000000{i:02d}") for i in range(len(provider_ids))],
    )
    for row, provider_id in zip(rows, provider_ids, strict=True):
        row.status, row.provider_message_id, row.sent_at, row.attempts = (
            DeliveryStatus.SENT,
            provider_id,
            clock.now(),
            1,
        )
    db.commit()
    return rows


def _webhook(db: Session, clock: FrozenClock) -> tuple[Workspace, ChannelAccount]:
    workspace = make_workspace(db, clock=clock)
    account = make_account(
        db,
        workspace=workspace,
        clock=clock,
        kind=AdapterKind.WEBHOOK,
        settings={"url": "https://crm.example/hooks"},
        credentials={"secret": SECRET},
    )
    return workspace, account


def _signed(body: bytes, timestamp: int, secret: str = SECRET) -> dict[str, str]:
    return {
        "X-Siyu-Timestamp": str(timestamp),
        "X-Siyu-Signature": sign(secret, timestamp, body),
        "Content-Type": "application/json",
    }


def _callbacks(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(DeliveryCallback)) or 0)


def test_a_signed_report_is_recorded_once(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a sent webhook delivery
    workspace, account = _webhook(db, clock)
    (delivery,) = _sent(db, clock, workspace, account, ["evt_1"])
    body = json.dumps({"reports": [{"id": "evt_1", "status": "read", "at": "2026-11-23T02:05:00+00:00"}]}).encode()
    now = int(clock.now().timestamp())
    # when the endpoint reports it read, and the same report is replayed
    first = client.post(f"/integrations/messaging/{account.id}/status", content=body, headers=_signed(body, now))
    again = client.post(f"/integrations/messaging/{account.id}/status", content=body, headers=_signed(body, now))
    # then it was recorded once: delivered and read at the reported time
    assert (first.status_code, first.json()) == (200, {"recorded": 1})
    assert (again.status_code, again.json()) == (200, {"recorded": 0})
    db.expire_all()
    row = db.get(Delivery, delivery.id)
    assert row is not None
    read_at = datetime(2026, 11, 23, 2, 5, tzinfo=UTC)
    assert (row.status, row.delivered_at, row.read_at) == ("read", read_at, read_at)
    assert _callbacks(db) == 1


@pytest.mark.parametrize(
    ("secret", "age"),
    [("wrong-secret", timedelta(0)), (SECRET, timedelta(minutes=6)), (SECRET, timedelta(minutes=-6))],
)
def test_a_bad_signature_or_stale_timestamp_is_refused(
    db: Session, clock: FrozenClock, client: TestClient, secret: str, age: timedelta
) -> None:
    # given a sent delivery and a report signed with the wrong secret or too long ago (or ahead)
    workspace, account = _webhook(db, clock)
    (delivery,) = _sent(db, clock, workspace, account, ["evt_1"])
    body = json.dumps({"reports": [{"id": "evt_1", "status": "delivered"}]}).encode()
    timestamp = int((clock.now() - age).timestamp())
    # when it is posted
    response = client.post(
        f"/integrations/messaging/{account.id}/status", content=body, headers=_signed(body, timestamp, secret)
    )
    # then it is refused and nothing is written
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_signature"
    db.expire_all()
    row = db.get(Delivery, delivery.id)
    assert row is not None and (row.status, row.delivered_at) == ("sent", None)
    assert _callbacks(db) == 0


def test_a_tampered_body_is_refused(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a correctly signed report whose body is changed in transit
    _, account = _webhook(db, clock)
    body = json.dumps({"reports": [{"id": "evt_1", "status": "delivered"}]}).encode()
    headers = _signed(body, int(clock.now().timestamp()))
    # when the changed body is posted
    response = client.post(
        f"/integrations/messaging/{account.id}/status", content=body.replace(b"1", b"2"), headers=headers
    )
    # then it is refused
    assert response.status_code == 401


def test_unknown_message_ids_are_ignored_and_unknown_accounts_are_404(
    db: Session, clock: FrozenClock, client: TestClient
) -> None:
    # given a report about a message this account never sent
    _, account = _webhook(db, clock)
    body = json.dumps({"reports": [{"id": "evt_404", "status": "delivered"}]}).encode()
    headers = _signed(body, int(clock.now().timestamp()))
    # when it is posted to the account and to an account that does not exist
    known = client.post(f"/integrations/messaging/{account.id}/status", content=body, headers=headers)
    unknown = client.post(f"/integrations/messaging/{account.id + 1000}/status", content=body, headers=headers)
    # then the first records nothing and the second is not found
    assert (known.status_code, known.json()) == (200, {"recorded": 0})
    assert unknown.status_code == 404
    assert _callbacks(db) == 0


def test_an_aliyun_sms_report_with_the_token(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given two Aliyun SMS deliveries and the account's callback token
    workspace = make_workspace(db, clock=clock)
    account = make_account(
        db,
        workspace=workspace,
        clock=clock,
        kind=AdapterKind.SMS_ALIYUN,
        settings={"sign_name": "星河咖啡"},
        credentials={"access_key_id": "ak", "access_key_secret": "sk", "callback_token": "cb-token"},
    )
    delivered, failed = _sent(db, clock, workspace, account, ["1001^0", "1002^0"])
    report = [
        {"phone_number": "13800000000", "send_time": "2026-11-23 10:00:01", "report_time": "2026-11-23 10:00:05",
         "success": True, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1", "biz_id": "1001^0",
         "out_id": f"siyu-delivery-{delivered.id}"},
        {"phone_number": "13800000001", "send_time": "2026-11-23 10:00:01", "report_time": "2026-11-23 10:00:09",
         "success": False, "err_code": "MK:0001", "err_msg": "空号", "sms_size": "1", "biz_id": "1002^0",
         "out_id": f"siyu-delivery-{failed.id}"},
    ]  # fmt: skip
    url = f"/integrations/messaging/{account.id}/status"
    # when Aliyun pushes the report with a wrong token, then with the right one
    refused = client.post(url, params={"token": "guess"}, json=report)
    accepted = client.post(url, params={"token": "cb-token"}, json=report)
    # then only the second is recorded, answered as Aliyun expects, report times read as Beijing time
    assert refused.status_code == 401
    assert (accepted.status_code, accepted.json()) == (200, {"recorded": 2, "code": 0, "msg": "成功"})
    db.expire_all()
    rows = [db.get(Delivery, d.id) for d in (delivered, failed)]
    assert [(r.status, r.reason, r.error, r.delivered_at) for r in rows if r] == [
        ("delivered", None, None, datetime(2026, 11, 23, 2, 0, 5, tzinfo=UTC)),
        ("failed", "undelivered", "MK:0001", None),
    ]


def test_a_tencent_status_callback_with_the_token_header(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a Tencent SMS delivery
    workspace = make_workspace(db, clock=clock)
    account = make_account(
        db,
        workspace=workspace,
        clock=clock,
        kind=AdapterKind.SMS_TENCENT,
        settings={"sdk_app_id": "1400006666", "sign_name": "星河咖啡", "callback_token": "tc-token"},
        credentials={"secret_id": "id", "secret_key": "key"},
    )
    (delivery,) = _sent(db, clock, workspace, account, ["2640:0001"])
    report = [
        {"user_receive_time": "2026-11-23 10:01:00", "nationcode": "86", "mobile": "13800000000",
         "report_status": "SUCCESS", "errmsg": "DELIVRD", "description": "用户短信送达成功", "sid": "2640:0001"},
    ]  # fmt: skip
    # when Tencent posts it with the token header
    response = client.post(
        f"/integrations/messaging/{account.id}/status", json=report, headers={"X-Siyu-Token": "tc-token"}
    )
    # then it is recorded and answered as Tencent expects
    assert (response.status_code, response.json()) == (200, {"recorded": 1, "result": 0, "errmsg": "OK"})
    db.expire_all()
    row = db.get(Delivery, delivery.id)
    assert row is not None and (row.status, row.delivered_at) == ("delivered", datetime(2026, 11, 23, 2, 1, tzinfo=UTC))


def test_record_status_never_moves_backwards(db: Session, clock: FrozenClock) -> None:
    # given a delivery already read
    workspace, account = _webhook(db, clock)
    (delivery,) = _sent(db, clock, workspace, account, ["evt_9"])
    record_status(db, account=account, reports=[StatusReport("evt_9", "read")], clock=clock)
    # when a late "delivered" and a "failed" arrive
    clock.advance(timedelta(minutes=1))
    recorded = record_status(
        db,
        account=account,
        reports=[StatusReport("evt_9", "delivered"), StatusReport("evt_9", "failed", error="late")],
        clock=clock,
    )
    # then both are recorded as received, but the delivery stays read
    row = db.get(Delivery, delivery.id)
    assert row is not None
    assert recorded == 2
    assert (row.status, row.read_at, row.delivered_at) == ("read", datetime(2026, 11, 23, 2, tzinfo=UTC), row.read_at)


@pytest.mark.parametrize(
    "timestamp",
    [b"9" * 400, b"1" * 13, b"+1795399200", b"1_795_399_200", b" 1795399200", b"-1", b"", "١٧٩٥٣٩٩٢٠٠".encode()],
)
def test_a_hostile_timestamp_is_refused(db: Session, clock: FrozenClock, client: TestClient, timestamp: bytes) -> None:
    # given a report whose timestamp is no 1–12 digit number (400 digits once overflowed a float)
    _, account = _webhook(db, clock)
    body = json.dumps({"reports": [{"id": "evt_1", "status": "delivered"}]}).encode()
    signature = sign(SECRET, timestamp.decode("latin-1"), body)
    # when it is posted
    response = client.post(
        f"/integrations/messaging/{account.id}/status",
        content=body,
        headers={"X-Siyu-Timestamp": timestamp, "X-Siyu-Signature": signature},
    )
    # then it is refused as untrusted, not a server error
    assert (response.status_code, response.json()["error"]["code"]) == (401, "bad_signature")
    assert _callbacks(db) == 0


def test_a_non_ascii_signature_is_refused(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a report with a signature header compare_digest cannot take as text
    _, account = _webhook(db, clock)
    body = b'{"id": "evt_1", "status": "delivered"}'
    headers = _signed(body, int(clock.now().timestamp())) | {"X-Siyu-Signature": "sha256=é".encode("latin-1")}
    # when it is posted
    response = client.post(f"/integrations/messaging/{account.id}/status", content=body, headers=headers)
    # then it is refused
    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        b"\xc3\x28\xff",
        b"[" * 100_000,
        b'{"reports": {"id": "evt_1", "status": "read"}}',
        b'"evt_1 read"',
        b'{"reports": [{"id": 1' + b"0" * 5000 + b', "status": "read"}]}',
    ],
    ids=["not-utf8", "deep-nesting", "reports-not-a-list", "a-string", "5000-digit-number"],
)
def test_a_signed_body_that_cannot_be_read_is_refused(
    db: Session, clock: FrozenClock, client: TestClient, body: bytes
) -> None:
    # given a correctly signed body that is not a report list
    _, account = _webhook(db, clock)
    # when it is posted
    headers = _signed(body, int(clock.now().timestamp()))
    response = client.post(f"/integrations/messaging/{account.id}/status", content=body, headers=headers)
    # then it is refused and nothing is written
    assert (response.status_code, response.json()["error"]["code"]) == (401, "bad_signature")
    assert _callbacks(db) == 0


def test_signed_rows_of_the_wrong_shape_are_skipped(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a sent delivery and a signed report list of rows with wrong types, NULs, lone
    # surrogates, huge ids, and one good row with a time before year 1 in UTC and a hostile error
    workspace, account = _webhook(db, clock)
    (delivery,) = _sent(db, clock, workspace, account, ["evt_1"])
    body = (
        b'{"reports": ['
        b'{"id": ["evt_1"], "status": "delivered"}, {"id": {"a": 1}, "status": "read"}, {"id": true, "status": "read"},'
        b'{"id": "evt_1", "status": ["read"]}, {"id": "evt_1", "status": {"x": 1}}, {"id": "evt_1", "status": null},'
        b'{"id": "evt_1\\u0000", "status": "read"}, {"id": "\\ud800", "status": "read"},'
        b'{"id": 1e999, "status": "read"},'
        b'{"id": ' + b"7" * 4000 + b', "status": "read"}, 7, null, "row", [],'
        b'{"id": "evt_1", "status": "failed", "at": "0001-01-01T00:00:00+08:00", "error": "\\u0000\\ud800bounced",'
        b' "event_id": ["e", 1]}'
        b"]}"
    )
    # when it is posted
    headers = _signed(body, int(clock.now().timestamp()))
    response = client.post(f"/integrations/messaging/{account.id}/status", content=body, headers=headers)
    # then only the good row is recorded: failed, with the time it arrived and the error cleaned
    assert (response.status_code, response.json()) == (200, {"recorded": 1})
    db.expire_all()
    row = db.get(Delivery, delivery.id)
    assert row is not None and (row.status, row.reason, row.error) == ("failed", "undelivered", "?bounced")
    callback = db.scalar(select(DeliveryCallback))
    assert callback is not None
    assert (callback.callback_key, callback.payload["at"]) == ("['e', 1]", None)


def _sms_account(db: Session, clock: FrozenClock, kind: AdapterKind) -> tuple[Workspace, ChannelAccount]:
    workspace = make_workspace(db, clock=clock)
    account = make_account(
        db,
        workspace=workspace,
        clock=clock,
        kind=kind,
        settings={"sign_name": "星河咖啡", "sdk_app_id": "1400006666"},
        credentials={"access_key_id": "ak", "access_key_secret": "sk", "secret_id": "id", "secret_key": "key"}
        | {"callback_token": "cb-token"},
    )
    return workspace, account


@pytest.mark.parametrize("kind", [AdapterKind.SMS_ALIYUN, AdapterKind.SMS_TENCENT])
@pytest.mark.parametrize(
    "body",
    [b"\xc3\x28\xff", b"[" * 100_000, b'{"biz_id": "1001^0", "sid": "1001^0"}', b"[1" + b"0" * 5000 + b"]"],
    ids=["not-utf8", "deep-nesting", "an-object", "5000-digit-number"],
)
def test_an_sms_report_that_cannot_be_read_is_refused(
    db: Session, clock: FrozenClock, client: TestClient, kind: AdapterKind, body: bytes
) -> None:
    # given an SMS account and a push with the right token whose body is no report array
    _, account = _sms_account(db, clock, kind)
    # when it is posted
    response = client.post(f"/integrations/messaging/{account.id}/status", params={"token": "cb-token"}, content=body)
    # then it is refused as unreadable, not a server error
    assert (response.status_code, response.json()["error"]["code"]) == (401, "bad_signature")
    assert _callbacks(db) == 0


@pytest.mark.parametrize(
    ("kind", "id_field", "time_field", "ok"),
    [
        (AdapterKind.SMS_ALIYUN, "biz_id", "report_time", {"success": True}),
        (AdapterKind.SMS_TENCENT, "sid", "user_receive_time", {"report_status": "SUCCESS"}),
    ],
)
def test_sms_report_rows_of_the_wrong_shape_are_skipped(
    db: Session,
    clock: FrozenClock,
    client: TestClient,
    kind: AdapterKind,
    id_field: str,
    time_field: str,
    ok: dict[str, object],
) -> None:
    # given one sent SMS and a push of hostile rows plus one good row dated before year 1 in UTC
    workspace, account = _sms_account(db, clock, kind)
    (delivery,) = _sent(db, clock, workspace, account, ["1001^0"])
    rows: list[object] = [
        {id_field: ["1001^0"]},
        {id_field: {"a": 1}},
        {id_field: True},
        {id_field: "1001^0\x00"},
        {id_field: "x" * 101},
        {id_field: 1e300},
        "row",
        7,
        None,
        {id_field: "1001^0", time_field: "0001-01-01 00:00:00", "err_code": {"x": [1]}, **ok},
    ]
    # when it is posted with the token
    response = client.post(f"/integrations/messaging/{account.id}/status", params={"token": "cb-token"}, json=rows)
    # then only the good row is recorded, at the time it arrived
    assert response.status_code == 200 and response.json()["recorded"] == 1
    db.expire_all()
    row = db.get(Delivery, delivery.id)
    assert row is not None and (row.status, row.delivered_at) == ("delivered", clock.now())
