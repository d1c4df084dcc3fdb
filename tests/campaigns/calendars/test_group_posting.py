"""Group calendars: validation of what a calendar may hold, and posting each due slot exactly once
(weekday and slot in the brand's time zone, the catch-up window, sandbox and WeCom accounts)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.campaigns.calendars import groups
from siyu.campaigns.calendars.posting import post_due_group_messages
from siyu.campaigns.calendars.schemas import EntryIn, GroupCalendarIn, GroupCalendarPatch
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.messaging.adapters.base import OutcomeKind
from siyu.models import AdapterKind, GroupPost, Role, Slot, Workspace
from tests.campaigns.calendars.factories import make_calendar
from tests.factories import actor_for, make_group, make_staff, make_workspace
from tests.messaging.factories import make_account, make_content

SHANGHAI_0830 = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)  # Monday 08:30 in Asia/Shanghai


def _posts(db: Session) -> list[tuple[int, date, str, str | None]]:
    db.expire_all()
    rows = db.scalars(select(GroupPost).order_by(GroupPost.group_id, GroupPost.entry_id)).all()
    return [(p.group_id, p.post_date, p.status, p.error) for p in rows]


def _setup(db: Session, clock: FrozenClock, **kwargs: Any) -> tuple[Workspace, list[Any], Any]:
    ws = make_workspace(db, clock=clock, name="花间集")
    two_groups = [make_group(db, workspace=ws, clock=clock) for _ in range(2)]
    account = make_account(db, workspace=ws, clock=clock, **kwargs)
    return ws, two_groups, account


# --- what a calendar may hold ------------------------------------------------------------------------


def test_a_calendar_refuses_content_with_per_customer_variables(db: Session, clock: FrozenClock) -> None:
    # given content that greets each customer by name
    ws, two_groups, account = _setup(db, clock)
    personal = make_content(db, workspace=ws, clock=clock, body="{{ name }}，早上好")
    # when it is put on a group calendar
    with pytest.raises(InvalidInput) as caught:
        make_calendar(
            db, workspace=ws, clock=clock, groups_=two_groups, account=account, entries=[([1], "morning", personal)]
        )
    # then the error names the entry's field and the variable
    assert caught.value.details == {"field": "entries.0.content_id", "variable": "name"}
    assert "{{ name }}" in caught.value.message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"slot_times": {"evening": "25:00"}}, "slot_times.evening"),
        ({"slot_times": {"morning": "8:30"}}, "slot_times.morning"),
        ({"slot_times": {"night": "23:00"}}, "slot_times.night"),
        ({"group_ids": []}, "group_ids"),
        ({"name": "  "}, "name"),
    ],
)
def test_bad_calendar_input_names_the_field(
    db: Session, clock: FrozenClock, change: dict[str, Any], field: str
) -> None:
    ws, two_groups, account = _setup(db, clock)
    values: dict[str, Any] = {
        "name": "早安群",
        "group_ids": [g.id for g in two_groups],
        "channel_account_id": account.id,
    }
    with pytest.raises(InvalidInput) as caught:
        groups.create_calendar(db, actor=actor_for(ws), data=GroupCalendarIn(**(values | change)), clock=clock)
    assert caught.value.details["field"] == field


def test_references_must_be_this_workspaces_and_fit_for_groups(db: Session, clock: FrozenClock) -> None:
    ws, two_groups, account = _setup(db, clock)
    other = make_workspace(db, clock=clock)
    foreign_group = make_group(db, workspace=other, clock=clock)
    sms = make_account(db, workspace=ws, clock=clock, kind=AdapterKind.SMS_ALIYUN)
    archived = make_content(db, workspace=ws, clock=clock, body="早安", archived_at=clock.now())
    actor = actor_for(ws)
    base: dict[str, Any] = {"name": "早安群", "group_ids": [g.id for g in two_groups], "channel_account_id": account.id}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"group_ids": [two_groups[0].id, foreign_group.id]}, "group_ids.1"),
        ({"channel_account_id": sms.id}, "channel_account_id"),
        ({"entries": [{"weekdays": [1], "slot": "noon", "content_id": archived.id}]}, "entries.0.content_id"),
        ({"entries": [{"weekdays": [0, 8], "slot": "noon", "content_id": archived.id}]}, "entries.0.weekdays"),
    ]
    for change, field in cases:
        with pytest.raises(InvalidInput) as caught:
            groups.create_calendar(db, actor=actor, data=GroupCalendarIn(**(base | change)), clock=clock)
        assert caught.value.details["field"] == field


def test_limited_roles_cannot_change_calendars(db: Session, clock: FrozenClock) -> None:
    ws, two_groups, account = _setup(db, clock)
    item = make_content(db, workspace=ws, clock=clock, body="早安")
    calendar = make_calendar(
        db, workspace=ws, clock=clock, groups_=two_groups, account=account, entries=[([1], "morning", item)]
    )
    for role in (Role.STAFF, Role.STORE_MANAGER, Role.ANALYST):
        with pytest.raises(PermissionDenied):
            groups.update_calendar(
                db,
                actor=actor_for(ws, role=role),
                calendar_id=calendar.id,
                data=GroupCalendarPatch(name="改名"),
                clock=clock,
            )
        with pytest.raises(PermissionDenied):
            groups.add_entry(
                db,
                actor=actor_for(ws, role=role),
                calendar_id=calendar.id,
                data=EntryIn(weekdays=[2], slot=Slot.NOON, content_id=item.id),
                clock=clock,
            )
    assert calendar.name != "改名"
    assert len(groups.entries_of(db, calendar.id)) == 1


# --- posting -------------------------------------------------------------------------------------


def test_a_due_slot_is_posted_once_to_each_group(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a Monday-morning entry (08:30 Shanghai) for two groups on the sandbox, at 10:00 Shanghai
    ws, two_groups, account = _setup(db, clock)
    item = make_content(
        db,
        workspace=ws,
        clock=clock,
        body="早安！{{ brand }}今日福利：{{ link }}",
        link_url="https://shop.example.com/d",
    )
    make_calendar(
        db, workspace=ws, clock=clock, groups_=two_groups, account=account, entries=[([1, 3, 5], "morning", item)]
    )
    db.commit()
    # when the sweep runs twice
    first = post_due_group_messages(database, clock)
    second = post_due_group_messages(database, clock)
    # then each group got one post, recorded with its rendered message
    assert first == {"calendars": 1, "sent": 2, "failed": 0, "already": 0}
    assert second == {"calendars": 1, "sent": 0, "failed": 0, "already": 0}
    monday = date(2026, 11, 23)
    assert _posts(db) == [(two_groups[0].id, monday, "sent", None), (two_groups[1].id, monday, "sent", None)]
    texts = {p.message["text"] for p in db.scalars(select(GroupPost))}
    assert texts == {"早安！花间集今日福利：https://shop.example.com/d"}


def test_only_todays_weekday_and_opened_slots_are_posted(db: Session, database: Database, clock: FrozenClock) -> None:
    # given entries for Monday noon, Tuesday morning and Sunday evening, and it is Monday 10:00 Shanghai
    ws, two_groups, account = _setup(db, clock)
    noon = make_content(db, workspace=ws, clock=clock, body="午间分享")
    tuesday = make_content(db, workspace=ws, clock=clock, body="周二早安")
    sunday = make_content(db, workspace=ws, clock=clock, body="周日晚安")
    make_calendar(
        db,
        workspace=ws,
        clock=clock,
        groups_=two_groups[:1],
        account=account,
        entries=[([1], "noon", noon), ([2], "morning", tuesday), ([7], "evening", sunday)],
    )
    db.commit()
    # when the sweep runs at 10:00 — nothing is due (noon has not come, Sunday 20:00 is 14 hours ago)
    assert post_due_group_messages(database, clock)["sent"] == 0
    # and at 12:00 the noon slot opens
    clock.set(datetime(2026, 11, 23, 4, 0, tzinfo=UTC))
    assert post_due_group_messages(database, clock)["sent"] == 1
    assert [p.message["text"] for p in db.scalars(select(GroupPost))] == ["午间分享"]


@pytest.mark.parametrize(
    ("at", "posted"),
    [
        (datetime(2026, 11, 23, 0, 29, tzinfo=UTC), 0),  # 08:29: not yet
        (datetime(2026, 11, 23, 0, 30, tzinfo=UTC), 1),  # 08:30: the slot opens
        (datetime(2026, 11, 23, 2, 29, tzinfo=UTC), 1),  # 10:29: still inside the two-hour catch-up
        (datetime(2026, 11, 23, 2, 30, tzinfo=UTC), 0),  # 10:30: too late, skipped
    ],
)
def test_the_catch_up_window_is_two_hours(
    db: Session, database: Database, clock: FrozenClock, at: datetime, posted: int
) -> None:
    ws, two_groups, account = _setup(db, clock)
    item = make_content(db, workspace=ws, clock=clock, body="早安")
    make_calendar(
        db, workspace=ws, clock=clock, groups_=two_groups[:1], account=account, entries=[([1], "morning", item)]
    )
    db.commit()
    clock.set(at)
    assert post_due_group_messages(database, clock)["sent"] == posted


def test_a_late_evening_slot_is_caught_after_midnight(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a Sunday 23:30 slot, and the sweep first runs at Monday 00:30 Shanghai
    ws, two_groups, account = _setup(db, clock)
    item = make_content(db, workspace=ws, clock=clock, body="晚安")
    make_calendar(
        db,
        workspace=ws,
        clock=clock,
        groups_=two_groups[:1],
        account=account,
        entries=[([7], "evening", item)],
        slot_times={"evening": "23:30"},
    )
    db.commit()
    clock.set(datetime(2026, 11, 22, 16, 30, tzinfo=UTC))
    # then it posts, dated Sunday
    assert post_due_group_messages(database, clock)["sent"] == 1
    assert _posts(db) == [(two_groups[0].id, date(2026, 11, 22), "sent", None)]


def test_paused_calendars_do_not_post(db: Session, database: Database, clock: FrozenClock) -> None:
    ws, two_groups, account = _setup(db, clock)
    item = make_content(db, workspace=ws, clock=clock, body="早安")
    calendar = make_calendar(
        db, workspace=ws, clock=clock, groups_=two_groups, account=account, entries=[([1], "morning", item)]
    )
    groups.update_calendar(
        db, actor=actor_for(ws), calendar_id=calendar.id, data=GroupCalendarPatch(is_active=False), clock=clock
    )
    db.commit()
    assert post_due_group_messages(database, clock) == {"calendars": 0, "sent": 0, "failed": 0, "already": 0}


def test_content_archived_after_planning_records_a_failed_post(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    ws, two_groups, account = _setup(db, clock)
    item = make_content(db, workspace=ws, clock=clock, body="早安")
    make_calendar(
        db, workspace=ws, clock=clock, groups_=two_groups[:1], account=account, entries=[([1], "morning", item)]
    )
    item.archived_at = clock.now()
    db.commit()
    assert post_due_group_messages(database, clock)["failed"] == 1
    assert _posts(db) == [(two_groups[0].id, date(2026, 11, 23), "failed", "the content was archived or deleted")]
    assert post_due_group_messages(database, clock)["failed"] == 0


def test_wecom_group_posts_go_through_the_adapter_once(
    db: Session, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a WeCom group account and three groups: one owned by a staff member with a WeCom id,
    # one whose owner has none, one the provider refuses
    from siyu.messaging.adapters import wecom

    ws = make_workspace(db, clock=clock, name="花间集")
    owner = make_staff(db, workspace=ws, clock=clock, name="小林", wecom_user_id="lin")
    no_id = make_staff(db, workspace=ws, clock=clock, name="小王")
    ok, missing, refused = (make_group(db, workspace=ws, clock=clock) for _ in range(3))
    ok.owner_staff_id, ok.wecom_chat_id = owner.id, "wrOK"
    missing.owner_staff_id, missing.wecom_chat_id = no_id.id, "wrMISSING"
    refused.owner_staff_id, refused.wecom_chat_id = owner.id, "wrREFUSED"
    account = make_account(
        db, workspace=ws, clock=clock, kind=AdapterKind.WECOM_GROUP, credentials={"corp_id": "ww1", "secret": "s"}
    )
    item = make_content(db, workspace=ws, clock=clock, body="{{ staff_name }}的早安分享")
    make_calendar(
        db, workspace=ws, clock=clock, groups_=[ok, missing, refused], account=account, entries=[([1], "morning", item)]
    )
    db.commit()
    calls: list[tuple[str, str, list[str] | None, dict[str, Any]]] = []

    def fake_send(
        account: Any,
        credentials: Any,
        staff_userid: str,
        message: Any,
        clock: Any,
        *,
        chat_ids: list[str] | None = None,
    ) -> wecom.GroupPost:
        calls.append((credentials["corp_id"], staff_userid, chat_ids, dict(message)))
        if chat_ids == ["wrREFUSED"]:
            return wecom.GroupPost(OutcomeKind.FAILED, reason="41048", error="no permission for this group")
        return wecom.GroupPost(OutcomeKind.SENT, msgid="msg1")

    monkeypatch.setattr(wecom, "send_group_post", fake_send)
    # when the sweep runs twice
    first = post_due_group_messages(database, clock)
    post_due_group_messages(database, clock)
    # then the adapter was called once per group that can be posted to, and each outcome recorded
    assert first == {"calendars": 1, "sent": 1, "failed": 2, "already": 0}
    assert calls == [
        ("ww1", "lin", ["wrOK"], {"kind": "text", "text": "小林的早安分享"}),
        ("ww1", "lin", ["wrREFUSED"], {"kind": "text", "text": "小林的早安分享"}),
    ]
    monday = date(2026, 11, 23)
    assert _posts(db) == [
        (ok.id, monday, "sent", None),
        (missing.id, monday, "failed", "the group's owner has no WeCom user id"),
        (refused.id, monday, "failed", "no permission for this group"),
    ]


def test_the_sweeps_are_declared_every_minute() -> None:
    from datetime import timedelta

    from siyu.campaigns.calendars import tasks
    from siyu.jobs.scheduler import periodic_tasks

    declared = {t.name: (t.kind, t.every()) for t in periodic_tasks() if t.name in ("group_posts", "publish_moments")}
    assert declared == {
        tasks.GROUP_POSTS_KIND: ("group_posts", timedelta(minutes=1)),
        tasks.MOMENTS_KIND: ("publish_moments", timedelta(minutes=1)),
    }
