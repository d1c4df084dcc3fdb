from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import FrozenClock

PUBLIC_URL = "http://testserver"  # the TestClient's host: OAuth redirect and JS-SDK URLs use public_url


@pytest.fixture
def app(settings: Settings, database: Database, clock: FrozenClock) -> FastAPI:
    public = settings.model_copy(update={"public_url": PUBLIC_URL})
    return create_app(public, database=database, clock=clock, run_worker=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as c:
        yield c
