"""Rate limits on the sign-in form and the public pages: per IP, per account, windows, proxies, Redis."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.integrations.wecom.ratelimit import MemoryCounter
from siyu.kit.clock import FrozenClock
from siyu.ops.ratelimit import (
    RateLimits,
    RedisWindowCounter,
    client_ip,
    is_public,
    rate_subject,
    trusted_networks,
)
from tests.factories import make_user, make_workspace
from tests.web.conftest import PASSWORD, csrf_of

BROKER_URL = os.environ.get("SIYU_TEST_BROKER_URL")
T0 = 1_795_000_040.0
"""20 s into a minute window (1_795_000_020 is a multiple of 60): Retry-After is exactly 40."""


def _app(settings: Settings, database: Database, clock: FrozenClock, **limits: object) -> FastAPI:
    app = create_app(settings.model_copy(update=limits), database=database, clock=clock, run_worker=False)
    app.state.rate_limits.now = lambda: T0
    return app


@pytest.fixture
def login_client(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    app = _app(settings, database, clock, login_attempts_per_account=2, login_attempts_per_ip=4)
    with TestClient(app, follow_redirects=False) as client:
        yield client


def _post_login(client: TestClient, email: str, password: str = "wrong-password") -> Any:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def test_login_is_refused_with_429_after_the_per_account_limit(
    login_client: TestClient, db: Session, clock: FrozenClock
) -> None:
    workspace = make_workspace(db, clock=clock)
    make_user(db, clock=clock, workspace=workspace, email="ops@example.com", password=PASSWORD)
    db.commit()
    # two wrong passwords for one account are answered normally
    assert [_post_login(login_client, "ops@example.com").status_code for _ in range(2)] == [401, 401]
    # the third attempt, even with the right password, is refused before the password is checked
    refused = _post_login(login_client, "OPS@example.com ", PASSWORD)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "40"
    assert "尝试过于频繁，请稍后再试" in refused.text
    assert login_client.get("/").headers["location"] == "/login?next=/"
    # another account from the same client still gets its answer (the per-IP budget is 4)
    assert _post_login(login_client, "other@example.com").status_code == 401
    # and a new minute opens a new window
    login_client.app.state.rate_limits.now = lambda: T0 + 60  # type: ignore[attr-defined]
    assert _post_login(login_client, "ops@example.com", PASSWORD).status_code == 303


def test_login_is_refused_after_the_per_ip_limit_whatever_the_account(login_client: TestClient) -> None:
    statuses = [_post_login(login_client, f"guess{i}@example.com").status_code for i in range(5)]
    assert statuses == [401, 401, 401, 401, 429]


@pytest.fixture
def public_client(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    app = _app(settings, database, clock, public_requests_per_ip=2, trusted_proxies="10.0.0.0/8")
    with TestClient(app, follow_redirects=False, client=("10.0.0.5", 40000)) as client:
        yield client


def test_public_pages_get_429_with_retry_after_past_the_per_ip_limit(public_client: TestClient) -> None:
    # given a client behind the trusted proxy that has used its two requests on public pages
    ip = {"x-forwarded-for": "203.0.113.9"}
    assert public_client.get("/s/nope", headers=ip).status_code == 404
    assert public_client.get("/q/nope", headers=ip).status_code == 404
    # then the next one is refused: JSON for a script, a small zh-CN page for a browser
    refused = public_client.get("/r/nope", headers=ip)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "40"
    assert refused.json() == {
        "error": {"code": "rate_limited", "message": "请求过于频繁，请稍后再试", "details": {"retry_after_s": 40}}
    }
    page = public_client.get("/m/", headers=ip | {"accept": "text/html", "accept-language": "en"})
    assert page.status_code == 429
    assert "<title>Too many requests</title>" in page.text
    # another visitor behind the same proxy has a budget of their own
    assert public_client.get("/s/nope", headers={"x-forwarded-for": "203.0.113.10"}).status_code == 404
    # the console and the API are not counted against the public budget
    assert public_client.get("/login", headers=ip).status_code == 200
    assert public_client.get("/api/v1/customers", headers=ip).status_code == 401


def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    trusted = trusted_networks("10.0.0.0/8, 192.168.1.7")

    def scope(peer: str, *forwarded: str) -> dict[str, object]:
        return {"client": (peer, 1), "headers": [(b"x-forwarded-for", f.encode()) for f in forwarded]}

    # an untrusted peer's header is the client's own claim: ignored
    assert client_ip(scope("198.51.100.1", "1.2.3.4"), trusted) == "198.51.100.1"
    # a trusted proxy: the nearest hop it did not add itself, never a spoofed hop further left
    assert client_ip(scope("10.0.0.5", "1.2.3.4, 203.0.113.9, 192.168.1.7"), trusted) == "203.0.113.9"
    assert client_ip(scope("10.0.0.5", "1.2.3.4", "203.0.113.9"), trusted) == "203.0.113.9"
    assert client_ip(scope("10.0.0.5", "1.2.3.4, 203.0.113.9:5123"), trusted) == "203.0.113.9"
    assert client_ip(scope("10.0.0.5", "[2001:db8::7]:443"), trusted) == "2001:db8::7"
    # every hop a trusted proxy: the leftmost is the client's own text, so the peer stands
    assert client_ip(scope("10.0.0.5", "10.9.9.9, 192.168.1.7"), trusted) == "10.0.0.5"
    assert client_ip(scope("10.0.0.5"), trusted) == "10.0.0.5"
    assert client_ip(scope("10.0.0.5", "1.2.3.4"), ()) == "10.0.0.5"
    with pytest.raises(ValueError, match=r"SIYU_TRUSTED_PROXIES: 'proxy\.local'"):
        trusted_networks("10.0.0.1,proxy.local")


def test_client_ip_agrees_with_uvicorn_resolving_the_same_setting_first(
    settings: Settings, database: Database, clock: FrozenClock
) -> None:
    # `siyu serve` gives SIYU_TRUSTED_PROXIES to uvicorn, which rewrites the peer before siyu reads it
    trusted = "10.0.0.0/8"
    app = _app(settings, database, clock, public_requests_per_ip=1, trusted_proxies=trusted)
    served = ProxyHeadersMiddleware(app, trusted_hosts=trusted)  # type: ignore[arg-type]
    with TestClient(served, follow_redirects=False, client=("10.0.0.5", 40000)) as client:  # type: ignore[arg-type]
        # a visitor (8.8.8.8: documentation ranges count as private) who writes a private address in
        # front of the proxy's hop gets neither /metrics
        spoofed = {"x-forwarded-for": "10.1.2.3, 8.8.8.8"}
        assert client.get("/metrics", headers=spoofed).status_code == 403
        # nor a fresh public budget per spoofed address
        assert client.get("/s/nope", headers=spoofed).status_code == 404
        assert client.get("/s/nope", headers={"x-forwarded-for": "10.7.7.7, 8.8.8.8"}).status_code == 429
        # while a scraper on the private network behind the proxy is let in
        assert client.get("/metrics", headers={"x-forwarded-for": "10.1.2.3"}).status_code == 200


def test_ipv6_clients_share_one_budget_per_64(public_client: TestClient) -> None:
    assert rate_subject("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert rate_subject("::ffff:203.0.113.9") == "203.0.113.9"
    assert rate_subject("203.0.113.9") == "203.0.113.9"
    # given a budget of two, two addresses of one /64 spend it together
    statuses = [
        public_client.get("/s/nope", headers={"x-forwarded-for": f"2001:db8:1:2::{n}"}).status_code
        for n in ("a", "b", "c")
    ]
    assert statuses == [404, 404, 429]
    # and the next /64 has its own
    assert public_client.get("/s/nope", headers={"x-forwarded-for": "2001:db8:1:3::a"}).status_code == 404


PUBLIC_MODULES = (".public", ".h5", ".h5.")


def test_every_public_route_is_covered_and_nothing_else(settings: Settings) -> None:
    # the public pages are the routers in `public.py` / `h5` modules, and the member's WeChat sign-in
    app = create_app(settings, run_worker=False)
    routes = [
        (str(c.path), c.original_route.endpoint.__module__)
        for c in iter_route_contexts(app.routes)
        if isinstance(c.original_route, APIRoute)
    ]
    public = [
        path
        for path, module in routes
        if (module.endswith(".public") and ".sidebar." not in module)
        or (".h5" in module and not path.startswith("/api/"))
        or path.startswith("/h5/")
    ]
    assert {"/q/{slug}", "/s/{slug:path}", "/r/{code}", "/u/{token}", "/m/enter", "/h5/wechat/login"} <= set(public)
    assert [p for p in public if not is_public(p)] == []
    # callbacks, webhooks, the WeCom sidebar, the API, ops and the console stay out
    others = {path for path, _module in routes} - set(public)
    assert {"/integrations/wechat/callback", "/hooks/orders/{workspace_slug}", "/login", "/healthz"} <= others
    assert sorted(p for p in others if is_public(p)) == []


@pytest.fixture(scope="module")
def blackhole_redis() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers: a hung Redis."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    finally:
        server.close()


@pytest.mark.parametrize("where", ["closed port", "no answer"])
def test_unreachable_redis_falls_back_to_memory_for_a_while(
    where: str, blackhole_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = "redis://127.0.0.1:1/0" if where == "closed port" else blackhole_redis
    monotonic = [100.0]
    counter = RedisWindowCounter(url, now=lambda: monotonic[0])
    limits = RateLimits(counter, now=lambda: T0)
    # the first request waits for the short timeout at most, and is let through
    started = time.perf_counter()
    assert limits.hit("public", "203.0.113.9", 2).allowed
    assert time.perf_counter() - started < 1.0
    # then, for the fallback period, counts stay in this process: no wait, and the limit still holds
    assert not limits.is_remote
    started = time.perf_counter()
    verdicts = [limits.hit("public", "203.0.113.9", 2).allowed for _ in range(50)]
    assert time.perf_counter() - started < 1.0  # a 0.2 s timeout per hit on the silent port: ~10 s
    assert verdicts == [True] + [False] * 49
    assert next(r.getMessage() for r in caplog.records if r.name == "siyu.ops.ratelimit").startswith(
        "rate limit counter unavailable; counting in this process for 15 s"
    )
    warnings = sum(r.getMessage().startswith("rate limit counter unavailable") for r in caplog.records)
    assert warnings == 1
    # after it Redis is tried again (and found still down: one more warning)
    monotonic[0] += RedisWindowCounter.FALLBACK_S
    assert limits.is_remote
    limits.hit("public", "198.51.100.1", 2)
    assert sum(r.getMessage().startswith("rate limit counter unavailable") for r in caplog.records) == 2
    counter.close()


def test_public_pages_stay_fast_while_redis_hangs(public_client: TestClient, blackhole_redis: str) -> None:
    limits = public_client.app.state.rate_limits  # type: ignore[attr-defined]
    limits.counter = RedisWindowCounter(blackhole_redis)
    started = time.perf_counter()
    statuses = [public_client.get("/s/nope", headers={"x-forwarded-for": "203.0.113.9"}).status_code for _ in range(20)]
    took = time.perf_counter() - started
    limits.counter.close()
    # one timeout (0.2 s), not twenty; and the limit of two still applies, counted in memory
    assert statuses == [404, 404] + [429] * 18
    assert took < 3.0, took  # twenty 0.2 s timeouts would be 4 s


@pytest.mark.broker
@pytest.mark.skipif(not BROKER_URL, reason="SIYU_TEST_BROKER_URL not set")
def test_replicas_share_counts_in_redis_and_windows_expire() -> None:
    assert BROKER_URL
    prefix = f"siyu:rl-test:{uuid.uuid4().hex}:"
    # given two API replicas, each with its own connection to the same Redis
    first = RateLimits(RedisWindowCounter(BROKER_URL, prefix=prefix), now=lambda: T0)
    second = RateLimits(RedisWindowCounter(BROKER_URL, prefix=prefix), now=lambda: T0)
    # when one client spreads three requests over both with a limit of two
    verdicts = [first.hit("public", "203.0.113.9", 2), second.hit("public", "203.0.113.9", 2)]
    verdicts.append(second.hit("public", "203.0.113.9", 2))
    # then the third is refused wherever it lands, and the window's key expires after the minute
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[2].retry_after_s == 40
    import redis

    client = redis.Redis.from_url(BROKER_URL)
    keys = client.keys(prefix + "*")
    assert len(keys) == 1
    assert 0 < client.ttl(keys[0]) <= 61
    client.delete(*keys)
    client.close()


def test_memory_counter_sweeps_expired_windows_at_most_every_period_and_caps_its_size() -> None:
    now = [0.0]
    counter = MemoryCounter(now=lambda: now[0])
    counter.PURGE_ABOVE, counter.MAX_KEYS = 10, 100
    for n in range(30):
        counter.incr(f"a{n}", 5)
    # all 30 expire, but the sweep that ran at the 11th key is not repeated on every later call
    now[0] = 10.0
    counter.incr("b", 5)
    assert len(counter._counts) == 31
    # one period later the next call sweeps them
    now[0] = MemoryCounter.PURGE_EVERY_S
    assert counter.incr("b", 5) == 1
    assert list(counter._counts) == ["b"]
    # live keys past the cap: the oldest are forgotten, a tenth at a time, and the newest kept
    for n in range(150):
        counter.incr(f"c{n}", 1000)
    assert len(counter._counts) <= 100
    assert counter.incr("c149", 1000) == 2
    assert counter.incr("c0", 1000) == 1


def test_an_empty_setting_trusts_a_proxy_on_the_same_host(
    settings: Settings, database: Database, clock: FrozenClock
) -> None:
    # as uvicorn does in `siyu serve`: nginx on the same machine is believed without configuration
    app = _app(settings, database, clock, public_requests_per_ip=1, trusted_proxies="")
    with TestClient(app, follow_redirects=False, client=("127.0.0.1", 40000)) as client:
        assert client.get("/s/nope", headers={"x-forwarded-for": "8.8.8.8"}).status_code == 404
        assert client.get("/s/nope", headers={"x-forwarded-for": "8.8.4.4"}).status_code == 404
        assert client.get("/s/nope", headers={"x-forwarded-for": "8.8.8.8"}).status_code == 429
        assert client.get("/metrics", headers={"x-forwarded-for": "8.8.8.8"}).status_code == 403
        assert client.get("/metrics").status_code == 200
