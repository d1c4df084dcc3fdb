"""Access-token storage shared by every client: in the process when siyu runs on one machine, in
Redis when `SIYU_BROKER_URL` points at Redis (many processes, many machines share one token).

A WeCom access token is valid for two hours and `gettoken` itself is rate limited, so every
process must reuse the same token instead of fetching its own. The stores follow wechatpy's
`SessionStorage` interface; the Redis one is wechatpy's own `RedisStorage`.
"""

from __future__ import annotations

import threading
import time
from functools import lru_cache
from typing import Any

from wechatpy.session import SessionStorage


class MemoryTokenStore(SessionStorage):
    """Process-wide storage whose entries expire (wechatpy's MemoryStorage keeps them for ever)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            value, expires = self._data.get(key, (default, float("inf")))
            if time.monotonic() >= expires:
                del self._data[key]
                return default
            return value

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        if value is None:
            return
        with self._lock:
            self._data[key] = (value, time.monotonic() + ttl if ttl else float("inf"))

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_MEMORY = MemoryTokenStore()


@lru_cache(maxsize=8)
def _redis_store(url: str) -> SessionStorage:
    import redis
    from wechatpy.session.redisstorage import RedisStorage

    return RedisStorage(redis.Redis.from_url(url), prefix="siyu")


def token_store(broker_url: str | None) -> SessionStorage:
    """The store for this deployment: Redis when the broker is Redis, else the process's memory."""
    if broker_url and broker_url.startswith(("redis://", "rediss://", "unix://")):
        return _redis_store(broker_url)
    return _MEMORY


def memory_store() -> MemoryTokenStore:
    """The process-wide memory store (tests clear it between cases)."""
    return _MEMORY
