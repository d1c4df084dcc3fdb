"""Staff performance with WeCom behaviour data: chats, messages, average reply time, WeCom's reply rate."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.analytics.performance.staff import staff_performance
from siyu.analytics.periods import Period
from siyu.auth.permissions import Actor
from siyu.kit.clock import FrozenClock
from siyu.models import Role, StaffBehaviorDay, StaffTask, StaffTaskStatus, User, Workspace
from tests.factories import make_staff
from tests.web.conftest import login

PERIOD = Period(date(2026, 11, 20), date(2026, 11, 22))


def _day(
    db: Session,
    clock: FrozenClock,
    staff_id: int,
    ws: int,
    day: date,
    chats: int,
    messages: int,
    pct: float | None,
    minutes: int | None,
) -> None:
    db.add(
        StaffBehaviorDay(
            workspace_id=ws,
            staff_id=staff_id,
            day=day,
            chat_cnt=chats,
            message_cnt=messages,
            reply_percentage=pct,
            avg_reply_time=minutes,
            fetched_at=clock.now(),
        )
    )


def test_wecom_reply_rate_and_the_on_time_rate_are_separate_figures(
    db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    with_data = make_staff(db, workspace=workspace, clock=clock, name="甲")
    without = make_staff(db, workspace=workspace, clock=clock, name="乙")
    _day(db, clock, with_data.id, workspace.id, date(2026, 11, 21), 30, 90, 60.0, 15)
    _day(db, clock, with_data.id, workspace.id, date(2026, 11, 22), 10, 40, 80.0, 5)
    _day(db, clock, with_data.id, workspace.id, date(2026, 11, 23), 99, 99, 1.0, 99)  # outside the period
    db.add(
        StaffTask(
            workspace_id=workspace.id,
            staff_id=without.id,
            title="回访",
            source="journey",
            source_id=1,
            idempotency_key=f"wecom-{workspace.id}",
            status=StaffTaskStatus.DONE,
            due_at=clock.now().replace(day=21),
            done_at=clock.now().replace(day=20),
            created_at=clock.now(),
        )
    )
    db.flush()

    result = staff_performance(db, actor=Actor.system(workspace.id), period=PERIOD, clock=clock, sort="chats")

    first, second = result.rows
    # reply %: days weighted by chats (both days have chats); minutes by replied chats 30×60% and 10×80%
    assert (first.name, first.chats, first.wecom_messages, first.reply_rate, first.avg_reply_time) == (
        "甲",
        40,
        130,
        pytest.approx(0.65),
        pytest.approx((15 * 18 + 5 * 8) / 26),
    )
    assert first.on_time_rate is None  # 甲 has no tasks: WeCom's figure never stands in for it
    assert (second.name, second.has_behavior, second.reply_rate, second.on_time_rate, second.avg_reply_time) == (
        "乙",
        False,
        None,
        1.0,
        None,
    )


def test_staff_page_shows_the_wecom_columns_when_reported(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    staff = make_staff(db, workspace=workspace, clock=clock, name="甲")
    _day(db, clock, staff.id, workspace.id, date(2026, 11, 22), 10, 40, 80.0, 5)
    db.commit()
    login(client, user_with_role(Role.ANALYST).email)
    plain = client.get("/analytics/staff?from=2026-11-01&to=2026-11-19").text
    assert 'data-col="chats"' not in plain and "按时完成率" in plain
    page = client.get("/analytics/staff?from=2026-11-01&to=2026-11-23")
    assert page.status_code == 200
    row = page.text[page.text.index(f'data-staff-id="{staff.id}"') :]
    row = row[: row.index("</tr>")]
    assert 'data-col="chats" class="text-end">10</td>' in row
    assert 'data-col="avg_reply_time" class="text-end">5.00</td>' in row
    assert 'data-col="reply_rate" class="text-end">80.0%</td>' in row
    assert 'data-col="on_time_rate"' in row and "回复率（企业微信）" in page.text
    assert "回复率、聊天与平均首次回复来自企业微信联系客户统计" in page.text
