"""Tokens and rate limits shared across clients, threads and processes (Redis when configured)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.integrations.wecom.client import build_client
from siyu.integrations.wecom.errors import WecomRateLimited
from siyu.integrations.wecom.fake.app import api
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.fake.state import FakeCorp
from siyu.integrations.wecom.ratelimit import Limit, MemoryCounter, RateLimiter, RedisCounter, rate_limiter
from siyu.integrations.wecom.tokens import token_store

BROKER_URL = os.environ.get("SIYU_TEST_BROKER_URL")


@api("test/process_echo")
def _echo(corp: FakeCorp, call: object) -> dict[str, object]:
    return {}


needs_redis = pytest.mark.skipif(not BROKER_URL, reason="SIYU_TEST_BROKER_URL not set")


def _limiter(counter: MemoryCounter | RedisCounter, per_minute: int, now: list[float]) -> RateLimiter:
    def sleep(seconds: float) -> None:
        now[0] += seconds

    return RateLimiter(
        counter,
        limits=lambda api: Limit(per_minute=per_minute, per_hour=10 * per_minute),
        sleep=sleep,
        now=lambda: now[0],
        max_wait_s=0,
    )


@settings(max_examples=60, deadline=None)
@given(
    per_minute=st.integers(1, 20),
    gaps=st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=80),
)
def test_no_minute_ever_admits_more_than_its_limit(per_minute: int, gaps: list[float]) -> None:
    """Whatever the timing of the calls, the admitted ones per clock minute never exceed the limit,
    and a refused call is refused only when that minute's budget is spent."""
    now = [1_000_000.0]
    limiter = _limiter(MemoryCounter(), per_minute, now)
    admitted: dict[int, int] = {}
    for gap in gaps:
        now[0] += gap
        minute = int(now[0] // 60)
        try:
            limiter.acquire("corp", "api")
        except WecomRateLimited as exc:
            assert admitted.get(minute, 0) == per_minute
            assert 0 < exc.retry_after_s <= 60
            continue
        admitted[minute] = admitted.get(minute, 0) + 1
    assert all(count <= per_minute for count in admitted.values())


def test_threads_share_one_budget() -> None:
    now = [6_000_000.0]
    limiter = _limiter(MemoryCounter(), 50, now)
    admitted: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            try:
                limiter.acquire("corp", "externalcontact/get")
                with lock:
                    admitted.append(1)
            except WecomRateLimited:
                with lock:
                    refused.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(admitted), len(refused)) == (50, 110)


@needs_redis
def test_redis_counters_are_shared_between_connections() -> None:
    assert BROKER_URL
    corp = f"corp-{uuid.uuid4().hex[:8]}"
    now = [9_000_000.0]
    first = _limiter(RedisCounter(BROKER_URL), 3, now)
    second = _limiter(RedisCounter(BROKER_URL), 3, now)  # another process's connection
    first.acquire(corp, "api")
    second.acquire(corp, "api")
    first.acquire(corp, "api")
    with pytest.raises(WecomRateLimited):
        second.acquire(corp, "api")
    second.penalize(corp, "other", 30)
    with pytest.raises(WecomRateLimited) as info:
        first.acquire(corp, "other")
    assert 29 < info.value.retry_after_s <= 30


_CHILD = """
import sys
from siyu.integrations.wecom.client import build_client
client = build_client(sys.argv[1], sys.argv[2], base_url=sys.argv[3], broker_url=sys.argv[4])
print(client.call("GET", "test/process_echo").get("errcode"), client.access_token)
"""


@needs_redis
def test_processes_share_one_access_token(fake_wecom: RunningFake) -> None:
    """Three processes using the same corp fetch one token between them (Redis store)."""
    assert BROKER_URL
    corp_id = f"wwproc{uuid.uuid4().hex[:8]}"
    corp = fake_wecom.fake.add_corp(corp_id, contact_secret="s3cret")
    tokens = set()
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, corp_id, "s3cret", fake_wecom.api_base_url, BROKER_URL],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
        assert out[0] == "0"
        tokens.add(out[1])
    assert len(tokens) == 1
    assert corp.calls_of("gettoken") == 1
    # The parent (a fourth process) reuses it too.
    client = build_client(corp_id, "s3cret", base_url=fake_wecom.api_base_url, broker_url=BROKER_URL)
    assert client.access_token in tokens
    token_store(BROKER_URL).delete(client.access_token_key)


def test_deployment_picks_redis_only_for_a_redis_broker() -> None:
    assert rate_limiter(None) is rate_limiter("amqp://guest@localhost")
    assert token_store(None) is token_store("")
