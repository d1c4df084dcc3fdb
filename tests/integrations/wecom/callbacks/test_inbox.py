"""The callback endpoint: URL verification, signatures, replays, duplicates, malformed pushes."""

from __future__ import annotations

import time
from datetime import timedelta

import xmltodict
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from wechatpy.crypto import _get_signature

from siyu.db import Database
from siyu.integrations.wecom.fake.push import encrypt_for, event_xml, push_event
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.fake.state import FakeCorp
from siyu.kit.clock import FrozenClock
from siyu.messaging.crypto import encrypt_credentials
from siyu.models import EventStatus, IntegrationEvent, WecomIntegration
from tests.integrations.wecom.callbacks.conftest import Wired
from tests.integrations.wecom.helpers import wecom_workspace
from tests.integrations.wecom.inbox import CALLBACK_PATH, drain, wire


def _events(db: Session, workspace_id: int) -> list[IntegrationEvent]:
    db.expire_all()
    return list(
        db.scalars(
            select(IntegrationEvent).where(IntegrationEvent.workspace_id == workspace_id).order_by(IntegrationEvent.id)
        )
    )


def _integration(db: Session, workspace_id: int) -> WecomIntegration:
    db.expire_all()
    row = db.scalar(select(WecomIntegration).where(WecomIntegration.workspace_id == workspace_id))
    assert row is not None
    return row


def test_url_verification_answers_the_decrypted_echostr(db: Session, clock: FrozenClock, wired: Wired) -> None:
    params, body = encrypt_for(wired.setup.corp, "echo-4711")
    echostr = xmltodict.parse(body)["xml"]["Encrypt"]
    ws = wired.setup.workspace.id
    answer = wired.client.get(CALLBACK_PATH, params={**params, "echostr": echostr, "ws": str(ws)})
    assert (answer.status_code, answer.text) == (200, "echo-4711")
    assert _integration(db, ws).callback_verified_at == clock.now()
    wrong = wired.client.get(
        CALLBACK_PATH, params={**params, "msg_signature": "0" * 40, "echostr": echostr, "ws": str(ws)}
    )
    assert (wrong.status_code, wrong.text) == (403, "wrong signature")


def test_a_push_is_stored_once_and_its_retries_counted(db: Session, clock: FrozenClock, wired: Wired) -> None:
    statuses = push_event(wired.setup.corp, {"Event": "change_external_contact", "ChangeType": "x"}, times=3)
    assert statuses == [200, 200, 200]
    [event] = _events(db, wired.setup.workspace.id)
    assert (event.event, event.change_type, event.status, event.duplicates) == (
        "change_external_contact",
        "x",
        EventStatus.RECEIVED,
        2,
    )
    assert event.payload["ToUserName"] == wired.corp_id
    assert _integration(db, wired.setup.workspace.id).last_event_at == clock.now()


def test_unknown_event_is_ignored_and_kept(db: Session, database: Database, clock: FrozenClock, wired: Wired) -> None:
    push_event(wired.setup.corp, {"Event": "brand_new_event"})
    assert drain(database, clock) == [{"status": "ignored", "attempts": 1}]
    [event] = _events(db, wired.setup.workspace.id)
    assert (event.status, event.processed_at) == (EventStatus.IGNORED, clock.now())


def test_workspace_found_by_corp_id_without_ws(db: Session, wired: Wired) -> None:
    wire(wired.setup.corp, wired.client, None)
    assert push_event(wired.setup.corp, {"Event": "brand_new_event"}) == [200]
    assert len(_events(db, wired.setup.workspace.id)) == 1


def _post(wired: Wired, params: dict[str, str], body: bytes, ws: int | None = None) -> tuple[int, str]:
    query = {**params, "ws": str(ws if ws is not None else wired.setup.workspace.id)}
    answer = wired.client.post(CALLBACK_PATH, params=query, content=body)
    return answer.status_code, answer.text


def test_wrong_signature_unknown_workspace_and_replay_are_refused(db: Session, wired: Wired) -> None:
    corp, ws = wired.setup.corp, wired.setup.workspace.id
    xml = event_xml({"ToUserName": corp.corp_id, "Event": "brand_new_event"})
    params, body = encrypt_for(corp, xml)
    assert _post(wired, {**params, "msg_signature": "f" * 40}, body) == (403, "wrong signature")
    assert "callback push refused: wrong signature" in (_integration(db, ws).last_error or "")
    assert _post(wired, params, body, ws=ws + 100_000) == (403, "unknown workspace")
    old_params, old_body = encrypt_for(corp, xml, timestamp=int(time.time()) - 11 * 60)
    assert _post(wired, old_params, old_body) == (403, "timestamp too old: replayed push refused")
    assert _post(wired, params, body, ws=0) == (403, "unknown workspace")
    assert wired.client.post(CALLBACK_PATH, params={**params, "ws": "x1"}, content=body).status_code == 400
    assert _events(db, ws) == []
    assert _post(wired, params, body) == (200, "success")


def test_malformed_xml_and_bad_aes_are_400(db: Session, clock: FrozenClock, wired: Wired) -> None:
    corp, ws = wired.setup.corp, wired.setup.workspace.id
    params, _ = encrypt_for(corp, "<xml/>")
    assert _post(wired, params, b"<xml><Encrypt>oops") == (400, "malformed XML envelope")
    bad_params, bad_body = encrypt_for(corp, "<xml><Event>broken</xml>")
    assert _post(wired, bad_params, bad_body) == (400, "malformed XML")
    assert _integration(db, ws).last_error == "callback push refused: malformed XML"
    timestamp, nonce, encrypt = str(int(time.time())), "n1", "bm90IGFlcw=="
    signed = {
        "msg_signature": _get_signature(corp.callback_token, timestamp, nonce, encrypt),
        "timestamp": timestamp,
        "nonce": nonce,
    }
    body = f"<xml><ToUserName>{corp.corp_id}</ToUserName><Encrypt>{encrypt}</Encrypt></xml>".encode()
    status, text = _post(wired, signed, body)
    assert status == 400 and text.startswith("cannot decrypt push")
    # Refusals are noted at most once a minute: the first one stays.
    assert _integration(db, ws).last_error == "callback push refused: malformed XML"
    clock.advance(timedelta(seconds=61))
    assert _post(wired, signed, body)[0] == 400
    assert (_integration(db, ws).last_error or "").startswith("callback push refused: cannot decrypt push")
    assert _integration(db, ws).last_error_at == clock.now()
    assert db.scalar(select(func.count()).select_from(IntegrationEvent).where(IntegrationEvent.workspace_id == ws)) == 0


def test_oversized_push_is_refused_unread(db: Session, wired: Wired) -> None:
    corp, ws = wired.setup.corp, wired.setup.workspace.id
    params, body = encrypt_for(corp, event_xml({"ToUserName": corp.corp_id, "Event": "x", "Pad": "a" * 70_000}))
    assert len(body) > 64 * 1024
    assert _post(wired, params, body) == (413, "push too large")
    assert _events(db, ws) == [] and _integration(db, ws).last_error is None


def _echo(wired: Wired, corp: FakeCorp, ws: int | None, text: str = "echo-1") -> tuple[int, str]:
    params, body = encrypt_for(corp, text)
    query = {**params, "echostr": xmltodict.parse(body)["xml"]["Encrypt"]}
    if ws is not None:
        query["ws"] = str(ws)
    answer = wired.client.get(CALLBACK_PATH, params=query)
    return answer.status_code, answer.text


def test_a_push_signed_for_another_workspace_is_refused(
    db: Session, clock: FrozenClock, wired: Wired, fake_wecom: RunningFake
) -> None:
    other = wecom_workspace(db, clock=clock, fake=fake_wecom)
    db.commit()
    a, b = wired.setup.corp, other.workspace.id
    params, body = encrypt_for(a, event_xml({"ToUserName": a.corp_id, "Event": "brand_new_event"}))
    assert _post(wired, params, body, ws=b) == (403, "wrong signature")
    assert _echo(wired, a, b) == (403, "wrong signature")
    assert _events(db, b) == [] and _events(db, wired.setup.workspace.id) == []
    assert _integration(db, b).last_error == "callback push refused: wrong signature"


def test_same_token_and_key_for_another_corp_is_refused(
    db: Session, clock: FrozenClock, wired: Wired, fake_wecom: RunningFake
) -> None:
    a = wired.setup.corp
    other = wecom_workspace(db, clock=clock, fake=fake_wecom)
    other.integration.secrets_encrypted = encrypt_credentials(
        {
            "contact_secret": other.corp.contact_secret,
            "app_secret": other.corp.app_secret,
            "callback_token": a.callback_token,
            "callback_aes_key": a.callback_aes_key,
        }
    )
    db.commit()
    params, body = encrypt_for(a, event_xml({"ToUserName": a.corp_id, "Event": "brand_new_event"}))
    assert _post(wired, params, body, ws=other.workspace.id) == (403, "push for another corp")
    assert _echo(wired, a, other.workspace.id) == (403, "echostr for another corp")
    assert _events(db, other.workspace.id) == []


def test_verification_without_ws_finds_the_integration_by_its_token(
    db: Session, clock: FrozenClock, wired: Wired
) -> None:
    assert _echo(wired, wired.setup.corp, None, "echo-no-ws") == (200, "echo-no-ws")
    assert _integration(db, wired.setup.workspace.id).callback_verified_at == clock.now()
    params, body = encrypt_for(wired.setup.corp, "x")
    query = {**params, "msg_signature": "0" * 40, "echostr": xmltodict.parse(body)["xml"]["Encrypt"]}
    answer = wired.client.get(CALLBACK_PATH, params=query)
    assert (answer.status_code, answer.text) == (403, "unknown workspace")
