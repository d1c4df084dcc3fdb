"""The Pareto table: how much of the revenue the top 1/5/10/20 % of customers bring.

Revenue per customer = Σ (total − refunded) of their orders paid in the window (fully refunded
orders left out), customers not merged away (`scope.counted_orders`, every order, not only the
private-domain ones). Buyers are ranked by revenue (ties by id); the top p % of n buyers is the
first ⌈n × p / 100⌉ of them. The "全部客户" columns do the same over every customer not merged
away, buyers or not (⌈all × p / 100⌉ customers, the best first).
"""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.analytics import scope
from siyu.analytics.clv.schemas import ParetoResult, ParetoRow
from siyu.analytics.periods import Period, brand_today, workspace_zone
from siyu.analytics.settings import current_settings
from siyu.analytics.tables import ratio
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.models import Customer, Order

TOP_PERCENTS = (1, 5, 10, 20)
MAX_WINDOW_DAYS = 3650


def top_count(n: int, pct: int) -> int:
    """How many of `n` customers make the top `pct` %: ⌈n × pct / 100⌉ (0 when n is 0)."""
    return math.ceil(n * pct / 100) if n else 0


def ranked_buyers(session: Session, *, workspace_id: int, start_utc: object, end_utc: object) -> list[tuple[int, int]]:
    """(customer id, revenue in fen) of every customer with revenue > 0 in `[start_utc, end_utc)`,
    highest revenue first (ties by id)."""
    rows = session.execute(
        select(Order.customer_id, func.sum(scope.NET_FEN))
        .where(
            *scope.counted_orders(workspace_id, pool_only=False),
            Order.paid_at.is_not(None),
            Order.paid_at >= start_utc,
            Order.paid_at < end_utc,
        )
        .group_by(Order.customer_id)
    ).all()
    values = sorted(((int(r[0]), int(r[1] or 0)) for r in rows), key=lambda v: (-v[1], v[0]))
    return [v for v in values if v[1] > 0]


def revenue_by_customer(session: Session, *, workspace_id: int, start_utc: object, end_utc: object) -> list[int]:
    """Revenue (fen) of every customer with revenue > 0 in `[start_utc, end_utc)`, highest first."""
    return [v for _, v in ranked_buyers(session, workspace_id=workspace_id, start_utc=start_utc, end_utc=end_utc)]


def pareto_window(session: Session, *, actor: Actor, clock: Clock, window_days: int | None) -> tuple[int, Period]:
    """The window's length and its brand-local days (the last `window_days` up to today; default:
    the RFM window of the analytics settings)."""
    actor.require(Scope.ANALYTICS_READ)
    if window_days is None:
        window_days = current_settings(session, actor.workspace_id, clock).rfm_window_days
    if not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise InvalidInput(f"window_days must be 1 to {MAX_WINDOW_DAYS}", details={"field": "window_days"})
    today = brand_today(session, actor.workspace_id, clock)
    return window_days, Period(today - timedelta(days=window_days - 1), today)


def _buyers(session: Session, actor: Actor, period: Period) -> list[tuple[int, int]]:
    start_utc, end_utc = period.utc_bounds(workspace_zone(session, actor.workspace_id))
    return ranked_buyers(session, workspace_id=actor.workspace_id, start_utc=start_utc, end_utc=end_utc)


def _multiple(values: list[int], k: int) -> float | None:
    """Mean revenue of the first `k` buyers ÷ mean revenue of the others (None if there are none)."""
    rest = values[k:]
    if not k or not rest or sum(rest) <= 0:
        return None
    return (sum(values[:k]) / k) / (sum(rest) / len(rest))


def pareto_table(session: Session, *, actor: Actor, clock: Clock, window_days: int | None = None) -> ParetoResult:
    """The Pareto table over the last `window_days` brand-local days up to today (default: the RFM
    window of the analytics settings)."""
    window_days, period = pareto_window(session, actor=actor, clock=clock, window_days=window_days)
    values = [v for _, v in _buyers(session, actor, period)]
    everyone = int(
        session.scalar(select(func.count()).select_from(Customer).where(*scope.live_customer(actor.workspace_id))) or 0
    )
    total = sum(values)
    rows = []
    for pct in TOP_PERCENTS:
        k = top_count(len(values), pct)
        pool_k = top_count(everyone, pct)
        top = sum(values[:k])
        rows.append(
            ParetoRow(
                top_pct=pct,
                customers=k,
                revenue_fen=top,
                share=ratio(top, total),
                pool_customers=pool_k,
                pool_share=ratio(sum(values[:pool_k]), total),
                multiple=_multiple(values, k),
            )
        )
    return ParetoResult(
        start=period.start,
        end=period.end,
        window_days=window_days,
        pool=everyone,
        buyers=len(values),
        revenue_fen=total,
        rows=rows,
        top20_multiple=_multiple(values, top_count(len(values), 20)),
    )


def top_buyers(
    session: Session, *, actor: Actor, clock: Clock, top_pct: int, window_days: int | None = None
) -> tuple[Period, list[int]]:
    """The window and the ids of its top `top_pct` % of buyers (recomputed, for a drill-down)."""
    if not 1 <= top_pct <= 100:
        raise InvalidInput("top_pct must be a whole number from 1 to 100", details={"field": "top_pct"})
    _, period = pareto_window(session, actor=actor, clock=clock, window_days=window_days)
    buyers = _buyers(session, actor, period)
    return period, [cid for cid, _ in buyers[: top_count(len(buyers), top_pct)]]


def drill_name(period: Period, top_pct: int) -> str:
    """The name of a Pareto drill-down segment (made unique by `segment_from_ids`)."""
    return f"帕累托 Top {top_pct}% 购买客户 {period.start.isoformat()}~{period.end.isoformat()}"
