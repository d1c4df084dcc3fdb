"""Check-ins, streaks and task limits per brand-local period; completions pay through the ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.loyalty.errors import AlreadyCheckedIn, TaskLimitReached, TaskNotFound, TaskRequirementsNotMet
from siyu.loyalty.member_tasks.service import check_in, complete_task, task_board
from siyu.loyalty.points.ledger import balance_from_ledger
from siyu.models import Customer, CustomerEvent, LimitPeriod, PointsEntry, PointsReason, TaskCompletion, TaskKind
from tests.factories import make_workspace
from tests.loyalty.member_tasks.factories import make_member, make_task


def _entries(db: Session, member_id: int) -> list[tuple[int, str, str]]:
    rows = db.execute(
        select(PointsEntry.amount, PointsEntry.description, PointsEntry.idempotency_key)
        .where(PointsEntry.member_id == member_id)
        .order_by(PointsEntry.id)
    ).all()
    return [(a, d, k) for a, d, k in rows]


def _completions(db: Session, member_id: int) -> int:
    return int(db.scalar(select(func.count()).where(TaskCompletion.member_id == member_id)) or 0)


def test_first_check_in_starts_a_streak_and_pays_the_points(db: Session, clock: FrozenClock) -> None:
    # given a check-in task worth 5 points and a member with none
    ws = make_workspace(db, clock=clock)
    task = make_task(db, workspace=ws, clock=clock, kind=TaskKind.CHECK_IN, points=5)
    member = make_member(db, workspace=ws, clock=clock)
    # when the member checks in at 10:00 Shanghai on 23 Nov
    result = check_in(db, workspace_id=ws.id, customer_id=member.customer_id, clock=clock)
    # then the streak is 1, 5 points are paid under the task's key, and the timeline has it
    assert (result.day, result.streak, result.points, result.bonus, result.balance) == (date(2026, 11, 23), 1, 5, 0, 5)
    assert result.completion.period_key == "2026-11-23"
    assert _entries(db, member.id) == [(5, "每日签到", f"task:{task.id}:{member.id}:2026-11-23:1")]
    assert (member.checkin_streak, member.last_checkin_on) == (1, date(2026, 11, 23))
    events = db.scalars(select(CustomerEvent.type).where(CustomerEvent.customer_id == member.customer_id)).all()
    assert "loyalty.check_in" in events


def test_a_second_check_in_the_same_brand_day_is_refused_and_writes_nothing(db: Session, clock: FrozenClock) -> None:
    # given a member who checked in at 10:00 Shanghai
    ws = make_workspace(db, clock=clock)
    make_task(db, workspace=ws, clock=clock, kind=TaskKind.CHECK_IN, points=5)
    member = make_member(db, workspace=ws, clock=clock)
    check_in(db, workspace_id=ws.id, customer_id=member.customer_id, clock=clock)
    # when they try again at 23:59 Shanghai (15:59 UTC), the same brand-local day
    clock.set(datetime(2026, 11, 23, 15, 59, tzinfo=UTC))
    with pytest.raises(AlreadyCheckedIn):
        check_in(db, workspace_id=ws.id, customer_id=member.customer_id, clock=clock)
    # then nothing more was written
    assert (member.points_balance, _completions(db, member.id), len(_entries(db, member.id))) == (5, 1, 1)


def test_streak_counts_brand_local_days_pays_bonuses_and_resets_after_a_missed_day(
    db: Session, clock: FrozenClock
) -> None:
    # given a 5-point check-in with bonuses at 3 and 7 days
    ws = make_workspace(db, clock=clock)
    task = make_task(db, workspace=ws, clock=clock, kind=TaskKind.CHECK_IN, points=5, streak_bonuses={"3": 10, "7": 50})
    member = make_member(db, workspace=ws, clock=clock)
    cid = member.customer_id
    # when the member checks in 23 Nov 10:00, 24 Nov 00:30 (still 23 Nov in UTC) and 25 Nov 23:00 Shanghai
    first = check_in(db, workspace_id=ws.id, customer_id=cid, clock=clock)
    clock.set(datetime(2026, 11, 23, 16, 30, tzinfo=UTC))
    second = check_in(db, workspace_id=ws.id, customer_id=cid, clock=clock)
    clock.set(datetime(2026, 11, 25, 15, 0, tzinfo=UTC))
    third = check_in(db, workspace_id=ws.id, customer_id=cid, clock=clock)
    # then the streak reaches 3 and the 3-day bonus is paid as its own entry
    assert [first.streak, second.streak, third.streak] == [1, 2, 3]
    assert (third.bonus, third.balance) == (10, 25)
    assert _entries(db, member.id)[-1] == (10, "连续签到 3 天奖励", f"task:{task.id}:{member.id}:2026-11-25:streak:3")
    # when the member skips 26 Nov and checks in on 27 Nov
    clock.set(datetime(2026, 11, 27, 1, 0, tzinfo=UTC))
    after_gap = check_in(db, workspace_id=ws.id, customer_id=cid, clock=clock)
    # then the streak starts again at 1, with no bonus
    assert (after_gap.streak, after_gap.bonus, after_gap.balance) == (1, 0, 30)
    assert balance_from_ledger(db, member.id) == 30


def test_daily_limit_resets_at_brand_midnight_not_utc_midnight(db: Session, clock: FrozenClock) -> None:
    # given a post task paying 20, twice a day
    ws = make_workspace(db, clock=clock)
    task = make_task(db, workspace=ws, clock=clock, points=20, limit_count=2)
    member = make_member(db, workspace=ws, clock=clock)
    cid = member.customer_id
    # when the member posts three times before 24:00 Shanghai
    complete_task(db, workspace_id=ws.id, customer_id=cid, task_key=task.key, ref="post-1", clock=clock)
    clock.set(datetime(2026, 11, 23, 15, 59, tzinfo=UTC))
    complete_task(db, workspace_id=ws.id, customer_id=cid, task_key=task.key, ref="post-2", clock=clock)
    with pytest.raises(TaskLimitReached) as refused:
        complete_task(db, workspace_id=ws.id, customer_id=cid, task_key=task.key, ref="post-3", clock=clock)
    # then the third is refused, naming the period, and nothing of it was written
    assert refused.value.details == {"task_key": task.key, "period": "2026-11-23", "limit": 2}
    assert (member.points_balance, _completions(db, member.id)) == (40, 2)
    # when it is 00:00 in Shanghai (16:00 UTC, still 23 Nov in UTC)
    clock.set(datetime(2026, 11, 23, 16, 0, tzinfo=UTC))
    fresh = complete_task(db, workspace_id=ws.id, customer_id=cid, task_key=task.key, ref="post-3", clock=clock)
    # then a new period has begun
    assert (fresh.period_key, fresh.slot, member.points_balance) == ("2026-11-24", 1, 60)
    assert [k for _, _, k in _entries(db, member.id)] == [
        f"task:{task.id}:{member.id}:2026-11-23:1",
        f"task:{task.id}:{member.id}:2026-11-23:2",
        f"task:{task.id}:{member.id}:2026-11-24:1",
    ]


def test_weekly_limit_follows_the_brand_iso_week(db: Session, clock: FrozenClock) -> None:
    # given a share task once a week; 29 Nov 2026 is a Sunday
    ws = make_workspace(db, clock=clock)
    task = make_task(db, workspace=ws, clock=clock, kind=TaskKind.SHARE, points=15, limit_period=LimitPeriod.WEEK)
    member = make_member(db, workspace=ws, clock=clock)
    cid = member.customer_id
    # when the member shares on Monday, again on Sunday 23:30 Shanghai, then Monday 00:10 Shanghai
    first = complete_task(db, workspace_id=ws.id, customer_id=cid, task_key=task.key, ref=None, clock=clock)
    clock.set(datetime(2026, 11, 29, 15, 30, tzinfo=UTC))
    with pytest.raises(TaskLimitReached):
        complete_task(db, workspace_id=ws.id, customer_id=cid, task_key=task.key, ref=None, clock=clock)
    clock.set(datetime(2026, 11, 29, 16, 10, tzinfo=UTC))
    next_week = complete_task(db, workspace_id=ws.id, customer_id=cid, task_key=task.key, ref=None, clock=clock)
    # then weeks are ISO weeks of the brand's calendar
    assert (first.period_key, next_week.period_key, member.points_balance) == ("2026-W48", "2026-W49", 30)


def test_lifetime_limit_and_a_repeated_ref_is_a_retry(db: Session, clock: FrozenClock) -> None:
    # given an invite task paying 100 up to 2 times ever
    ws = make_workspace(db, clock=clock)
    task = make_task(
        db,
        workspace=ws,
        clock=clock,
        kind=TaskKind.INVITE,
        points=100,
        limit_period=LimitPeriod.LIFETIME,
        limit_count=2,
    )
    member = make_member(db, workspace=ws, clock=clock)
    cid = member.customer_id
    # when invitee 7 is reported twice, then invitees 8 and 9 a month later
    first = complete_task(db, workspace_id=ws.id, customer_id=cid, task_key=task.key, ref="customer:7", clock=clock)
    again = complete_task(db, workspace_id=ws.id, customer_id=cid, task_key=task.key, ref="customer:7", clock=clock)
    clock.advance(timedelta(days=31))
    second = complete_task(db, workspace_id=ws.id, customer_id=cid, task_key=task.key, ref="customer:8", clock=clock)
    with pytest.raises(TaskLimitReached):
        complete_task(db, workspace_id=ws.id, customer_id=cid, task_key=task.key, ref="customer:9", clock=clock)
    # then the retry returned the first completion and paid once; the cap holds for life
    assert again.id == first.id
    assert (first.period_key, first.slot, second.slot) == ("lifetime", 1, 2)
    assert (member.points_balance, _completions(db, member.id)) == (200, 2)
    assert _entries(db, member.id)[0][1] == "完成任务：晒单"
    reasons = db.scalars(select(PointsEntry.reason).where(PointsEntry.member_id == member.id)).all()
    assert reasons == [PointsReason.REFERRAL, PointsReason.REFERRAL]


def test_profile_task_completes_only_with_the_required_fields(db: Session, clock: FrozenClock) -> None:
    # given a profile task requiring name, birthday and a custom attribute "skin"
    ws = make_workspace(db, clock=clock)
    task = make_task(
        db,
        workspace=ws,
        clock=clock,
        kind=TaskKind.PROFILE,
        points=50,
        limit_period=LimitPeriod.LIFETIME,
        settings={"required_fields": ["name", "birthday", "attributes.skin"]},
    )
    member = make_member(db, workspace=ws, clock=clock, name="王芳")
    cid = member.customer_id
    # when the member claims it with the birthday and skin type missing
    with pytest.raises(TaskRequirementsNotMet) as refused:
        complete_task(db, workspace_id=ws.id, customer_id=cid, task_key=task.key, ref=None, clock=clock)
    # then it is refused naming what is missing, and nothing was paid
    assert refused.value.details == {"field": "profile", "missing": ["birthday", "attributes.skin"]}
    assert (member.points_balance, _completions(db, member.id)) == (0, 0)
    # when the profile is filled in
    customer = db.get(Customer, cid)
    assert customer is not None
    customer.birthday = date(1995, 5, 20)
    customer.attributes = {"skin": "干性"}
    db.flush()
    done = complete_task(db, workspace_id=ws.id, customer_id=cid, task_key=task.key, ref=None, clock=clock)
    # then it completes and pays
    assert (done.slot, member.points_balance) == (1, 50)


def test_inactive_or_unknown_tasks_are_not_found(db: Session, clock: FrozenClock) -> None:
    # given a retired task
    ws = make_workspace(db, clock=clock)
    task = make_task(db, workspace=ws, clock=clock, is_active=False)
    member = make_member(db, workspace=ws, clock=clock)
    # when a member completes it, an unknown one, or checks in without a check-in task
    for key in (task.key, "nope"):
        with pytest.raises(TaskNotFound):
            complete_task(db, workspace_id=ws.id, customer_id=member.customer_id, task_key=key, ref=None, clock=clock)
    with pytest.raises(TaskNotFound):
        check_in(db, workspace_id=ws.id, customer_id=member.customer_id, clock=clock)
    # then nothing was written
    assert _completions(db, member.id) == 0


def test_task_board_shows_each_task_in_its_current_period(db: Session, clock: FrozenClock) -> None:
    # given a check-in (bonus at 3 days), a post task twice a day and a retired task
    ws = make_workspace(db, clock=clock)
    make_task(db, workspace=ws, clock=clock, kind=TaskKind.CHECK_IN, points=5, streak_bonuses={"3": 10, "7": 50})
    post = make_task(db, workspace=ws, clock=clock, points=20, limit_count=2)
    make_task(db, workspace=ws, clock=clock, is_active=False)
    member = make_member(db, workspace=ws, clock=clock)
    cid = member.customer_id
    # when the member checked in yesterday and today and posted once today
    clock.set(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    check_in(db, workspace_id=ws.id, customer_id=cid, clock=clock)
    clock.set(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    check_in(db, workspace_id=ws.id, customer_id=cid, clock=clock)
    complete_task(db, workspace_id=ws.id, customer_id=cid, task_key=post.key, ref=None, clock=clock)
    board = task_board(db, workspace_id=ws.id, customer_id=cid, clock=clock)
    # then the board shows both active tasks with today's progress and the next bonus
    assert [(s.task.key, s.period_key, s.completed, s.limit, s.is_done) for s in board] == [
        ("check_in", "2026-11-23", 1, 1, True),
        (post.key, "2026-11-23", 1, 2, False),
    ]
    assert (board[0].streak, board[0].checked_in_today, board[0].next_bonus) == (2, True, (3, 10))
    # when two days pass without a check-in
    clock.advance(timedelta(days=2))
    later = task_board(db, workspace_id=ws.id, customer_id=cid, clock=clock)
    # then the streak shows as broken and nothing is done in the new periods
    assert (later[0].streak, later[0].checked_in_today, later[0].completed, later[1].completed) == (0, False, 0, 0)


def test_two_members_check_in_on_the_same_day_each_get_their_points(db: Session, clock: FrozenClock) -> None:
    # given a 5-point check-in and two members
    ws = make_workspace(db, clock=clock)
    task = make_task(db, workspace=ws, clock=clock, kind=TaskKind.CHECK_IN, points=5)
    first, second = make_member(db, workspace=ws, clock=clock), make_member(db, workspace=ws, clock=clock)
    # when both check in on 23 Nov
    check_in(db, workspace_id=ws.id, customer_id=first.customer_id, clock=clock)
    check_in(db, workspace_id=ws.id, customer_id=second.customer_id, clock=clock)
    # then each is paid under a key of their own
    assert _entries(db, first.id) == [(5, "每日签到", f"task:{task.id}:{first.id}:2026-11-23:1")]
    assert _entries(db, second.id) == [(5, "每日签到", f"task:{task.id}:{second.id}:2026-11-23:1")]
    assert (first.points_balance, second.points_balance) == (5, 5)
