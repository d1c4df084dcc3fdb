"""Review fixes: out-of-order leave/join, late events after dismiss, seat limits, unknown new owner,
the fake's event shapes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.customers import repository as customers
from siyu.integrations.wecom.dispatch import process
from siyu.integrations.wecom.fake.groups import (
    simulate_change_notice,
    simulate_create,
    simulate_dismiss,
    simulate_join,
    simulate_leave,
    simulate_update,
)
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.groups.sync import group_by_chat_id, sync_group
from siyu.kit.clock import FrozenClock
from siyu.models import CustomerEvent, EventStatus, GroupMember, IdentityType
from tests.integrations.wecom.groups.pushed import run_pushed, store
from tests.integrations.wecom.helpers import WecomSetup, wecom_staff, wecom_workspace


def _setup(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> WecomSetup:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.corp.clock = lambda: clock.now().timestamp()
    wecom_staff(db, setup, clock=clock, userid="zhang", name="张导购")
    return setup


def _stays(db: Session, group_id: int, external_userid: str, setup: WecomSetup) -> list[tuple[str | None, bool]]:
    customer = customers.find_by_identity(db, setup.workspace.id, IdentityType.WECOM_EXTERNAL_USERID, external_userid)
    assert customer is not None
    rows = db.scalars(
        select(GroupMember).where(GroupMember.group_id == group_id, GroupMember.customer_id == customer.id)
    ).all()
    return [(s.left_reason, s.left_at is not None) for s in rows]


def test_a_join_whose_member_already_left_is_recorded_once_whatever_the_order(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = _setup(db, clock, fake_wecom)
    chat = simulate_create(fake_wecom.fake, setup.corp.corp_id, owner="zhang")["chat_id"]
    run_pushed(db, setup.corp, setup.config, clock)
    simulate_join(fake_wecom.fake, setup.corp.corp_id, chat_id=chat, external_userid="wmB", name="贝")
    simulate_leave(fake_wecom.fake, setup.corp.corp_id, chat_id=chat, member_id="wmB")
    join, leave = list(setup.corp.pushed)
    assert join["fields"]["JoinScene"] == 3
    setup.corp.pushed[:] = [leave, join]  # the leave is processed first
    events = run_pushed(db, setup.corp, setup.config, clock)
    assert [e.status for e in events] == [EventStatus.PROCESSED, EventStatus.PROCESSED]
    group = group_by_chat_id(db, setup.workspace.id, chat)
    assert group is not None
    assert _stays(db, group.id, "wmB", setup) == [("left", True)]
    assert process(db, events[1], setup.config, clock) == EventStatus.PROCESSED  # a retried join: no second stay
    assert _stays(db, group.id, "wmB", setup) == [("left", True)]
    bei = customers.find_by_identity(db, setup.workspace.id, IdentityType.WECOM_EXTERNAL_USERID, "wmB")
    assert bei is not None
    joined = db.scalars(
        select(CustomerEvent).where(CustomerEvent.customer_id == bei.id, CustomerEvent.type == "group.joined")
    ).all()
    assert [(j.properties["wecom_join_scene"], j.properties["wecom_late"]) for j in joined] == [("3", True)]
    assert group.member_count == 1


def test_a_late_update_after_dismiss_does_not_reopen_the_group(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = _setup(db, clock, fake_wecom)
    chat = simulate_create(
        fake_wecom.fake, setup.corp.corp_id, owner="zhang", members=[{"external_userid": "wmA", "name": "阿"}]
    )["chat_id"]
    run_pushed(db, setup.corp, setup.config, clock)
    group = group_by_chat_id(db, setup.workspace.id, chat)
    assert group is not None
    group.is_active = False  # closed in siyu, still alive in WeCom
    db.flush()
    simulate_join(fake_wecom.fake, setup.corp.corp_id, chat_id=chat, external_userid="wmB", name="贝")
    [event] = run_pushed(db, setup.corp, setup.config, clock)
    assert (event.status, event.error) == (EventStatus.PROCESSED, "wmB not seated: group_closed")
    assert group.is_active is False and group.member_count == 2
    simulate_dismiss(fake_wecom.fake, setup.corp.corp_id, chat_id=chat)
    run_pushed(db, setup.corp, setup.config, clock)
    late = store(
        db,
        setup.workspace.id,
        {"Event": "change_external_chat", "ChangeType": "update", "ChatId": chat, "UpdateDetail": "change_name"},
        clock,
    )
    assert process(db, late, setup.config, clock) == EventStatus.PROCESSED
    db.refresh(group)
    assert (group.is_active, group.member_count) == (False, 0)


def test_the_seat_limit_grows_past_the_member_count_and_a_full_group_is_noted(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = _setup(db, clock, fake_wecom)
    chat = simulate_create(
        fake_wecom.fake, setup.corp.corp_id, owner="zhang", members=[{"external_userid": "wmA", "name": "阿"}]
    )["chat_id"]
    run_pushed(db, setup.corp, setup.config, clock)
    group = group_by_chat_id(db, setup.workspace.id, chat)
    assert group is not None
    group.member_count, group.member_limit = 2, 2  # a seat held by a stay WeCom still lists elsewhere
    db.flush()
    simulate_join(fake_wecom.fake, setup.corp.corp_id, chat_id=chat, external_userid="wmB", name="贝")
    run_pushed(db, setup.corp, setup.config, clock)
    assert group.member_limit == 5 and group.member_count == 3
    assert _stays(db, group.id, "wmB", setup) == [(None, False)]
    group.member_limit = group.member_count = 5000
    db.flush()
    simulate_join(fake_wecom.fake, setup.corp.corp_id, chat_id=chat, external_userid="wmC", name="茜")
    [event] = run_pushed(db, setup.corp, setup.config, clock)
    assert (event.status, event.error) == (EventStatus.PROCESSED, "wmC not seated: group_full")


def test_an_unknown_new_owner_clears_the_owner_and_the_fake_shapes_match_wecom(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = _setup(db, clock, fake_wecom)
    setup.corp.users["ghost"] = {"userid": "ghost", "name": "新群主", "department": [1], "status": 1}
    chat = simulate_create(
        fake_wecom.fake, setup.corp.corp_id, owner="zhang", members=[{"external_userid": "wmA", "name": "阿"}]
    )["chat_id"]
    run_pushed(db, setup.corp, setup.config, clock)
    simulate_update(fake_wecom.fake, setup.corp.corp_id, chat_id=chat, owner="ghost")
    run_pushed(db, setup.corp, setup.config, clock)
    group = group_by_chat_id(db, setup.workspace.id, chat)
    assert group is not None and group.owner_staff_id is None
    member = next(m for m in setup.corp.table("groups")[chat]["member_list"] if m["userid"] == "wmA")
    assert member["invitor"] == {"userid": "zhang"} and member["group_nickname"] == ""
    assert member["join_time"] == int(clock.now().timestamp())
    again = simulate_join(fake_wecom.fake, setup.corp.corp_id, chat_id=chat, external_userid="wmA")
    assert again["statuses"] == [] and setup.corp.pushed == []
    simulate_change_notice(fake_wecom.fake, setup.corp.corp_id, chat_id=chat, notice="周五上新")
    [notice] = run_pushed(db, setup.corp, setup.config, clock)
    assert (notice.payload["UpdateDetail"], notice.status) == ("change_notice", EventStatus.PROCESSED)
    assert sync_group(db, setup.config, chat, clock).joined == 0
