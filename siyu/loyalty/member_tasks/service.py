"""What members do with tasks: check in daily (streaks and their bonuses), complete tasks, see the board.

Caps are the unique `(task, member, period_key, slot)` key of `task_completions`: a completion
tries the free slots 1..limit_count of the brand-local period and lets the key refuse, never
counting first. Points are earned through the ledger in the same transaction (key
`task:{task_id}:{period}:{slot}`, the streak bonus `task:{task_id}:{period}:streak:{n}`), under the
member's row lock, inside a savepoint: a refused completion leaves nothing behind.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.customers.service.timeline import system_event
from siyu.kit.clock import Clock
from siyu.kit.errors import DomainError
from siyu.loyalty.errors import AlreadyCheckedIn, MemberNotFound, TaskLimitReached, TaskNotFound, TaskRequirementsNotMet
from siyu.loyalty.member_tasks.definitions import CHECK_IN_KEY, DEFAULT_PROFILE_FIELDS
from siyu.loyalty.member_tasks.periods import local_day, period_key
from siyu.loyalty.members import ensure_member, get_member
from siyu.loyalty.points.ledger import earn
from siyu.loyalty.program import brand_zone
from siyu.models import Customer, LoyaltyTask, Member, PointsReason, TaskCompletion, TaskKind

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckInResult:
    """One day's check-in: the streak it reached, the points and any streak bonus it paid."""

    completion: TaskCompletion
    day: date
    """The brand-local day checked in."""
    streak: int
    points: int
    bonus: int
    balance: int
    """The member's points balance afterwards."""


@dataclass(frozen=True)
class TaskStatus:
    """A task as one member sees it in the current period."""

    task: LoyaltyTask
    period_key: str
    completed: int
    """Completions in this period (for `lifetime`: ever)."""
    limit: int
    is_done: bool
    """No completion left to earn points in this period."""
    streak: int = 0
    """Check-in: the streak still alive today (checked in today or yesterday), else 0."""
    checked_in_today: bool = False
    next_bonus: tuple[int, int] | None = None
    """Check-in: (streak length, bonus points) of the next bonus the streak can reach."""


def _active_task(session: Session, workspace_id: int, key: str) -> LoyaltyTask:
    task = session.scalar(select(LoyaltyTask).where(LoyaltyTask.workspace_id == workspace_id, LoyaltyTask.key == key))
    if task is None or not task.is_active:
        raise TaskNotFound(f"task {key!r} not found or not active", details={"task_key": key})
    return task


def _insert_completion(
    session: Session,
    *,
    task: LoyaltyTask,
    member: Member,
    period: str,
    ref: str | None,
    streak: int | None,
    now: datetime,
) -> TaskCompletion | None:
    """Take the first free slot of the period; None when every slot is taken. The slots already
    used are read only to skip them: the unique key is what refuses a taken one."""
    used = set(
        session.scalars(
            select(TaskCompletion.slot).where(
                TaskCompletion.task_id == task.id,
                TaskCompletion.member_id == member.id,
                TaskCompletion.period_key == period,
            )
        )
    )
    for slot in range(1, task.limit_count + 1):
        if slot in used:
            continue
        completion = TaskCompletion(
            workspace_id=member.workspace_id,
            task_id=task.id,
            member_id=member.id,
            period_key=period,
            slot=slot,
            streak=streak,
            ref=ref,
            completed_at=now,
        )
        try:
            with session.begin_nested():
                session.add(completion)
                session.flush()
        except IntegrityError:
            continue
        return completion
    return None


def _timeline(session: Session, member: Member, completion: TaskCompletion, task: LoyaltyTask, clock: Clock) -> None:
    customer = session.get(Customer, member.customer_id)
    if customer is None:
        return
    kind = "loyalty.check_in" if task.kind == TaskKind.CHECK_IN else "loyalty.task_completed"
    properties: dict[str, Any] = {"task": task.key, "period": completion.period_key}
    if completion.streak is not None:
        properties["streak"] = completion.streak
    system_event(
        session, customer, kind, f"loyalty:task_completion:{completion.id}", completion.completed_at, clock, properties
    )


def check_in(session: Session, *, workspace_id: int, customer_id: int, clock: Clock) -> CheckInResult:
    """Today's check-in (签到) in the brand's calendar: the streak grows when the member checked in
    yesterday and restarts at 1 after a missed day; a bonus of `streak_bonuses[str(streak)]` is paid
    on reaching that length. A second check-in the same day is `AlreadyCheckedIn`."""
    task = _active_task(session, workspace_id, CHECK_IN_KEY)
    with session.begin_nested():
        member = ensure_member(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock)
        now = clock.now()
        today = local_day(now, brand_zone(session, workspace_id))
        if member.last_checkin_on is not None and member.last_checkin_on >= today:
            raise AlreadyCheckedIn(f"already checked in on {today.isoformat()}", details={"day": today.isoformat()})
        alive = member.last_checkin_on == today - timedelta(days=1)
        streak = member.checkin_streak + 1 if alive else 1
        period = period_key(task.limit_period, today)
        completion = _insert_completion(
            session, task=task, member=member, period=period, ref=None, streak=streak, now=now
        )
        if completion is None:
            raise AlreadyCheckedIn(f"already checked in on {today.isoformat()}", details={"day": today.isoformat()})
        if task.points > 0:
            posting = earn(
                session,
                member=member,
                points=task.points,
                reason=PointsReason.CHECK_IN,
                description=task.name,
                idempotency_key=f"task:{task.id}:{member.id}:{period}:{completion.slot}",
                clock=clock,
                source_ref=f"task:{task.key}:{period}",
            )
            completion.points_entry_id = posting.entry.id
        bonus = int((task.streak_bonuses or {}).get(str(streak), 0))
        if bonus > 0:
            earn(
                session,
                member=member,
                points=bonus,
                reason=PointsReason.CHECK_IN,
                description=f"连续签到 {streak} 天奖励",
                idempotency_key=f"task:{task.id}:{member.id}:{period}:streak:{streak}",
                clock=clock,
                source_ref=f"task:{task.key}:{period}",
            )
        member.checkin_streak = streak
        member.last_checkin_on = today
        session.flush()
        _timeline(session, member, completion, task, clock)
    return CheckInResult(
        completion=completion, day=today, streak=streak, points=task.points, bonus=bonus, balance=member.points_balance
    )


def profile_gaps(customer: Customer, required: Sequence[str]) -> list[str]:
    """The required profile fields the customer has not filled (`attributes.<key>` for custom ones)."""
    missing = []
    for name in required:
        if name.startswith("attributes."):
            value = (customer.attributes or {}).get(name.removeprefix("attributes."))
        else:
            value = getattr(customer, name, None)
        if value is None or (isinstance(value, str) and not value.strip()):
            missing.append(name)
    return missing


def complete_task(
    session: Session, *, workspace_id: int, customer_id: int, task_key: str, ref: str | None, clock: Clock
) -> TaskCompletion:
    """Record that the member did a task and pay its points, within the task's limit per period.

    Generic on purpose: other areas (groups, referrals) call it when a member joins a group or an
    invitee arrives, with `ref` naming what was done; the same `ref` in the same period returns the
    first completion (a retry). A `profile` task completes only when the customer's profile really
    has its required fields (`TaskRequirementsNotMet` lists the missing ones). A check-in task
    checks in. Over the limit: `TaskLimitReached`."""
    task = _active_task(session, workspace_id, task_key)
    if task.kind == TaskKind.CHECK_IN:
        return check_in(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock).completion
    ref = (ref.strip() or None) if ref is not None else None
    with session.begin_nested():
        member = ensure_member(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock)
        now = clock.now()
        period = period_key(task.limit_period, local_day(now, brand_zone(session, workspace_id)))
        if ref is not None and (done := _by_ref(session, task, member, period, ref)) is not None:
            return done
        if task.kind == TaskKind.PROFILE:
            customer = session.get(Customer, customer_id)
            assert customer is not None  # ensure_member checked it exists
            required = (task.settings or {}).get("required_fields") or DEFAULT_PROFILE_FIELDS
            if missing := profile_gaps(customer, required):
                raise TaskRequirementsNotMet(
                    f"the profile still misses {', '.join(missing)}", details={"field": "profile", "missing": missing}
                )
        completion = _insert_completion(session, task=task, member=member, period=period, ref=ref, streak=None, now=now)
        if completion is None:
            raise TaskLimitReached(
                f"task {task.key!r} already done {task.limit_count} time(s) this {task.limit_period}",
                details={"task_key": task.key, "period": period, "limit": task.limit_count},
            )
        if task.points > 0:
            posting = earn(
                session,
                member=member,
                points=task.points,
                reason=PointsReason.REFERRAL if task.kind == TaskKind.INVITE else PointsReason.TASK,
                description=f"完成任务：{task.name}",
                idempotency_key=f"task:{task.id}:{member.id}:{period}:{completion.slot}",
                clock=clock,
                source_ref=f"task:{task.key}:{period}",
            )
            completion.points_entry_id = posting.entry.id
        session.flush()
        _timeline(session, member, completion, task, clock)
    return completion


def complete_task_of_kind(
    session: Session, *, workspace_id: int, customer_id: int, kind: TaskKind, ref: str, clock: Clock
) -> TaskCompletion | None:
    """Complete the workspace's active task of `kind` for the member, if it has one — what other areas
    call when a member posts, joins a group or brings an invitee; it never fails the caller.

    With several active tasks of the kind, the first in the task board's order (`sort_order`, then
    `id`) is the one. The completion runs in a savepoint: over the task's limit this period
    (`TaskLimitReached`) or no such task any more (`TaskNotFound`) is ignored; any other refusal
    (member erased…) is logged and ignored. None when nothing was completed."""
    key = session.scalar(
        select(LoyaltyTask.key)
        .where(LoyaltyTask.workspace_id == workspace_id, LoyaltyTask.kind == kind, LoyaltyTask.is_active.is_(True))
        .order_by(LoyaltyTask.sort_order, LoyaltyTask.id)
        .limit(1)
    )
    if key is None:
        return None
    try:
        with session.begin_nested():
            return complete_task(
                session, workspace_id=workspace_id, customer_id=customer_id, task_key=key, ref=ref, clock=clock
            )
    except (TaskLimitReached, TaskNotFound):
        return None
    except DomainError as exc:
        logger.info("%s task not completed", kind, extra={"customer_id": customer_id, "reason": exc.message})
        return None


def _by_ref(session: Session, task: LoyaltyTask, member: Member, period: str, ref: str) -> TaskCompletion | None:
    return session.scalar(
        select(TaskCompletion).where(
            TaskCompletion.task_id == task.id,
            TaskCompletion.member_id == member.id,
            TaskCompletion.period_key == period,
            TaskCompletion.ref == ref,
        )
    )


def task_board(session: Session, *, workspace_id: int, customer_id: int, clock: Clock) -> list[TaskStatus]:
    """The active tasks in display order, each with what the member has done in its current period.
    Reads only: a customer without a member row sees every task undone."""
    if (
        session.scalar(select(Customer.id).where(Customer.workspace_id == workspace_id, Customer.id == customer_id))
        is None
    ):
        raise MemberNotFound(f"customer {customer_id} not found", details={"customer_id": customer_id})
    tasks = session.scalars(
        select(LoyaltyTask)
        .where(LoyaltyTask.workspace_id == workspace_id, LoyaltyTask.is_active.is_(True))
        .order_by(LoyaltyTask.sort_order, LoyaltyTask.id)
    ).all()
    member = get_member(session, workspace_id, customer_id)
    today = local_day(clock.now(), brand_zone(session, workspace_id))
    periods = {task.id: period_key(task.limit_period, today) for task in tasks}
    done: dict[tuple[int, str], int] = {}
    if member is not None and tasks:
        rows = session.execute(
            select(TaskCompletion.task_id, TaskCompletion.period_key, func.count())
            .where(
                TaskCompletion.member_id == member.id,
                TaskCompletion.task_id.in_([t.id for t in tasks]),
                TaskCompletion.period_key.in_(set(periods.values())),
            )
            .group_by(TaskCompletion.task_id, TaskCompletion.period_key)
        ).all()
        done = {(task_id, period): int(count) for task_id, period, count in rows}
    board = []
    for task in tasks:
        completed = done.get((task.id, periods[task.id]), 0)
        status = TaskStatus(
            task=task,
            period_key=periods[task.id],
            completed=completed,
            limit=task.limit_count,
            is_done=completed >= task.limit_count,
        )
        if task.kind == TaskKind.CHECK_IN:
            status = _with_streak(status, member, today)
        board.append(status)
    return board


def _with_streak(status: TaskStatus, member: Member | None, today: date) -> TaskStatus:
    last = member.last_checkin_on if member else None
    checked_today = last == today
    alive = checked_today or last == today - timedelta(days=1)
    streak = member.checkin_streak if member and alive else 0
    upcoming = sorted(
        (int(length), int(points))
        for length, points in (status.task.streak_bonuses or {}).items()
        if int(length) > streak
    )
    return TaskStatus(
        task=status.task,
        period_key=status.period_key,
        completed=status.completed,
        limit=status.limit,
        is_done=status.is_done,
        streak=streak,
        checked_in_today=checked_today,
        next_bonus=upcoming[0] if upcoming else None,
    )
