"""The three rates (三率) of the overview, where the data reports them.

- 公众号打开率 / 点击率: official-account deliveries sent in the period with `read_at` / `clicked_at`
  set, ÷ deliveries sent; "未上报" (not reported) when no delivery in the period has one.
- 员工登录率: staff with a console user who logged in during the period ÷ staff with a console user.
  Based on `User.last_login_at`, the latest login only: a past period shows who has not logged in
  since, so it has no previous-period comparison.
- 回复率: staff tasks due in the period and before now (not cancelled; a task due later today is not
  yet counted) done by their due time ÷ tasks due.
- 转化率: customers held by staff at the period's end (an open friend edge) whose first private-domain
  order was paid in the period ÷ customers held.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, distinct, func, literal_column, select
from sqlalchemy.orm import Session

from siyu.analytics.overview import sql
from siyu.analytics.overview.schemas import Rate
from siyu.analytics.overview.scope import Scope
from siyu.analytics.periods import Period
from siyu.analytics.tables import change, ratio
from siyu.models import Delivery, Membership, Staff, StaffTask, StaffTaskStatus, User

OFFICIAL_ACCOUNT = "official_account"


def _rate(key: str, num: int, den: int, prev: float | None, *, reported: bool = True, compare: bool = True) -> Rate:
    value = ratio(num, den) if reported else None
    return Rate(
        key=key,
        numerator=num,
        denominator=den,
        value=value,
        previous=prev if compare else None,
        change=change(value, prev) if compare else None,
        reported=reported,
    )


def _flag(column: Any, cur_lo: datetime) -> ColumnElement[Any]:
    """0 for rows in the previous period, 1 for the current one."""
    return case((column < sql.at(cur_lo), literal_column("0")), else_=literal_column("1"))


def three_rates(session: Session, scope: Scope, *, period: Period, zone: ZoneInfo, now: datetime) -> list[Rate]:
    """The rates for `period` with the previous period's values (four queries)."""
    ws = scope.workspace_id
    prev_lo, _ = period.previous().utc_bounds(zone)
    cur_lo, cur_hi = period.utc_bounds(zone)

    flag = _flag(Delivery.sent_at, cur_lo)
    sends = {
        int(f): (int(n), int(r), int(c))
        for f, n, r, c in session.execute(
            select(flag, func.count(), func.count(Delivery.read_at), func.count(Delivery.clicked_at))
            .where(
                Delivery.workspace_id == ws,
                Delivery.channel == OFFICIAL_ACCOUNT,
                sql.in_range(Delivery.sent_at, prev_lo, cur_hi),
                Delivery.customer_id.in_(scope.customers),
            )
            .group_by(flag)
        )
    }
    sent, read, clicked = sends.get(1, (0, 0, 0))
    p_sent, p_read, p_clicked = sends.get(0, (0, 0, 0))

    logins = session.execute(
        select(
            func.count(distinct(Staff.id)),
            func.count(distinct(case((sql.in_range(User.last_login_at, cur_lo, cur_hi), Staff.id)))),
        )
        .select_from(Membership)
        .join(User, User.id == Membership.user_id)
        .join(Staff, Staff.id == Membership.staff_id)
        .where(
            Membership.workspace_id == ws,
            Staff.is_active.is_(True),
            User.is_active.is_(True),
            scope.staff_condition(Staff.id),
        )
    ).one()

    task_flag = _flag(StaffTask.due_at, cur_lo)
    on_time = and_(StaffTask.done_at.is_not(None), StaffTask.done_at <= StaffTask.due_at)
    tasks = {
        int(f): (int(n), int(done or 0))
        for f, n, done in session.execute(
            select(task_flag, func.count(), func.sum(case((on_time, 1), else_=0)))
            .where(
                StaffTask.workspace_id == ws,
                StaffTask.status != StaffTaskStatus.CANCELLED,
                # due and already past due: a task due later today is not yet late (as in staff performance)
                sql.in_range(StaffTask.due_at, prev_lo, min(cur_hi, now)),
                scope.staff_condition(StaffTask.staff_id),
            )
            .group_by(task_flag)
        )
    }
    due, done = tasks.get(1, (0, 0))
    p_due, p_done = tasks.get(0, (0, 0))

    held = sql.held_by_staff(scope, earlier=cur_lo, later=cur_hi)
    firsts = sql.first_orders(scope, prev_lo, cur_lo, cur_hi)
    converted_now = and_(held.c.cur == 1, firsts.c.cur == 1)
    converted_before = and_(held.c.prev == 1, firsts.c.prev == 1)
    conv = session.execute(
        select(
            func.sum(held.c.cur),
            func.sum(case((converted_now, 1), else_=0)),
            func.sum(held.c.prev),
            func.sum(case((converted_before, 1), else_=0)),
        )
        .select_from(held)
        .outerjoin(firsts, firsts.c.cid == held.c.cid)
        .where(held.c.cid.in_(scope.customers))
    ).one()
    held_n, converted, p_held_n, p_converted = (int(x or 0) for x in conv)

    return [
        _rate("oa_open_rate", read, sent, ratio(p_read, p_sent) if p_read else None, reported=read > 0),
        _rate("oa_click_rate", clicked, sent, ratio(p_clicked, p_sent) if p_clicked else None, reported=clicked > 0),
        _rate("login_rate", int(logins[1]), int(logins[0]), None, compare=False),
        _rate("reply_rate", done, due, ratio(p_done, p_due)),
        _rate("conversion_rate", converted, held_n, ratio(p_converted, p_held_n)),
    ]
