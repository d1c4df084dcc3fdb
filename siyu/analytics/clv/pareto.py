"""The Pareto table: how much of the revenue the top 1/5/10/20 % of customers bring.

Revenue per customer = Σ (total − refunded) of their orders paid in the window (fully refunded
orders left out), customers not merged away. Buyers are ranked by revenue (ties by id); the top
p % of n buyers is the first ⌈n × p / 100⌉ of them. The pool share does the same over every
customer in scope, buyers or not (⌈pool × p / 100⌉ customers, the best first).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from siyu.analytics.clv.schemas import ParetoResult, ParetoRow
from siyu.analytics.periods import Period, brand_today, workspace_zone
from siyu.analytics.settings import current_settings
from siyu.analytics.tables import ratio
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.models import Customer, Order, OrderStatus

TOP_PERCENTS = (1, 5, 10, 20)
MAX_WINDOW_DAYS = 3650


def top_count(n: int, pct: int) -> int:
    """How many of `n` customers make the top `pct` %: ⌈n × pct / 100⌉ (0 when n is 0)."""
    return math.ceil(n * pct / 100) if n else 0


def merged_ids(workspace_id: int) -> Select[Any]:
    """Customers merged into another (their orders moved to the survivor): a small, hashed list.

    Orders are filtered with `NOT IN` this list rather than joined to `customers`, so the database
    never needs a join plan over two big tables (PostgreSQL may pick a nested loop on fresh tables)."""
    return select(Customer.id).where(Customer.workspace_id == workspace_id, Customer.merged_into_id.is_not(None))


def revenue_by_customer(session: Session, *, workspace_id: int, start_utc: object, end_utc: object) -> list[int]:
    """Revenue (fen) of every customer with revenue > 0 in `[start_utc, end_utc)`, highest first."""
    revenue = func.sum(Order.total_fen - Order.refunded_fen)
    rows = session.execute(
        select(Order.customer_id, revenue)
        .where(
            Order.workspace_id == workspace_id,
            Order.customer_id.not_in(merged_ids(workspace_id)),
            Order.status != OrderStatus.REFUNDED,
            Order.paid_at.is_not(None),
            Order.paid_at >= start_utc,
            Order.paid_at < end_utc,
        )
        .group_by(Order.customer_id)
    ).all()
    values = sorted(((int(r[1] or 0), int(r[0])) for r in rows), key=lambda v: (-v[0], v[1]))
    return [v for v, _ in values if v > 0]


def pareto_table(session: Session, *, actor: Actor, clock: Clock, window_days: int | None = None) -> ParetoResult:
    """The Pareto table over the last `window_days` brand-local days up to today (default: the RFM
    window of the analytics settings)."""
    actor.require(Scope.ANALYTICS_READ)
    if window_days is None:
        window_days = current_settings(session, actor.workspace_id, clock).rfm_window_days
    if not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise InvalidInput(f"window_days must be 1 to {MAX_WINDOW_DAYS}", details={"field": "window_days"})
    today = brand_today(session, actor.workspace_id, clock)
    period = Period(today - timedelta(days=window_days - 1), today)
    start_utc, end_utc = period.utc_bounds(workspace_zone(session, actor.workspace_id))
    values = revenue_by_customer(session, workspace_id=actor.workspace_id, start_utc=start_utc, end_utc=end_utc)
    pool = int(
        session.scalar(
            select(func.count())
            .select_from(Customer)
            .where(Customer.workspace_id == actor.workspace_id, Customer.merged_into_id.is_(None))
        )
        or 0
    )
    total = sum(values)
    rows = []
    for pct in TOP_PERCENTS:
        k = top_count(len(values), pct)
        pool_k = top_count(pool, pct)
        top = sum(values[:k])
        rows.append(
            ParetoRow(
                top_pct=pct,
                customers=k,
                revenue_fen=top,
                share=ratio(top, total),
                pool_customers=pool_k,
                pool_share=ratio(sum(values[:pool_k]), total),
            )
        )
    k20 = top_count(len(values), 20)
    rest = values[k20:]
    multiple = None
    if k20 and rest and sum(rest) > 0:
        multiple = (sum(values[:k20]) / k20) / (sum(rest) / len(rest))
    return ParetoResult(
        start=period.start,
        end=period.end,
        window_days=window_days,
        pool=pool,
        buyers=len(values),
        revenue_fen=total,
        rows=rows,
        top20_multiple=multiple,
    )
