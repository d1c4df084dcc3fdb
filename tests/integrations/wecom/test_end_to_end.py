"""The whole WeCom loop against the fake server, as the issue states it is done:

scan a live code's real 「联系我」 way → WeCom's encrypted `add_external_contact` callback →
customer created, attributed to the code's channel, auto-tagged and welcomed through
`send_welcome_msg` → a broadcast goes out as an `add_msg_template` task → the staff member confirms
it and the results are reconciled → the customer deletes the staff member → the deletion is counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.analytics.overview.schemas import Filters
from siyu.analytics.overview.service import overview
from siyu.analytics.periods import Grain, Period
from siyu.app import create_app
from siyu.campaigns.broadcasts.service import submit_broadcast
from siyu.campaigns.broadcasts.tasks import dispatch
from siyu.config import Settings
from siyu.db import Database
from siyu.integrations.wecom.contactways.service import sync_workspace as push_contact_ways
from siyu.integrations.wecom.fake.contacts import simulate_customer_deletes
from siyu.integrations.wecom.fake.contactways import simulate_scan
from siyu.integrations.wecom.fake.messages import confirm
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.messages.tasks import sync_workspace as sync_message_tasks
from siyu.kit.clock import FrozenClock
from siyu.livecodes.state import encode_state
from siyu.models import (
    AdapterKind,
    Customer,
    CustomerEvent,
    CustomerTag,
    Delivery,
    DeliveryStatus,
    EventStatus,
    Identity,
    IdentityType,
    IntegrationEvent,
    Relationship,
    RemovedBy,
    WecomContactWay,
    WecomMessageTask,
)
from tests.factories import actor_for, make_channel, make_live_code, make_tag
from tests.integrations.wecom.helpers import wecom_staff, wecom_workspace
from tests.integrations.wecom.inbox import drain, wire
from tests.messaging.factories import make_account, make_broadcast, make_content, make_policy
from tests.segments.factories import make_segment

SEND_WELCOME = "externalcontact/send_welcome_msg"


@pytest.fixture
def app_client(settings: Settings, database: Database, clock: FrozenClock) -> Iterator[TestClient]:
    app = create_app(settings, database=database, clock=clock, run_worker=False, run_scheduler=False)
    with TestClient(app) as client:
        yield client


def test_scan_add_welcome_broadcast_results_and_deletion(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake, app_client: TestClient
) -> None:
    # given a brand on the fake corp: a staff member, a live code with a channel, an auto-tag and a welcome
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.corp.clock = lambda: clock.now().timestamp()
    staff = wecom_staff(db, setup, clock=clock, userid="lina", name="李娜")
    channel = make_channel(db, workspace=setup.workspace, clock=clock, name="门店海报")
    tag = make_tag(db, workspace=setup.workspace, name="海报新客")
    code = make_live_code(
        db,
        workspace=setup.workspace,
        clock=clock,
        channel_id=channel.id,
        routes=[{"staff_id": staff.id}],
        tag_ids=[tag.id],
        welcome={"text": "{{ name }}您好，我是{{ staff_name }}，欢迎加入！"},
    )
    # and its route pushed to WeCom as a real 「联系我」 way
    push_contact_ways(db, setup.config, clock)
    db.commit()
    way = db.scalars(
        select(WecomContactWay).where(WecomContactWay.live_code_id == code.id, WecomContactWay.route_id.is_not(None))
    ).one()
    assert way.state == encode_state(code.id, channel.id)
    assert setup.corp.table("contact_ways")[way.config_id]["state"] == way.state
    wire(setup.corp, app_client, setup.workspace.id)

    # when a customer scans that way and adds the staff member
    added = simulate_scan(fake_wecom.fake, way.config_id, name="周小姐")
    drain(database, clock)
    db.expire_all()

    # then WeCom's callback created the customer, attributed, tagged and welcomed
    external_userid = added["external_userid"]
    customer = db.scalars(
        select(Customer)
        .join(Identity, Identity.customer_id == Customer.id)
        .where(Identity.type == IdentityType.WECOM_EXTERNAL_USERID, Identity.value == external_userid)
    ).one()
    assert customer.name == "周小姐"
    edge = db.scalars(select(Relationship).where(Relationship.customer_id == customer.id)).one()
    assert (edge.staff_id, edge.channel_id, edge.live_code_id, edge.live_code_state, edge.removed_at) == (
        staff.id,
        channel.id,
        code.id,
        way.state,
        None,
    )
    assert db.scalar(select(CustomerTag.tag_id).where(CustomerTag.customer_id == customer.id)) == tag.id
    assert setup.corp.calls_of(SEND_WELCOME) == 1
    welcome = db.scalars(
        select(CustomerEvent).where(CustomerEvent.customer_id == customer.id, CustomerEvent.type == "welcome.sent")
    ).one()
    assert (welcome.properties["delivery"], welcome.properties["text"]) == ("wecom", "周小姐您好，我是李娜，欢迎加入！")
    assert db.scalar(select(func.count()).select_from(IntegrationEvent)) == 1

    # when a broadcast to a segment holding the customer goes out through the WeCom channel account
    account = make_account(
        db,
        workspace=setup.workspace,
        clock=clock,
        kind=AdapterKind.WECOM_CUSTOMER,
        settings={"api_base_url": fake_wecom.api_base_url},
        credentials={"corp_id": setup.corp.corp_id, "secret": setup.corp.contact_secret},
    )
    make_policy(db, workspace=setup.workspace, clock=clock)
    segment = make_segment(db, workspace=setup.workspace, clock=clock, members=[customer.id])
    content = make_content(db, workspace=setup.workspace, clock=clock, body="会员日礼券已到账，进店出示即可使用")
    broadcast = make_broadcast(
        db, workspace=setup.workspace, clock=clock, segment_id=segment.id, accounts=[account], contents=[content]
    )
    submit_broadcast(db, actor=actor_for(setup.workspace), broadcast_id=broadcast.id, clock=clock)
    db.commit()
    dispatch(database, clock)
    db.expire_all()

    # then it is one add_msg_template task for the staff member, the delivery "sent" (task created)
    delivery = db.scalars(select(Delivery).where(Delivery.customer_id == customer.id)).one()
    assert delivery.status == DeliveryStatus.SENT
    msgid, _, address = str(delivery.provider_message_id).partition(":")
    assert address == external_userid
    assert setup.corp.calls_of("externalcontact/add_msg_template") == 1
    assert msgid in setup.corp.table("msg_tasks")

    # when the staff member confirms it in WeCom and siyu reconciles the results
    confirm(fake_wecom.fake, setup.corp.corp_id, msgid=msgid, userid="lina")
    clock.advance(timedelta(minutes=10))
    sync_message_tasks(setup.workspace.id, clock, database)
    db.expire_all()

    # then the delivery is delivered and the task done
    assert db.get(Delivery, delivery.id).status == DeliveryStatus.DELIVERED  # type: ignore[union-attr]
    task = db.scalars(select(WecomMessageTask).where(WecomMessageTask.msgid == msgid)).one()
    assert (task.sender, task.counts.get("delivered")) == ("lina", 1)

    # when the customer deletes the staff member (删粉)
    clock.advance(timedelta(hours=1))
    simulate_customer_deletes(fake_wecom.fake, setup.corp.corp_id, userid="lina", external_userid=external_userid)
    drain(database, clock)
    db.expire_all()

    # then the edge is closed as removed by the customer and the overview counts the deletion
    edge = db.scalars(select(Relationship).where(Relationship.customer_id == customer.id)).one()
    assert (edge.removed_by, edge.removed_at) == (RemovedBy.CUSTOMER, clock.now())
    assert db.scalars(select(IntegrationEvent.status)).all() == [EventStatus.PROCESSED, EventStatus.PROCESSED]
    today = clock.now().date()
    report = overview(
        db,
        actor=actor_for(setup.workspace),
        period=Period(today - timedelta(days=6), today),
        grain=Grain.DAY,
        filters=Filters(),
        clock=clock,
    )
    stats = {name: report.stats[name].value for name in ("adds", "deleted_by_customer", "deleted_by_staff")}
    assert stats == {"adds": 1, "deleted_by_customer": 1, "deleted_by_staff": 0}
