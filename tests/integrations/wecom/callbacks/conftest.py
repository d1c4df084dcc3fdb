"""The app over the test's transaction, wired to a corp on the fake WeCom server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from tests.integrations.wecom.helpers import WecomSetup, wecom_workspace
from tests.integrations.wecom.inbox import wire


@dataclass
class Wired:
    setup: WecomSetup
    client: TestClient
    fake: RunningFake

    @property
    def corp_id(self) -> str:
        return self.setup.corp.corp_id


@pytest.fixture
def client(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    app = create_app(settings, database=database, clock=clock, run_worker=False, run_scheduler=False)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def wired(db: Session, clock: FrozenClock, fake_wecom: RunningFake, client: TestClient) -> Wired:
    """A configured workspace whose corp pushes into the app in-process."""
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.corp.clock = lambda: clock.now().timestamp()
    db.commit()
    wire(setup.corp, client, setup.workspace.id)
    return Wired(setup, client, fake_wecom)
