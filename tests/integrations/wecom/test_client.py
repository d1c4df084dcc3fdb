"""The shared client against the fake server: tokens shared and refreshed, limits, errors, callbacks."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session
from wechatpy.enterprise.crypto import WeChatCrypto

from siyu.integrations.wecom.client import build_client, redact
from siyu.integrations.wecom.config import client_for
from siyu.integrations.wecom.errors import WecomError, WecomRateLimited
from siyu.integrations.wecom.fake.app import api
from siyu.integrations.wecom.fake.push import encrypt_for, event_xml
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.fake.state import FakeCorp
from siyu.integrations.wecom.ratelimit import Limit, MemoryCounter, RateLimiter
from siyu.kit.clock import FrozenClock
from tests.integrations.wecom.helpers import wecom_workspace


@api("test/echo")
def _echo(corp: FakeCorp, call: object) -> dict[str, object]:
    return {"corp": corp.corp_id}


def test_token_is_fetched_once_and_shared_between_clients(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    assert client_for(setup.config).call("GET", "test/echo") == {
        "corp": setup.corp.corp_id,
        "errcode": 0,
        "errmsg": "ok",
    }
    assert client_for(setup.config).call("POST", "test/echo", data={})["corp"] == setup.corp.corp_id
    assert setup.corp.calls_of("gettoken") == 1
    assert setup.corp.calls_of("test/echo") == 2


def test_expired_token_is_refreshed_and_the_call_repeated(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    client_for(setup.config).call("GET", "test/echo")
    setup.corp.expire_tokens()
    assert client_for(setup.config).call("GET", "test/echo")["corp"] == setup.corp.corp_id
    assert setup.corp.calls_of("gettoken") == 2


def test_wecom_error_codes_become_wecom_errors(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.corp.fail_next("test/echo", 40096)
    with pytest.raises(WecomError) as info:
        client_for(setup.config).call("GET", "test/echo")
    assert (info.value.code, info.value.reason, info.value.retryable) == (40096, "wecom_40096", False)
    assert "external_userid 无效" in str(info.value)
    setup.corp.fail_next("test/echo", 45009)
    with pytest.raises(WecomError) as info:
        client_for(setup.config).call("GET", "test/echo")
    assert (info.value.code, info.value.retryable) == (45009, True)
    # After a 45009 the limiter holds the API back for a minute instead of hammering WeCom.
    with pytest.raises(WecomRateLimited):
        client_for(setup.config).call("GET", "test/echo")


def test_wrong_secret_and_unreachable_server(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    client = build_client(setup.corp.corp_id, "wrong", base_url=fake_wecom.api_base_url)
    with pytest.raises(WecomError) as info:
        client.call("GET", "test/echo")
    assert info.value.code == 40001
    gone = build_client(setup.corp.corp_id, "x", base_url="http://127.0.0.1:9/cgi-bin/", timeout=1)
    with pytest.raises(WecomError) as info:
        gone.call("GET", "test/echo")
    assert (info.value.reason, info.value.retryable) == ("connection_error", True)


def test_limiter_waits_for_the_next_window_or_refuses() -> None:
    now = [120.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(
        MemoryCounter(),
        limits=lambda api: Limit(per_minute=2, per_hour=3),
        sleep=sleep,
        now=lambda: now[0],
        max_wait_s=5,
    )
    limiter.acquire("corp", "a")
    limiter.acquire("corp", "a")
    now[0] = 177.0  # the minute ends in 3 s: wait for it
    limiter.acquire("corp", "a")
    assert slept == [3.0]
    limiter.acquire("corp", "b")  # another API has its own budget
    with pytest.raises(WecomRateLimited) as info:  # the hour's 3 are spent: refused, not a long sleep
        limiter.acquire("corp", "a")
    assert info.value.retry_after_s == pytest.approx(3600 - 180)


def test_pushed_callback_decrypts_with_the_corp_keys(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    xml = event_xml({"ToUserName": setup.corp.corp_id, "Event": "change_external_contact", "CreateTime": 1700000000})
    params, body = encrypt_for(setup.corp, xml, timestamp=1700000000, nonce="abc")
    crypto = WeChatCrypto(setup.config.callback_token, setup.config.callback_aes_key, setup.config.corp_id)
    plain = crypto.decrypt_message(body.decode(), params["msg_signature"], params["timestamp"], params["nonce"])
    assert plain == xml


def test_redact_hides_tokens_and_secrets() -> None:
    text = "GET https://x/cgi-bin/gettoken?corpid=ww1&corpsecret=s3cr3t and access_token=abc&x=1"
    assert redact(text) == "GET https://x/cgi-bin/gettoken?corpid=ww1&corpsecret=*** and access_token=***&x=1"
