"""`list_group_chats` paging and filters on the fake, `sync_group` as the full sync uses it, and a
del_member naming several members at once."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.integrations.wecom.config import client_for
from siyu.integrations.wecom.dispatch import process
from siyu.integrations.wecom.errors import WecomError
from siyu.integrations.wecom.fake.groups import simulate_create
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.groups.sync import group_by_chat_id, list_group_chats, sync_group
from siyu.kit.clock import FrozenClock
from siyu.models import EventStatus, GroupMember
from tests.integrations.wecom.groups.pushed import run_pushed, store
from tests.integrations.wecom.helpers import wecom_staff, wecom_workspace


def test_list_group_chats_pages_with_the_cursor_and_filters_by_owner(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    for userid in ("zhang", "li"):
        wecom_staff(db, setup, clock=clock, userid=userid)
    made = [
        simulate_create(fake_wecom.fake, setup.corp.corp_id, owner="zhang" if n % 2 else "li", name=f"群{n}")["chat_id"]
        for n in range(5)
    ]
    client = client_for(setup.config)
    pages = list(list_group_chats(client, limit=2))
    assert sorted(item["chat_id"] for item, _cursor in pages) == sorted(made)
    assert [cursor for _item, cursor in pages] == ["", "", "c2", "c2", "c4"]
    assert setup.corp.calls_of("externalcontact/groupchat/list") == 3
    owned = [item["chat_id"] for item, _ in list_group_chats(client, owner_userids=["zhang"])]
    assert sorted(owned) == sorted(made[1::2])
    with pytest.raises(WecomError) as raised:
        list(list_group_chats(client, limit=1001))
    assert raised.value.code == 40058 and not raised.value.retryable


def test_a_full_sync_closes_every_stay_wecom_no_longer_lists_and_is_idempotent(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="zhang")
    chat = simulate_create(
        fake_wecom.fake,
        setup.corp.corp_id,
        owner="zhang",
        members=[{"external_userid": "wmA", "name": "阿"}, {"external_userid": "wmB", "name": "贝"}],
    )["chat_id"]
    first = sync_group(db, setup.config, chat, clock)
    assert (first.created, first.joined, first.customers_created) == (True, 3, 2)
    setup.corp.table("groups")[chat]["member_list"] = [
        m for m in setup.corp.table("groups")[chat]["member_list"] if m["userid"] != "wmA"
    ]
    second = sync_group(db, setup.config, chat, clock)
    assert (second.created, second.joined, second.left) == (False, 0, 1)
    third = sync_group(db, setup.config, chat, clock)
    assert (third.joined, third.left, third.customers_created) == (0, 0, 0)
    group = group_by_chat_id(db, setup.workspace.id, chat)
    assert group is not None and group.member_count == 2


def test_a_del_member_event_with_a_list_of_items_closes_each_named_member(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="zhang")
    chat = simulate_create(
        fake_wecom.fake,
        setup.corp.corp_id,
        owner="zhang",
        members=[{"external_userid": x, "name": x} for x in ("wmA", "wmB", "wmC")],
    )["chat_id"]
    run_pushed(db, setup.corp, setup.config, clock)
    members = setup.corp.table("groups")[chat]["member_list"]
    setup.corp.table("groups")[chat]["member_list"] = [m for m in members if m["userid"] not in ("wmA", "wmB")]
    event = store(
        db,
        setup.workspace.id,
        {
            "Event": "change_external_chat",
            "ChangeType": "update",
            "UpdateDetail": "del_member",
            "ChatId": chat,
            "QuitScene": "1",
            "MemChangeCnt": "2",
            "MemChangeList": {"Item": ["wmA", "wmB"]},
            "CreateTime": "1795000000",
        },
        clock,
    )
    assert process(db, event, setup.config, clock) == EventStatus.PROCESSED
    group = group_by_chat_id(db, setup.workspace.id, chat)
    assert group is not None
    reasons = db.scalars(
        select(GroupMember.left_reason)
        .where(GroupMember.group_id == group.id, GroupMember.customer_id.is_not(None))
        .order_by(GroupMember.id)
    ).all()
    assert reasons == ["removed", "removed", None]


def test_a_chat_wecom_no_longer_has_is_dismissed_by_the_sync(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="zhang")
    chat = simulate_create(
        fake_wecom.fake, setup.corp.corp_id, owner="zhang", members=[{"external_userid": "wmA", "name": "阿"}]
    )["chat_id"]
    sync_group(db, setup.config, chat, clock)
    del setup.corp.table("groups")[chat]  # dismissed while siyu missed the event
    result = sync_group(db, setup.config, chat, clock)
    assert (result.dismissed, result.left) == (True, 2)
    group = group_by_chat_id(db, setup.workspace.id, chat)
    assert group is not None and (group.is_active, group.member_count) == (False, 0)
