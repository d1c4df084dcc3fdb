from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.integrations.wecom.fake.server import RunningFake, start_fake_server
from siyu.integrations.wecom.ratelimit import memory_counter
from siyu.integrations.wecom.tokens import memory_store
from siyu.kit.clock import FrozenClock


@pytest.fixture(scope="module")
def fake_server() -> Iterator[RunningFake]:
    """The fake server (WeCom and the official account under /oa) on a loopback port, per module."""
    running = start_fake_server()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    memory_store().clear()
    memory_counter().clear()
    yield


@pytest.fixture
def client(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, database=database, clock=clock, run_worker=False)) as c:
        yield c
