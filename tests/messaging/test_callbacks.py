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
