"""Request rate limits for login and the public endpoints (scan pages, short links, member H5).

Fixed one-minute windows counted per client IP (and per e-mail address for the sign-in form), in
Redis when `SIYU_BROKER_URL` is Redis so every API replica spends the same budget, else in the
process's memory. A request over the limit gets 429 with `Retry-After`: a small page for browsers,
the usual JSON error body otherwise; the sign-in form shows its own error instead.

Public paths are recognised by prefix (`PUBLIC_PREFIXES`), so a new page under `/q/` or `/m/` is
covered without a list of routes. Callbacks from WeCom, WeChat and message providers and the
order webhook are not limited: they are authenticated by signature, arrive from the platforms'
shared egress addresses, and are retried by the sender, so a 429 would only turn into a retry
storm and lost events. See docs/security.md.
"""

from __future__ import annotations

import hashlib
import html
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import anyio.to_thread
from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from siyu.config import Settings
from siyu.integrations.wecom.ratelimit import MemoryCounter
from siyu.kit.i18n import gettext_for
from siyu.web.errors import error_body
from siyu.web.templating import visitor_locale

logger = logging.getLogger(__name__)

WINDOW_S = 60
PUBLIC_PREFIXES = ("/q/", "/s/", "/r/", "/u/", "/m/", "/h5/")
"""Live-code scan and landing pages, short links, referral pages, unsubscribe, member H5 (pages and
their JSON), the member's WeChat sign-in. Kept in step with the public routers by a test."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_TRUSTED_PROXIES = "127.0.0.1"
"""What an empty `SIYU_TRUSTED_PROXIES` means, here and for uvicorn in `siyu serve`: a proxy on the
same host (nginx in front of one machine) is believed out of the box."""


class Counter(Protocol):
    """Counts hits on a key that expires after `ttl_s` (`MemoryCounter` fits)."""

    def incr(self, key: str, ttl_s: int) -> int: ...


class RedisWindowCounter:
    """Counts in Redis with one atomic INCR-then-EXPIRE script, shared by every replica.

    A limiter outage must neither take the sign-in page down nor slow every public request, so
    timeouts are short and an error opens a breaker: for `FALLBACK_S` the counts are kept in this
    process's memory (each replica then limits on its own), with one warning, and Redis is tried
    again afterwards.
    """

    _SCRIPT = "local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n"
    TIMEOUT_S = 0.2
    """Redis answers in a millisecond on a LAN; waiting longer only holds a public request."""
    FALLBACK_S = 15.0

    def __init__(self, url: str, *, prefix: str = "siyu:rl:", now: Callable[[], float] = time.monotonic) -> None:
        import redis

        self._redis: Any = redis.Redis.from_url(
            url, socket_timeout=self.TIMEOUT_S, socket_connect_timeout=self.TIMEOUT_S
        )
        self._script: Any = self._redis.register_script(self._SCRIPT)
        self._prefix = prefix
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._now = now
        self._fallback = MemoryCounter()
        self._fallback_until = 0.0

    @property
    def is_remote(self) -> bool:
        """Whether the next count goes to Redis (a network round trip) rather than to memory."""
        return self._now() >= self._fallback_until

    def incr(self, key: str, ttl_s: int) -> int:
        if not self.is_remote:
            return self._fallback.incr(key, ttl_s)
        try:
            return int(self._script(keys=[self._prefix + key], args=[ttl_s]))
        except self._errors:
            self._fallback_until = self._now() + self.FALLBACK_S
            logger.warning(
                "rate limit counter unavailable; counting in this process for %.0f s", self.FALLBACK_S, exc_info=True
            )
            return self._fallback.incr(key, ttl_s)

    def close(self) -> None:
        self._redis.close()


@lru_cache(maxsize=8)
def _redis_counter(url: str) -> RedisWindowCounter:
    return RedisWindowCounter(url)


def counter_for(broker_url: str | None) -> Counter:
    """Redis when the broker is Redis (shared by replicas), else a counter in this app's memory."""
    if broker_url and broker_url.startswith(("redis://", "rediss://", "unix://")):
        return _redis_counter(broker_url)
    return MemoryCounter()


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: int = 0


ALLOWED = Verdict(True)


class RateLimits:
    """Fixed-window counters; `now` is injectable so tests never straddle a window by chance."""

    def __init__(
        self, counter: Counter, *, trusted: tuple[Network, ...] = (), now: Callable[[], float] = time.time
    ) -> None:
        self.counter = counter
        self.trusted = trusted
        self.now = now

    @property
    def is_remote(self) -> bool:
        """Whether a hit is a network round trip (to keep off the event loop)."""
        return bool(getattr(self.counter, "is_remote", False))

    def hit(self, kind: str, subject: str, limit: int) -> Verdict:
        """Count one request of `kind` ("login-ip", "public"…) by `subject`; refused past `limit` a minute.

        Subjects are hashed: keys stay short whatever a client sends, and no address or e-mail
        sits in Redis in clear."""
        if limit <= 0:
            return ALLOWED
        now = self.now()
        window = int(now // WINDOW_S)
        digest = hashlib.sha256(subject.encode("utf-8", "replace")).hexdigest()[:24]
        count = self.counter.incr(f"{kind}:{digest}:{window}", WINDOW_S + 1)
        if count <= limit:
            return ALLOWED
        if count == limit + 1:  # once a window per subject, not once per refused request
            logger.warning("rate limit reached", extra={"limit_kind": kind, "limit": limit})
        return Verdict(False, max(1, math.ceil((window + 1) * WINDOW_S - now)))


def trusted_networks(value: str) -> tuple[Network, ...]:
    """Parse `SIYU_TRUSTED_PROXIES`; a typo fails at start-up, naming the setting."""
    networks = []
    for part in (p.strip() for p in value.split(",")):
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError as exc:
                raise ValueError(f"SIYU_TRUSTED_PROXIES: {part!r} is not an IP address or CIDR range") from exc
    return tuple(networks)


def client_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a socket peer or an X-Forwarded-For hop ("1.2.3.4", "1.2.3.4:5678",
    "[2001:db8::1]:443"); IPv4-mapped IPv6 as IPv4. None for anything else."""
    value = value.strip()
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else value
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    ip = client_address(address)
    return ip is not None and any(ip in network for network in trusted)


def client_ip(scope: Scope, trusted: tuple[Network, ...]) -> str:
    """The client's address as `SIYU_TRUSTED_PROXIES` resolves it.

    `siyu serve` hands the same setting to uvicorn as `forwarded_allow_ips`, so uvicorn has usually
    replaced the socket peer with the client already. X-Forwarded-For is read here only while the
    peer is still a trusted proxy (another ASGI server, or a test), walking right to left past the
    trusted hops: the first hop that is not a proxy is the client (hops further left were written by
    the client and prove nothing). When every hop is a trusted proxy the peer stands. A peer uvicorn
    resolved is either not trusted (returned as is) or a hop every proxy vouched for, so walking
    again never overrides uvicorn's answer with a hop the client wrote."""
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            hops.extend(h.strip() for h in value.decode("latin-1").split(","))
    for hop in reversed([h for h in hops if h]):
        if not _is_trusted(hop, trusted):
            ip = client_address(hop)
            return str(ip) if ip is not None else hop
    return peer


def rate_subject(address: str) -> str:
    """What one client's budget is keyed by: the IPv4 address, or the /64 network of an IPv6 one
    (one subscriber gets a whole /64 and can pick any address in it)."""
    ip = client_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip) if ip is not None else address


def is_public(path: str) -> bool:
    """Whether `path` is one of the public pages limited per IP."""
    return path.startswith(PUBLIC_PREFIXES) or path + "/" in PUBLIC_PREFIXES


def limits_of(request: Request) -> RateLimits:
    limits: RateLimits = request.app.state.rate_limits
    return limits


def login_verdict(request: Request, email: str) -> Verdict:
    """Count one sign-in attempt from this client and for this e-mail address."""
    limits = limits_of(request)
    settings: Settings = request.app.state.settings
    ip = rate_subject(client_ip(request.scope, limits.trusted))
    by_ip = limits.hit("login-ip", ip, settings.login_attempts_per_ip)
    if not by_ip.allowed:
        return by_ip
    return limits.hit("login-account", email.strip().lower(), settings.login_attempts_per_account)


def _too_many(scope: Scope, verdict: Verdict) -> Response:
    request = Request(scope)
    _ = gettext_for(visitor_locale(request)).gettext
    headers = {"Retry-After": str(verdict.retry_after_s), "Cache-Control": "no-store"}
    message = _("请求过于频繁，请稍后再试")
    if "text/html" in request.headers.get("accept", ""):
        title = html.escape(_("访问过于频繁"))
        body = (
            f'<!doctype html><html lang="{visitor_locale(request).replace("_", "-")}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title></head><body><h1>{title}</h1><p>{html.escape(message)}</p></body></html>"
        )
        return HTMLResponse(body, status_code=429, headers=headers)
    return JSONResponse(
        error_body("rate_limited", message, {"retry_after_s": verdict.retry_after_s}), status_code=429, headers=headers
    )


class PublicRateLimit:
    """ASGI middleware: counts requests to the public prefixes per client IP."""

    def __init__(self, app: ASGIApp, *, limits: RateLimits, settings: Settings) -> None:
        self.app = app
        self.limits = limits
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.settings.public_requests_per_ip
        if scope["type"] != "http" or limit <= 0 or not is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        ip = rate_subject(client_ip(scope, self.limits.trusted))
        if self.limits.is_remote:  # a network round trip: keep it off the event loop
            verdict = await anyio.to_thread.run_sync(self.limits.hit, "public", ip, limit)
        else:
            verdict = self.limits.hit("public", ip, limit)
        if verdict.allowed:
            await self.app(scope, receive, send)
            return
        await _too_many(scope, verdict)(scope, receive, send)


def install_rate_limits(app: FastAPI) -> None:
    """Refuse requests over the configured rates with 429 (called once by `create_app`)."""
    settings: Settings = app.state.settings
    trusted = trusted_networks(settings.trusted_proxies or DEFAULT_TRUSTED_PROXIES)
    limits = RateLimits(counter_for(settings.broker_url), trusted=trusted)
    app.state.rate_limits = limits
    app.add_middleware(PublicRateLimit, limits=limits, settings=settings)
