"""The official account's callback: verification, signatures, dedup, follow/scan/unfollow."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.integrations.wechat import callbacks
from siyu.integrations.wechat.client import OfficialClient
from siyu.integrations.wechat.tasks import sweep
from siyu.integrations.wecom.fake.official import fail_next, simulate_scan, simulate_subscribe, simulate_unsubscribe
from siyu.integrations.wecom.fake.push import event_xml
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from siyu.livecodes.state import encode_state
from siyu.models import (
    Consent,
    ConsentChannel,
    ConsentStatus,
    Customer,
    CustomerEvent,
    CustomerTag,
    EventSource,
    EventStatus,
    ExperimentExposure,
    Identity,
    IdentityType,
    IntegrationEvent,
    LiveCodeScan,
    WechatOfficialAccount,
)
from tests.factories import make_channel, make_experiment, make_live_code, make_staff, make_tag
from tests.integrations.wechat.helpers import OaSetup, oa_workspace, wire


def _sign(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def _events(db: Session, setup: OaSetup) -> list[IntegrationEvent]:
    return list(
        db.scalars(
            select(IntegrationEvent)
            .where(
                IntegrationEvent.workspace_id == setup.workspace.id,
                IntegrationEvent.source == EventSource.OFFICIAL_ACCOUNT,
            )
            .order_by(IntegrationEvent.id)
        )
    )


def _customer_of(db: Session, setup: OaSetup, openid: str) -> Customer | None:
    return db.scalar(
        select(Customer)
        .join(Identity, Identity.customer_id == Customer.id)
        .where(Identity.type == IdentityType.WECHAT_OPENID, Identity.value == f"{setup.config.app_id}:{openid}")
    )


def _consent_changes(db: Session, customer: Customer) -> list[dict[str, object]]:
    return [
        dict(p)
        for p in db.scalars(
            select(CustomerEvent.properties)
            .where(CustomerEvent.customer_id == customer.id, CustomerEvent.type == "consent.changed")
            .order_by(CustomerEvent.id)
        )
    ]


def _consent(db: Session, customer: Customer) -> str | None:
    db.expire_all()
    return db.scalar(
        select(Consent.status).where(
            Consent.customer_id == customer.id, Consent.channel == ConsentChannel.OFFICIAL_ACCOUNT
        )
    )


def test_url_verification_answers_the_echostr(
    db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    ts, nonce = str(int(time.time())), "n0nce"
    good = {"ws": str(setup.workspace.id), "timestamp": ts, "nonce": nonce, "echostr": "e-123"}
    ok = client.get(
        "/integrations/wechat/callback", params={**good, "signature": _sign(setup.config.callback_token, ts, nonce)}
    )
    bad = client.get("/integrations/wechat/callback", params={**good, "signature": "0" * 40})
    unknown = client.get("/integrations/wechat/callback", params={**good, "ws": "999999999", "signature": "x"})
    assert (ok.status_code, ok.text) == (200, "e-123")
    assert bad.status_code == 403
    assert unknown.status_code == 404


def test_a_follow_through_a_live_code_qr_is_attributed_and_granted(
    db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    statuses = wire(setup, client)
    staff = make_staff(db, workspace=setup.workspace, clock=clock)
    channel = make_channel(db, workspace=setup.workspace, clock=clock, name="门店海报")
    experiment = make_experiment(db, workspace=setup.workspace, clock=clock)
    tag = make_tag(db, workspace=setup.workspace, name="公众号粉丝")
    code = make_live_code(
        db,
        workspace=setup.workspace,
        clock=clock,
        routes=[{"staff_id": staff.id}],
        channel_id=channel.id,
        experiment_id=experiment.id,
        tag_ids=[tag.id],
    )
    exposure = ExperimentExposure(
        workspace_id=setup.workspace.id,
        experiment_id=experiment.id,
        variant_key="B",
        visitor_id="v-1",
        exposed_at=clock.now(),
    )
    scan = LiveCodeScan(
        workspace_id=setup.workspace.id,
        live_code_id=code.id,
        channel_id=channel.id,
        variant="B",
        visitor_id="v-1",
        outcome="routed",
        scanned_at=clock.now(),
    )
    db.add_all([exposure, scan])
    db.flush()
    scene = encode_state(code.id, channel.id, "B")

    result = simulate_subscribe(setup.fake, setup.config.app_id, scene=scene, nickname="小美", unionid="uUNION1")

    assert statuses == [200]
    customer = _customer_of(db, setup, result["openid"])
    assert customer is not None
    assert customer.name is None  # user/info gives no nickname since December 2021
    assert customer.first_channel == "门店海报"
    assert (
        db.scalar(
            select(Identity.customer_id).where(
                Identity.type == IdentityType.WECHAT_UNIONID, Identity.value == "uUNION1"
            )
        )
        == customer.id
    )
    assert _consent(db, customer) == ConsentStatus.GRANTED
    followed = db.scalar(
        select(CustomerEvent).where(CustomerEvent.customer_id == customer.id, CustomerEvent.type == "wechat.followed")
    )
    assert followed is not None
    assert (followed.properties["live_code_id"], followed.properties["channel_id"]) == (code.id, channel.id)
    assert (followed.properties["scan_id"], followed.properties["variant"]) == (scan.id, "B")
    assert followed.properties["tags_applied"] == [tag.id]
    db.refresh(scan)
    db.refresh(exposure)
    assert scan.customer_id == customer.id
    assert (exposure.converted_at, exposure.customer_id) == (clock.now(), customer.id)
    assert db.scalar(select(CustomerTag.tag_id).where(CustomerTag.customer_id == customer.id)) == tag.id
    [event] = _events(db, setup)
    assert (event.event, event.status, event.payload["EventKey"]) == (
        "subscribe",
        EventStatus.PROCESSED,
        "qrscene_" + scene,
    )


def test_a_scan_by_a_follower_claims_no_scan_and_keeps_the_consent(
    db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    wire(setup, client)
    staff = make_staff(db, workspace=setup.workspace, clock=clock)
    code = make_live_code(db, workspace=setup.workspace, clock=clock, routes=[{"staff_id": staff.id}])
    openid = simulate_subscribe(setup.fake, setup.config.app_id)["openid"]
    customer = _customer_of(db, setup, openid)
    assert customer is not None
    followed_at = clock.now()
    clock.advance(timedelta(minutes=5))
    someone_else = LiveCodeScan(
        workspace_id=setup.workspace.id,
        live_code_id=code.id,
        visitor_id="v-2",
        outcome="routed",
        scanned_at=clock.now(),
    )
    db.add(someone_else)
    db.flush()

    simulate_scan(setup.fake, setup.config.app_id, openid=openid, scene=encode_state(code.id))

    db.expire_all()
    consent = db.scalar(
        select(Consent).where(Consent.customer_id == customer.id, Consent.channel == ConsentChannel.OFFICIAL_ACCOUNT)
    )
    assert consent is not None
    assert (consent.status, consent.changed_at.replace(tzinfo=None)) == (
        ConsentStatus.GRANTED,
        followed_at.replace(tzinfo=None),
    )
    assert len(_consent_changes(db, customer)) == 1
    assert db.get(LiveCodeScan, someone_else.id).customer_id is None  # type: ignore[union-attr]
    scan_event = db.scalar(
        select(CustomerEvent.properties)
        .where(CustomerEvent.customer_id == customer.id, CustomerEvent.type == "wechat.followed")
        .order_by(CustomerEvent.id.desc())
    )
    assert scan_event is not None
    assert (scan_event["event"], scan_event["live_code_id"], scan_event["scan_id"]) == ("SCAN", code.id, None)


def test_a_retried_push_is_stored_once(
    db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server, aes=False)
    statuses = wire(setup, client)

    result = simulate_subscribe(setup.fake, setup.config.app_id, times=3)

    assert statuses == [200, 200, 200]
    [event] = _events(db, setup)
    assert (event.status, event.duplicates, event.attempts) == (EventStatus.PROCESSED, 2, 1)
    customer = _customer_of(db, setup, result["openid"])
    assert customer is not None
    [change] = _consent_changes(db, customer)
    assert (change["channel"], change["status"]) == ("official_account", "granted")


def test_scan_by_a_follower_and_unfollow(
    db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    wire(setup, client)
    staff = make_staff(db, workspace=setup.workspace, clock=clock)
    code = make_live_code(db, workspace=setup.workspace, clock=clock, routes=[{"staff_id": staff.id}])
    openid = simulate_subscribe(setup.fake, setup.config.app_id)["openid"]

    simulate_scan(setup.fake, setup.config.app_id, openid=openid, scene=encode_state(code.id))
    customer = _customer_of(db, setup, openid)
    assert customer is not None
    scans = db.scalars(
        select(CustomerEvent.properties).where(
            CustomerEvent.customer_id == customer.id, CustomerEvent.type == "wechat.followed"
        )
    ).all()
    assert sorted(str(p["event"]) for p in scans) == ["SCAN", "subscribe"]
    assert [p.get("live_code_id") for p in scans if p["event"] == "SCAN"] == [code.id]

    simulate_unsubscribe(setup.fake, setup.config.app_id, openid=openid)
    assert _consent(db, customer) == ConsentStatus.UNSUBSCRIBED
    assert [e.event for e in _events(db, setup)] == ["subscribe", "SCAN", "unsubscribe"]


def _post(client: TestClient, setup: OaSetup, timestamp: str, nonce: str, body: bytes, **extra: str) -> int:
    signature = extra.pop("signature", None) or _sign(setup.config.callback_token, timestamp, nonce)
    params = {"ws": str(setup.workspace.id), "timestamp": timestamp, "nonce": nonce, "signature": signature, **extra}
    return client.post("/integrations/wechat/callback", params=params, content=body).status_code


def _text_xml(openid: str = "o1") -> bytes:
    return f"<xml><FromUserName>{openid}</FromUserName><MsgType>text</MsgType></xml>".encode()


def test_untrusted_pushes_are_refused_and_counted_at_most_once_a_minute(
    db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server, aes=False)
    xml = event_xml(
        {"ToUserName": "gh_x", "FromUserName": "o1", "CreateTime": 1, "MsgType": "event", "Event": "subscribe"}
    ).encode()
    now = str(int(time.time()))
    old = str(int(time.time()) - 3600)

    def last_error() -> str | None:
        db.expire_all()
        account = db.get(WechatOfficialAccount, setup.account.id)
        assert account is not None
        return account.last_error

    assert _post(client, setup, now, "n1", xml, signature="f" * 40) == 403
    assert last_error() == "callback rejected: wrong signature"
    assert _post(client, setup, old, "n2", xml) == 403
    assert _post(client, setup, now, "n3", b"<xml><oops") == 400
    assert last_error() == "callback rejected: wrong signature"  # throttled: no write per rejection
    clock.advance(timedelta(seconds=61))
    assert _post(client, setup, now, "n4", b"<xml><oops") == 400
    assert last_error() == "callback rejected: malformed XML"
    assert _post(client, setup, now, "n5", _text_xml()) == 200
    assert [(e.event, e.status) for e in _events(db, setup)] == [("text", EventStatus.IGNORED)]


def test_safe_mode_refuses_plain_pushes_and_a_reused_nonce(
    db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake
) -> None:
    safe = oa_workspace(db, clock=clock, fake=fake_server)
    plain = oa_workspace(db, clock=clock, fake=fake_server, aes=False)
    now = str(int(time.time()))

    # a plain body signed only over token/timestamp/nonce: anyone holding one signature could forge it
    assert _post(client, safe, now, "p1", _text_xml()) == 403
    assert _post(client, plain, now, "p2", _text_xml("o1")) == 200
    assert _post(client, plain, now, "p2", _text_xml("o1")) == 200  # WeChat's retry: same body
    assert _post(client, plain, now, "p2", _text_xml("o-forged")) == 403
    assert _events(db, safe) == []
    [event] = _events(db, plain)
    assert (event.payload["FromUserName"], event.duplicates) == ("o1", 1)


def test_a_too_large_body_is_refused_before_reading(
    db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake
) -> None:
    from siyu.integrations.wechat.api import MAX_BODY

    setup = oa_workspace(db, clock=clock, fake=fake_server, aes=False)
    now = str(int(time.time()))
    assert _post(client, setup, now, "big", b"<xml>" + b"x" * MAX_BODY + b"</xml>") == 413
    assert _events(db, setup) == []


def test_open_push_uses_constant_time_comparisons(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = callbacks.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(callbacks.hmac, "compare_digest", spy)
    config = callbacks.WechatConfig(1, 1, "wx1", "", True, "snsapi_base", "s", "tok", "")
    with pytest.raises(callbacks.CallbackRejected) as caught:
        callbacks.verify_url(config, signature="0" * 40, timestamp="1", nonce="n", echostr="e")
    assert caught.value.status == 403
    assert seen == [(callbacks.signature_of("tok", "1", "n").encode(), b"0" * 40)]


def test_bad_aes_is_refused(db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    ts, nonce = str(int(time.time())), "n1"
    params = {
        "ws": str(setup.workspace.id),
        "timestamp": ts,
        "nonce": nonce,
        "signature": _sign(setup.config.callback_token, ts, nonce),
        "encrypt_type": "aes",
        "msg_signature": _sign(setup.config.callback_token, ts, nonce),
    }
    response = client.post(
        "/integrations/wechat/callback", params=params, content=b"<xml><Encrypt>bm90IGFlcw==</Encrypt></xml>"
    )
    assert response.status_code == 403
    assert _events(db, setup) == []


def test_a_failed_user_info_is_retried_by_the_sweep(
    db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake, database: object
) -> None:
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    wire(setup, client)
    fail_next(setup.fake, setup.config.app_id, "user/info", -1)

    openid = simulate_subscribe(setup.fake, setup.config.app_id, unionid="uRETRY")["openid"]

    [event] = _events(db, setup)
    assert (event.status, event.attempts) == (EventStatus.FAILED, 1)
    assert "user/info" in (event.error or "")
    assert _customer_of(db, setup, openid) is None

    totals = sweep(database, clock, workspace_id=setup.workspace.id)  # type: ignore[arg-type]

    assert totals == {"workspaces": 1, "retried": 1, "processed": 1}
    db.expire_all()
    assert (db.get(IntegrationEvent, event.id).status, event.attempts) == (EventStatus.PROCESSED, 2)  # type: ignore[union-attr]
    assert _customer_of(db, setup, openid) is not None


def test_an_expired_token_is_refetched(
    db: Session, clock: FrozenClock, client: TestClient, fake_server: RunningFake
) -> None:
    from siyu.integrations.wecom.fake.official import expire_tokens

    setup = oa_workspace(db, clock=clock, fake=fake_server)
    wire(setup, client)
    first = simulate_subscribe(setup.fake, setup.config.app_id, unionid="uFIRST")["openid"]
    expire_tokens(setup.fake, setup.config.app_id)
    second = simulate_subscribe(setup.fake, setup.config.app_id, unionid="uSECOND")["openid"]
    unionids = [
        db.scalar(
            select(Identity.value).where(Identity.customer_id == c.id, Identity.type == IdentityType.WECHAT_UNIONID)
        )
        if c
        else None
        for c in (_customer_of(db, setup, first), _customer_of(db, setup, second))
    ]
    assert unionids == ["uFIRST", "uSECOND"]


def test_user_info_is_asked_with_no_transaction_open(
    db: Session,
    clock: FrozenClock,
    client: TestClient,
    fake_server: RunningFake,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The push is stored and committed before `user/info`, in the request and in the sweep; the
    event is processed in a transaction of its own afterwards."""
    setup = oa_workspace(db, clock=clock, fake=fake_server)
    wire(setup, client)
    open_transactions = [0]
    seen: list[tuple[int, list[str]]] = []
    transaction = database.transaction

    @contextmanager
    def counted(*, read_only: bool = False) -> Iterator[Session]:
        open_transactions[0] += 1
        try:
            with transaction(read_only=read_only) as session:
                yield session
        finally:
            open_transactions[0] -= 1

    call = OfficialClient.call

    def watched(self: OfficialClient, method: str, api: str, **kwargs: Any) -> dict[str, Any]:
        if api == "user/info":
            depth = open_transactions[0]
            with transaction(read_only=True) as session:
                stored = [str(s) for s in session.scalars(select(IntegrationEvent.status))]
            seen.append((depth, stored))
        return call(self, method, api, **kwargs)

    monkeypatch.setattr(database, "transaction", counted)
    monkeypatch.setattr(OfficialClient, "call", watched)
    fail_next(setup.fake, setup.config.app_id, "user/info", -1)
    openid = simulate_subscribe(setup.fake, setup.config.app_id, unionid="uCOMMIT")["openid"]
    assert sweep(database, clock, workspace_id=setup.workspace.id)["processed"] == 1
    assert seen == [(0, [EventStatus.RECEIVED]), (0, [EventStatus.FAILED])]
    assert _customer_of(db, setup, openid) is not None
