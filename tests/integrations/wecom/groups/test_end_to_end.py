"""Through the real callback: the fake pushes encrypted `change_external_chat` / `change_external_tag`
events to /integrations/wecom/callback, the queued event jobs run, and the pool changes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.app import create_app
from siyu.config import Settings
from siyu.customers import repository as customers
from siyu.db import Database
from siyu.integrations.wecom.fake.groups import simulate_create, simulate_join
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.fake.tags import simulate_create as create_tags
from siyu.integrations.wecom.groups.sync import group_by_chat_id
from siyu.integrations.wecom.tags.tasks import run_tag_sync
from siyu.kit.clock import FrozenClock
from siyu.models import GroupMember, IdentityType, Tag
from tests.integrations.wecom.helpers import wecom_staff, wecom_workspace
from tests.integrations.wecom.inbox import drain, wire


@pytest.fixture
def client(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    app = create_app(settings, database=database, clock=clock, run_worker=False, run_scheduler=False)
    with TestClient(app) as c:
        yield c


def test_group_and_tag_events_arrive_through_the_callback(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, client: TestClient, database: Database
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="zhang")
    db.commit()
    wire(setup.corp, client, setup.workspace.id)
    chat = simulate_create(fake_wecom.fake, setup.corp.corp_id, owner="zhang", name="新品群")
    joined = simulate_join(fake_wecom.fake, setup.corp.corp_id, chat_id=chat["chat_id"], name="小新", state="lcX")
    tags = create_tags(fake_wecom.fake, setup.corp.corp_id, group_name="兴趣", names=["新品"])
    assert chat["statuses"] == [200] and joined["statuses"] == [200] and tags["statuses"] == [[200]]
    drain(database, clock)
    # the tag event queued one pull job (debounced); run it as the worker would
    assert run_tag_sync(setup.workspace.id, "pull", clock)["tags_created"] == 1
    db.expire_all()
    group = group_by_chat_id(db, setup.workspace.id, chat["chat_id"])
    assert group is not None and group.name == "新品群" and group.member_count == 2
    customer = customers.find_by_identity(
        db, setup.workspace.id, IdentityType.WECOM_EXTERNAL_USERID, str(joined["external_userid"])
    )
    assert customer is not None and customer.name == "小新"
    stay = db.scalar(select(GroupMember).where(GroupMember.customer_id == customer.id))
    assert stay is not None and stay.join_scene == "wecom" and stay.left_at is None
    assert db.scalar(select(Tag.name).where(Tag.wecom_tag_id == tags["tag_ids"][0])) == "新品"
