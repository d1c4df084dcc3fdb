"""Points history, the daily check-in and the task board."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import Response

from siyu.kit.errors import DomainError
from siyu.loyalty.errors import AlreadyCheckedIn, TaskLimitReached, TaskNotFound, TaskRequirementsNotMet
from siyu.loyalty.h5 import reading
from siyu.loyalty.h5.views.common import (
    FormDep,
    MemberDep,
    MemberRoute,
    clock_of,
    member_transaction,
    render_member,
    see_other,
    translator,
)
from siyu.loyalty.member_tasks.service import check_in, complete_task, task_board
from siyu.loyalty.program import local_midnight
from siyu.models import LoyaltyTask, TaskKind

router = APIRouter(route_class=MemberRoute)


def reason_labels(_: Callable[[str], str]) -> dict[str, str]:
    """How each points reason reads to the member (the entry's own description says the detail)."""
    return {
        "purchase": _("消费"),
        "check_in": _("签到"),
        "task": _("任务奖励"),
        "referral": _("邀请"),
        "manual": _("赠送"),
        "redeem": _("兑换"),
        "expire": _("过期"),
        "refund": _("退款"),
        "cancel": _("取消兑换"),
        "adjust": _("调整"),
    }


def weekday_labels(_: Callable[[str], str]) -> list[str]:
    return [_("周一"), _("周二"), _("周三"), _("周四"), _("周五"), _("周六"), _("周日")]


@router.get("/points")
def history(request: Request, member: MemberDep, cursor: str | None = None) -> Response:
    """The member's points entries with the reason each was written for, newest first."""
    clock = clock_of(request)
    with member_transaction(request, member, read_only=True) as session:
        row = reading.member_of(session, workspace_id=member.workspace_id, customer_id=member.customer_id)
        page = reading.points_history(session, member=row, cursor=cursor)
        return render_member(
            request,
            session,
            member,
            "member/points.html",
            {
                "page": page,
                "labels": reason_labels(translator(request)),
                "balance": reading.available_points(session, row, clock=clock),
                "first_page": cursor is None,
            },
            tab="home",
        )


def _check_in_page(request: Request, member: MemberDep, *, error: str | None, status_code: int) -> Response:
    clock = clock_of(request)
    with member_transaction(request, member, read_only=True) as session:
        row = reading.member_of(session, workspace_id=member.workspace_id, customer_id=member.customer_id)
        today = reading.local_day(session, member.workspace_id, clock)
        week = reading.week_days(today)
        done = reading.checked_in_days(session, member=row, days=week)
        zone = reading.zone_of(session, member.workspace_id)
        earned_today = reading.check_in_points_since(session, member=row, since=local_midnight(today, zone))
        task = reading.check_in_task(session, member.workspace_id)
        bonuses = sorted(
            (int(days), int(points))
            for days, points in dict(task.streak_bonuses if task is not None else {}).items()
            if str(days).isdigit() and isinstance(points, int)
        )
        # The streak still counts if the last check-in was today or yesterday; older, it is broken.
        alive = row is not None and row.last_checkin_on in (today, today - timedelta(days=1))
        streak = row.checkin_streak if row is not None and alive else 0
        labels = weekday_labels(translator(request))
        return render_member(
            request,
            session,
            member,
            "member/check_in.html",
            {
                "task": task,
                "bonuses": bonuses,
                "week": [(day, labels[day.weekday()], day in done, day == today) for day in week],
                "checked_in_today": today in done or (row is not None and row.last_checkin_on == today),
                "streak": streak,
                "earned_today": earned_today,
                "balance": reading.available_points(session, row, clock=clock),
                "just_done": request.query_params.get("done") == "1",
                "error": error,
            },
            tab="check_in",
            status_code=status_code,
        )


@router.get("/check-in")
def check_in_page(request: Request, member: MemberDep) -> Response:
    """This week's check-ins, the streak, and the button."""
    return _check_in_page(request, member, error=None, status_code=200)


@router.post("/check-in")
def do_check_in(request: Request, member: MemberDep, _form: FormDep) -> Response:
    """Check in for today (brand time); a second check-in today changes nothing."""
    _ = translator(request)
    try:
        with member_transaction(request, member) as session:
            check_in(session, workspace_id=member.workspace_id, customer_id=member.customer_id, clock=clock_of(request))
    except AlreadyCheckedIn:
        return see_other("/m/check-in")
    except DomainError as exc:
        message = _("签到暂未开放") if exc.status_code == 404 else _("签到未成功，请稍后再试")
        return _check_in_page(request, member, error=message, status_code=exc.status_code)
    return see_other("/m/check-in?done=1")


def _tasks_page(
    request: Request, member: MemberDep, *, message: str | None, error: str | None, status_code: int
) -> Response:
    _ = translator(request)
    periods = {"day": _("今日"), "week": _("本周"), "month": _("本月"), "lifetime": _("累计")}
    with member_transaction(request, member, read_only=True) as session:
        board = task_board(
            session, workspace_id=member.workspace_id, customer_id=member.customer_id, clock=clock_of(request)
        )
        return render_member(
            request,
            session,
            member,
            "member/tasks.html",
            {"board": board, "periods": periods, "message": message, "error": error},
            tab="home",
            status_code=status_code,
        )


@router.get("/tasks")
def tasks(request: Request, member: MemberDep) -> Response:
    """Each task: points, how often it pays, and whether it is done for this period."""
    _ = translator(request)
    done = request.query_params.get("done") == "1"
    return _tasks_page(
        request, member, message=_("任务完成，积分已到账") if done else None, error=None, status_code=200
    )


@router.post("/tasks/{key}/complete")
def complete_profile_task(request: Request, key: str, member: MemberDep, _form: FormDep) -> Response:
    """Claim a task the member can prove here (completing the profile); other tasks (posts, shares,
    groups, invites) are completed by the areas that see them happen."""
    _ = translator(request)
    try:
        with member_transaction(request, member) as session:
            task = session.scalar(
                select(LoyaltyTask).where(LoyaltyTask.workspace_id == member.workspace_id, LoyaltyTask.key == key)
            )
            if task is None or task.kind != TaskKind.PROFILE:
                raise TaskNotFound(f"task {key!r} cannot be claimed here", details={"task_key": key})
            complete_task(
                session,
                workspace_id=member.workspace_id,
                customer_id=member.customer_id,
                task_key=key,
                ref=None,
                clock=clock_of(request),
            )
    except TaskRequirementsNotMet:
        return _tasks_page(request, member, message=None, error=_("请先完善个人资料，再来领取"), status_code=409)
    except TaskLimitReached:
        return _tasks_page(request, member, message=None, error=_("这个任务已经完成过了"), status_code=409)
    return see_other("/m/tasks?done=1")
