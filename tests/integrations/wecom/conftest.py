from __future__ import annotations

from collections.abc import Iterator

import pytest

from siyu.integrations.wecom.fake.server import RunningFake, start_fake_server
from siyu.integrations.wecom.ratelimit import memory_counter
from siyu.integrations.wecom.tokens import memory_store


@pytest.fixture(scope="module")
def fake_wecom() -> Iterator[RunningFake]:
    """The fake WeCom server on a loopback port, shared by a test module (each test adds its own corp)."""
    running = start_fake_server()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def _fresh_wecom_caches() -> Iterator[None]:
    """Tokens and rate-limit counts are process-wide; each test starts without any."""
    memory_store().clear()
    memory_counter().clear()
    yield
