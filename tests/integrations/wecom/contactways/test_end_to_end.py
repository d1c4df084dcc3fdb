"""A customer scans the real contact way of a live code arm: the add comes back with the way's state
and is attributed to the code, its channel and its arm (H1's callbacks and `record_add`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.integrations.wecom.contactways.service import sync_workspace
from siyu.integrations.wecom.fake.contactways import simulate_scan
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from siyu.livecodes.state import encode_state
from siyu.models import Relationship, WecomContactWay
from tests.factories import make_channel, make_experiment, make_live_code
from tests.integrations.wecom.helpers import wecom_staff, wecom_workspace
from tests.integrations.wecom.inbox import drain, wire


@pytest.fixture
def app_client(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    app = create_app(settings, database=database, clock=clock, run_worker=False, run_scheduler=False)
    with TestClient(app) as c:
        yield c


def test_a_scan_of_an_arms_way_is_attributed_to_the_code_channel_and_arm(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake, app_client: TestClient
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    staff = wecom_staff(db, setup, clock=clock, userid="gao", name="小高")
    channel = make_channel(db, workspace=setup.workspace, clock=clock, name="门店海报")
    experiment = make_experiment(db, workspace=setup.workspace, clock=clock, variants=[("A", 1), ("B", 1)])
    code = make_live_code(
        db,
        workspace=setup.workspace,
        clock=clock,
        channel_id=channel.id,
        experiment_id=experiment.id,
        routes=[{"staff_id": staff.id}],
    )
    sync_workspace(db, setup.config, clock)
    db.commit()
    wire(setup.corp, app_client, setup.workspace.id)
    way = db.scalar(
        select(WecomContactWay).where(
            WecomContactWay.live_code_id == code.id,
            WecomContactWay.variant == "B",
            WecomContactWay.route_id.is_not(None),
        )
    )
    assert way is not None
    added = simulate_scan(fake_wecom.fake, way.config_id, name="周先生")
    assert (added["userid"], added["state"]) == ("gao", encode_state(code.id, channel.id, "B"))
    drain(database, clock)
    db.expire_all()
    edge = db.scalar(select(Relationship).where(Relationship.staff_id == staff.id))
    assert edge is not None
    assert (edge.live_code_id, edge.live_code_state) == (code.id, encode_state(code.id, channel.id, "B"))
    assert (edge.channel_id, edge.variant) == (channel.id, "B")
