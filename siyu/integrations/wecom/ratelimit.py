"""Outbound rate limiting per corp and per API, within WeCom's published limits.

WeCom allows each corp at most 10,000 calls a minute and 150,000 an hour to any one API
(每企业调用单个cgi/api不可超过1万次/分，15万次/小时); beyond that it answers 45009 and may block
the corp for a while. siyu counts its own calls in fixed windows (minute and hour) and holds a
call back before WeCom would refuse it: it waits when the window ends soon, else raises
`WecomRateLimited` so a job retries later. A 45009 that arrives anyway (another system using the
same corp) blocks that API for the rest of the minute.

Counts live in the process, or in Redis when `SIYU_BROKER_URL` is Redis, so every worker on every
machine spends the same budget.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from siyu.integrations.wecom.errors import WecomRateLimited


@dataclass(frozen=True)
class Limit:
    per_minute: int
    per_hour: int


DEFAULT_LIMIT = Limit(per_minute=10_000, per_hour=150_000)
LIMITS: dict[str, Limit] = {
    # gettoken is limited far lower in practice; a token lasts two hours, so a few a minute is plenty.
    "gettoken": Limit(per_minute=60, per_hour=600),
}
"""Per-API overrides of `DEFAULT_LIMIT` (endpoint path without the base URL)."""
MAX_WAIT_S = 5.0
"""Wait this long at most for the next window; longer, and the call is refused with a retry time."""
BLOCK_AFTER_45009_S = 60.0


def limit_for(api: str) -> Limit:
    return LIMITS.get(api, DEFAULT_LIMIT)


class Counter(Protocol):
    def incr(self, key: str, ttl_s: int) -> int: ...
    def decr(self, key: str) -> None: ...
    def block(self, key: str, seconds: float) -> None: ...
    def blocked_for(self, key: str) -> float: ...


class MemoryCounter:
    """Counts in this process's memory; expired windows are dropped in one sweep at most every
    `PURGE_EVERY_S`, and past `MAX_KEYS` live keys the oldest are forgotten, so one call never
    walks the whole table (the public rate limit calls it on the event loop, with a key per client)."""

    PURGE_EVERY_S = 30.0
    PURGE_ABOVE = 10_000
    """Below this many keys, expired ones are not worth a sweep."""
    MAX_KEYS = 100_000
    """About 20 MB of keys. Beyond it the oldest tenth are forgotten: their counts restart, which lets
    a few requests through rather than growing without bound under a flood of new clients."""

    def __init__(self, *, now: Callable[[], float] = time.monotonic) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._blocks: dict[str, float] = {}
        self._lock = threading.Lock()
        self._now = now
        self._next_purge = 0.0

    def incr(self, key: str, ttl_s: int) -> int:
        now = self._now()
        with self._lock:
            count, expires = self._counts.get(key, (0, now + ttl_s))
            if now >= expires:
                count, expires = 0, now + ttl_s
            self._counts[key] = (count + 1, expires)
            if len(self._counts) > self.PURGE_ABOVE and now >= self._next_purge:
                self._next_purge = now + self.PURGE_EVERY_S
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            if len(self._counts) > self.MAX_KEYS:
                # Dicts keep insertion order, so the first keys are the oldest windows.
                for old in list(itertools.islice(self._counts, self.MAX_KEYS // 10)):
                    if old != key:
                        del self._counts[old]
            return count + 1

    def decr(self, key: str) -> None:
        with self._lock:
            if key in self._counts:
                count, expires = self._counts[key]
                self._counts[key] = (max(count - 1, 0), expires)

    def block(self, key: str, seconds: float) -> None:
        with self._lock:
            self._blocks[key] = time.time() + seconds

    def blocked_for(self, key: str) -> float:
        with self._lock:
            return max(self._blocks.get(key, 0.0) - time.time(), 0.0)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
            self._blocks.clear()


class RedisCounter:
    def __init__(self, url: str) -> None:
        import redis

        self._redis: Any = redis.Redis.from_url(url)

    def incr(self, key: str, ttl_s: int) -> int:
        pipe = self._redis.pipeline()
        pipe.incr(f"siyu:wecom:rl:{key}")
        pipe.expire(f"siyu:wecom:rl:{key}", ttl_s, nx=True)
        count, _ = pipe.execute()
        return int(count)

    def decr(self, key: str) -> None:
        self._redis.decr(f"siyu:wecom:rl:{key}")

    def block(self, key: str, seconds: float) -> None:
        self._redis.set(f"siyu:wecom:block:{key}", "1", px=max(int(seconds * 1000), 1))

    def blocked_for(self, key: str) -> float:
        ms = self._redis.pttl(f"siyu:wecom:block:{key}")
        return max(int(ms), 0) / 1000.0


class RateLimiter:
    """Fixed-window counters per (corp, API): one for the minute, one for the hour."""

    def __init__(
        self,
        counter: Counter,
        *,
        limits: Callable[[str], Limit] = limit_for,
        max_wait_s: float = MAX_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.counter = counter
        self.limits = limits
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._now = now

    def acquire(self, corp_id: str, api: str) -> None:
        """Spend one call of `api` for `corp_id`, waiting up to `max_wait_s` for the next window;
        raises `WecomRateLimited` when the budget is spent for longer."""
        limit = self.limits(api)
        while True:
            blocked = self.counter.blocked_for(f"{corp_id}:{api}")
            if blocked > 0:
                if blocked > self.max_wait_s:
                    raise WecomRateLimited(api=api, retry_after_s=blocked)
                self._sleep(blocked)
                continue
            now = self._now()
            minute, hour = int(now // 60), int(now // 3600)
            minute_key, hour_key = f"{corp_id}:{api}:m{minute}", f"{corp_id}:{api}:h{hour}"
            if self.counter.incr(minute_key, 61) > limit.per_minute:
                self.counter.decr(minute_key)
                wait = (minute + 1) * 60 - now
            elif self.counter.incr(hour_key, 3601) > limit.per_hour:
                self.counter.decr(hour_key)
                self.counter.decr(minute_key)
                wait = (hour + 1) * 3600 - now
            else:
                return
            if wait > self.max_wait_s:
                raise WecomRateLimited(api=api, retry_after_s=wait)
            self._sleep(wait)

    def penalize(self, corp_id: str, api: str, seconds: float = BLOCK_AFTER_45009_S) -> None:
        """WeCom answered 45009 for this API: hold every process back for `seconds`."""
        self.counter.block(f"{corp_id}:{api}", seconds)


_MEMORY_COUNTER = MemoryCounter()


@lru_cache(maxsize=8)
def _redis_limiter(url: str) -> RateLimiter:
    return RateLimiter(RedisCounter(url))


_MEMORY_LIMITER = RateLimiter(_MEMORY_COUNTER)


def rate_limiter(broker_url: str | None) -> RateLimiter:
    """The limiter for this deployment: Redis when the broker is Redis, else the process's memory."""
    if broker_url and broker_url.startswith(("redis://", "rediss://", "unix://")):
        return _redis_limiter(broker_url)
    return _MEMORY_LIMITER


def memory_counter() -> MemoryCounter:
    """The process-wide memory counter (tests clear it between cases)."""
    return _MEMORY_COUNTER
