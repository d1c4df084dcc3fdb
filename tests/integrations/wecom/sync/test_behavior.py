"""Staff behaviour data from the fake WeCom into StaffBehaviorDay and the staff performance report."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.analytics.performance.report import staff_table
from siyu.analytics.performance.staff import staff_performance
from siyu.analytics.periods import Period
from siyu.auth.permissions import Actor
from siyu.db import Database
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.sync.behavior import fetch_behavior
from siyu.integrations.wecom.sync.tasks import fetch_all_behavior
from siyu.kit.clock import FrozenClock
from siyu.models import StaffBehaviorDay, WecomIntegration
from tests.factories import make_staff
from tests.integrations.wecom.helpers import wecom_staff, wecom_workspace

DAY = {"new_apply_cnt": 1, "new_contact_cnt": 2, "negative_feedback_cnt": 0}


def test_behavior_days_are_stored_per_staff_and_feed_the_reply_rate(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    zhang = wecom_staff(db, setup, clock=clock, userid="zhangsan", name="张三")
    behavior = setup.corp.table("behavior")
    behavior["zhangsan|2026-11-20"] = {
        **DAY,
        "chat_cnt": 0,
        "message_cnt": 0,
        "reply_percentage": 0,
        "avg_reply_time": 0,
    }
    behavior["zhangsan|2026-11-21"] = {
        **DAY,
        "chat_cnt": 30,
        "message_cnt": 90,
        "reply_percentage": 60.0,
        "avg_reply_time": 15,
    }
    behavior["zhangsan|2026-11-22"] = {
        **DAY,
        "chat_cnt": 10,
        "message_cnt": 40,
        "reply_percentage": 80.0,
        "avg_reply_time": 5,
    }

    # the clock is 2026-11-23 10:00 in Shanghai: the last three finished days are fetched
    assert fetch_behavior(db, setup.config, clock) == {"days": 3, "staff": 1}
    assert fetch_behavior(db, setup.config, clock) == {"days": 3, "staff": 1}  # again: overwritten, not doubled

    rows = db.scalars(
        select(StaffBehaviorDay).where(StaffBehaviorDay.staff_id == zhang.id).order_by(StaffBehaviorDay.day)
    )
    assert [(r.day, r.chat_cnt, r.message_cnt, r.reply_percentage, r.avg_reply_time) for r in rows] == [
        (date(2026, 11, 20), 0, 0, 0.0, 0),  # kept as reported: WeCom gives no denominator
        (date(2026, 11, 21), 30, 90, 60.0, 15),
        (date(2026, 11, 22), 10, 40, 80.0, 5),
    ]
    assert setup.corp.calls_of("externalcontact/get_user_behavior_data") == 2  # one member a call
    actor = Actor.system(setup.workspace.id)
    result = staff_performance(db, actor=actor, period=Period(date(2026, 11, 20), date(2026, 11, 22)), clock=clock)
    row = next(r for r in result.rows if r.staff_id == zhang.id)
    # reply %: days weighted by max(chats, 1) → (0×1 + 60×30 + 80×10) / 41; the chat-less day counts once.
    # reply minutes: weighted by replied chats (30×60% = 18, 10×80% = 8) → (15×18 + 5×8) / 26
    assert (row.chats, row.wecom_messages, row.reply_rate, row.avg_reply_time) == (
        40,
        130,
        pytest.approx(2600 / 41 / 100),
        pytest.approx(310 / 26),
    )
    assert row.on_time_rate is None  # no tasks: the on-time rate is its own figure, never WeCom's
    table = staff_table(result)
    keys = [c.key for c in table.columns]
    assert keys[keys.index("tasks_done") + 1 : keys.index("avg_reply_time") + 1] == [
        "on_time_rate",
        "chats",
        "wecom_messages",
        "reply_rate",
        "avg_reply_time",
    ]
    assert next(c.label for c in table.columns if c.key == "reply_rate") == "回复率（企业微信）"
    assert next(c.label for c in table.columns if c.key == "on_time_rate") == "按时完成率"
    assert table.footer is not None
    assert (table.footer["chats"], table.footer["reply_rate"], table.footer["on_time_rate"]) == (
        40,
        pytest.approx(2600 / 41 / 100),
        None,
    )


def test_behavior_days_are_china_days_whatever_the_brand_zone(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.workspace.timezone = "America/Los_Angeles"  # 2026-11-22 18:00 there; 2026-11-23 10:00 in China
    zhang = wecom_staff(db, setup, clock=clock, userid="zhangsan", name="张三")
    setup.corp.clock = lambda: clock.now().timestamp()
    setup.corp.table("behavior")["zhangsan|2026-11-22"] = {
        **DAY,
        "chat_cnt": 7,
        "message_cnt": 9,
        "reply_percentage": 50.0,
        "avg_reply_time": 3,
    }
    db.flush()

    assert fetch_behavior(db, setup.config, clock, start=date(2026, 11, 22), end=date(2026, 11, 22)) == {
        "days": 1,
        "staff": 1,
    }

    row = db.scalar(select(StaffBehaviorDay).where(StaffBehaviorDay.staff_id == zhang.id))
    assert row is not None and (row.day, row.chat_cnt) == (date(2026, 11, 22), 7)  # not the LA day 11-21
    assert fetch_behavior(db, setup.config, clock) == {"days": 3, "staff": 1}  # default: up to China's yesterday
    days = db.scalars(select(StaffBehaviorDay.day).where(StaffBehaviorDay.staff_id == zhang.id))
    assert sorted(days) == [date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)]


def test_fake_refuses_behavior_more_than_180_days_back(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    zhang = wecom_staff(db, setup, clock=clock, userid="zhangsan")
    setup.corp.clock = lambda: clock.now().timestamp()

    result = fetch_behavior(db, setup.config, clock, start=date(2026, 5, 1), end=date(2026, 5, 2))

    assert result == {"errors": 1, "staff": 1}
    assert db.scalar(select(StaffBehaviorDay).where(StaffBehaviorDay.staff_id == zhang.id)) is None


def test_a_member_wecom_does_not_know_is_noted_and_others_still_fetched(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="zhangsan")
    make_staff(db, workspace=setup.workspace, clock=clock, wecom_user_id="ghost")
    db.commit()

    result = fetch_all_behavior(database, clock, setup.workspace.id, start=date(2026, 11, 22), end=date(2026, 11, 22))

    assert result == {str(setup.workspace.id): {"days": 1, "staff": 2, "errors": 1}}
    db.expire_all()
    integration = db.scalar(select(WecomIntegration).where(WecomIntegration.workspace_id == setup.workspace.id))
    assert integration is not None and integration.last_error == (
        "externalcontact/get_user_behavior_data: userid not found: ghost (成员 userid 不存在)"
    )
