"""change_external_chat: create / join / leave / owner change / dismiss reach siyu's groups and
stays through `groupchat/get`, idempotently."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.customers import repository as customers
from siyu.integrations.wecom.dispatch import process
from siyu.integrations.wecom.fake.groups import (
    QUIT_SCENE_REMOVED,
    simulate_create,
    simulate_dismiss,
    simulate_join,
    simulate_leave,
    simulate_update,
)
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.groups.sync import group_by_chat_id
from siyu.kit.clock import FrozenClock
from siyu.models import Customer, CustomerEvent, EventStatus, GroupMember, Identity, IdentityType
from tests.integrations.wecom.groups.pushed import run_pushed, store
from tests.integrations.wecom.helpers import WecomSetup, wecom_staff, wecom_workspace


def _stays(db: Session, group_id: int) -> list[tuple[str, str, str | None]]:
    """(who, role, left_reason) of every stay, customers by name and staff by wecom userid."""
    rows = []
    for stay in db.scalars(select(GroupMember).where(GroupMember.group_id == group_id).order_by(GroupMember.id)):
        if stay.customer_id is not None:
            customer = db.get(Customer, stay.customer_id)
            assert customer is not None
            who = f"c:{customer.name}"
        else:
            who = f"s:{stay.staff_id}"
        rows.append((who, str(stay.role), stay.left_reason))
    return rows


def _setup(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> tuple[WecomSetup, int, int]:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    zhang = wecom_staff(db, setup, clock=clock, userid="zhang", name="张导购")
    li = wecom_staff(db, setup, clock=clock, userid="li", name="李导购")
    return setup, zhang.id, li.id


def test_a_created_group_arrives_with_owner_admins_and_customers(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup, zhang, li = _setup(db, clock, fake_wecom)
    created = simulate_create(
        fake_wecom.fake,
        setup.corp.corp_id,
        owner="zhang",
        name="福利一群",
        members=[
            {"external_userid": "wmAlice", "name": "小爱"},
            {"external_userid": "wmBob", "name": "小波"},
            {"userid": "li"},
        ],
        admins=["li"],
    )
    [event] = run_pushed(db, setup.corp, setup.config, clock)
    assert (event.status, event.error) == (EventStatus.PROCESSED, None)
    group = group_by_chat_id(db, setup.workspace.id, created["chat_id"])
    assert group is not None
    assert (group.name, group.owner_staff_id, group.member_count, group.is_active) == ("福利一群", zhang, 4, True)
    assert _stays(db, group.id) == [
        (f"s:{zhang}", "owner", None),
        ("c:小爱", "member", None),
        ("c:小波", "member", None),
        (f"s:{li}", "admin", None),
    ]
    alice = customers.find_by_identity(db, setup.workspace.id, IdentityType.WECOM_EXTERNAL_USERID, "wmAlice")
    assert alice is not None and alice.name == "小爱"
    joined = db.scalars(
        select(CustomerEvent.type).where(CustomerEvent.customer_id == alice.id, CustomerEvent.type == "group.joined")
    ).all()
    assert joined == ["group.joined"]

    # the same event again (a retried job) changes nothing
    assert process(db, event, setup.config, clock) == EventStatus.PROCESSED
    assert len(_stays(db, group.id)) == 4
    assert db.scalar(select(func.count()).select_from(Identity).where(Identity.value == "wmAlice")) == 1


def test_join_and_leave_open_and_close_stays_with_the_right_reason(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup, zhang, _li = _setup(db, clock, fake_wecom)
    chat = simulate_create(
        fake_wecom.fake, setup.corp.corp_id, owner="zhang", members=[{"external_userid": "wmA", "name": "阿"}]
    )
    run_pushed(db, setup.corp, setup.config, clock)
    simulate_join(
        fake_wecom.fake, setup.corp.corp_id, chat_id=chat["chat_id"], external_userid="wmB", name="贝", state="lc1"
    )
    simulate_join(fake_wecom.fake, setup.corp.corp_id, chat_id=chat["chat_id"], external_userid="wmC", name="茜")
    run_pushed(db, setup.corp, setup.config, clock)
    simulate_leave(fake_wecom.fake, setup.corp.corp_id, chat_id=chat["chat_id"], member_id="wmA")
    simulate_leave(
        fake_wecom.fake, setup.corp.corp_id, chat_id=chat["chat_id"], member_id="wmB", quit_scene=QUIT_SCENE_REMOVED
    )
    events = run_pushed(db, setup.corp, setup.config, clock)
    assert [e.status for e in events] == [EventStatus.PROCESSED, EventStatus.PROCESSED]
    assert events[1].payload["QuitScene"] == "1" and events[1].payload["MemChangeList"] == {"Item": "wmB"}
    group = group_by_chat_id(db, setup.workspace.id, chat["chat_id"])
    assert group is not None
    assert _stays(db, group.id) == [
        (f"s:{zhang}", "owner", None),
        ("c:阿", "member", "left"),
        ("c:贝", "member", "removed"),
        ("c:茜", "member", None),
    ]
    assert group.member_count == 2
    bei = customers.find_by_identity(db, setup.workspace.id, IdentityType.WECOM_EXTERNAL_USERID, "wmB")
    assert bei is not None
    joined = db.scalar(
        select(CustomerEvent).where(CustomerEvent.customer_id == bei.id, CustomerEvent.type == "group.joined")
    )
    assert joined is not None
    assert joined.properties["state"] == "lc1" and joined.properties["wecom_join_scene"] == 3


def test_owner_change_rename_and_dismiss(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup, zhang, li = _setup(db, clock, fake_wecom)
    chat = simulate_create(
        fake_wecom.fake, setup.corp.corp_id, owner="zhang", members=[{"external_userid": "wmA", "name": "阿"}]
    )
    run_pushed(db, setup.corp, setup.config, clock)
    simulate_update(fake_wecom.fake, setup.corp.corp_id, chat_id=chat["chat_id"], owner="li")
    simulate_update(fake_wecom.fake, setup.corp.corp_id, chat_id=chat["chat_id"], name="老客群")
    run_pushed(db, setup.corp, setup.config, clock)
    group = group_by_chat_id(db, setup.workspace.id, chat["chat_id"])
    assert group is not None
    assert (group.name, group.owner_staff_id) == ("老客群", li)
    assert _stays(db, group.id) == [
        (f"s:{zhang}", "member", None),
        ("c:阿", "member", None),
        (f"s:{li}", "owner", None),
    ]
    simulate_dismiss(fake_wecom.fake, setup.corp.corp_id, chat_id=chat["chat_id"])
    [event] = run_pushed(db, setup.corp, setup.config, clock)
    assert event.status == EventStatus.PROCESSED
    db.refresh(group)
    assert (group.is_active, group.member_count) == (False, 0)
    assert {reason for _who, _role, reason in _stays(db, group.id)} == {"dismissed"}


def test_unknown_staff_is_noted_and_a_wecom_failure_fails_the_event_without_writes(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup, _zhang, _li = _setup(db, clock, fake_wecom)
    setup.corp.users["ghost"] = {"userid": "ghost", "name": "离职员工", "department": [1], "status": 1}
    chat = simulate_create(
        fake_wecom.fake, setup.corp.corp_id, owner="ghost", members=[{"external_userid": "wmA", "name": "阿"}]
    )
    [event] = run_pushed(db, setup.corp, setup.config, clock)
    assert (event.status, event.error) == (EventStatus.PROCESSED, "unknown staff ghost")
    group = group_by_chat_id(db, setup.workspace.id, chat["chat_id"])
    assert group is not None and group.owner_staff_id is None
    assert _stays(db, group.id) == [("c:阿", "member", None)]

    simulate_join(fake_wecom.fake, setup.corp.corp_id, chat_id=chat["chat_id"], external_userid="wmB", name="贝")
    setup.corp.fail_next("externalcontact/groupchat/get", -1)
    [failed] = run_pushed(db, setup.corp, setup.config, clock)
    assert failed.status == EventStatus.FAILED and "groupchat/get" in (failed.error or "")
    assert customers.find_by_identity(db, setup.workspace.id, IdentityType.WECOM_EXTERNAL_USERID, "wmB") is None
    assert process(db, failed, setup.config, clock) == EventStatus.PROCESSED  # the retry succeeds
    assert len(_stays(db, group.id)) == 2


def test_dismiss_of_an_unknown_group_is_noted(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup, _zhang, _li = _setup(db, clock, fake_wecom)
    event = store(
        db,
        setup.workspace.id,
        {"Event": "change_external_chat", "ChangeType": "dismiss", "ChatId": "wrNope", "CreateTime": "1700000000"},
        clock,
    )
    assert process(db, event, setup.config, clock) == EventStatus.PROCESSED
    assert event.error == "unknown group wrNope"
