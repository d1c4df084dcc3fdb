"""RFM: recency, frequency and monetary scores per customer, the R × F grid and named segments.

Over the window (`rfm_window_days` brand-local days up to and including today):
R = days from the brand-local day of the customer's last order to today (0 = bought today),
F = number of orders, M = revenue in fen (total − refunded). Orders count when paid in the window
and not fully refunded; customers merged into another profile are left out (their orders were
moved to the survivor). Customers without an order in the window are counted apart ("no recent
orders") and not scored. Scores: `siyu.analytics.rfm.scoring.quintile_scores`.

Erased customers (`Customer.erased_at` set, a PIPL deletion) keep counting in the aggregates (their
orders are still the brand's revenue, and removing them would shift everyone else's scores), but are
never listed: `RfmResult.listable` drops them from drill-downs and the per-customer export, and they
are neither counted in nor listed as "no recent orders".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from siyu.analytics import scope
from siyu.analytics.periods import Period, brand_today, local_day, workspace_zone
from siyu.analytics.rfm.naming import NamingRule, rules_from_settings
from siyu.analytics.rfm.scoring import quintile_scores
from siyu.analytics.settings import WHOLE_RANGES, current_settings
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.models import Customer, Order

MAX_WINDOW_DAYS = WHOLE_RANGES["rfm_window_days"][1]


@dataclass(frozen=True)
class RfmResult:
    """Per scored customer (arrays aligned by position) plus the unscored count and naming table."""

    as_of: date
    window: Period
    rules: list[NamingRule]
    customer_ids: npt.NDArray[np.int64]
    last_order_day: npt.NDArray[np.int64]
    """Days since 1970-01-01 of the brand-local last order day."""
    recency_days: npt.NDArray[np.int64]
    frequency: npt.NDArray[np.int64]
    monetary_fen: npt.NDArray[np.int64]
    r: npt.NDArray[np.int8]
    f: npt.NDArray[np.int8]
    m: npt.NDArray[np.int8]
    segment: npt.NDArray[np.int16]
    """Index into `rules` (−1 when no rule matches: impossible with a validated table)."""
    erased: npt.NDArray[np.bool_]
    """Scored customers whose personal data was erased: in the aggregates, never listed."""
    no_recent_orders: int
    """Customers in scope (not merged away, not erased) without an order in the window."""

    @property
    def scored(self) -> int:
        return int(self.customer_ids.size)

    @property
    def fm(self) -> npt.NDArray[np.float64]:
        return (self.f.astype(np.float64) + self.m) / 2

    @property
    def revenue_fen(self) -> int:
        return int(self.monetary_fen.sum())

    @property
    def listable(self) -> npt.NDArray[np.bool_]:
        """Scored customers that drill-downs and the per-customer export may list (not erased)."""
        return ~self.erased

    def cell_mask(self, r: int, f: int) -> npt.NDArray[np.bool_]:
        return (self.r == r) & (self.f == f)

    def segment_mask(self, key: str) -> npt.NDArray[np.bool_]:
        index = next((i for i, rule in enumerate(self.rules) if rule.key == key), None)
        if index is None:
            raise InvalidInput(f"unknown RFM segment {key!r}", details={"field": "segment"})
        return self.segment == index


def check_window(window_days: int) -> int:
    if not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise InvalidInput(f"window_days must be between 1 and {MAX_WINDOW_DAYS}", details={"field": "window_days"})
    return window_days


def assign_segments(
    rules: list[NamingRule], r: npt.NDArray[np.int8], fm: npt.NDArray[np.float64]
) -> npt.NDArray[np.int16]:
    """The first matching rule's index per customer (−1 when none matches)."""
    out = np.full(r.size, -1, dtype=np.int16)
    for index, rule in enumerate(rules):
        hit = (out == -1) & (r >= rule.r[0]) & (r <= rule.r[1]) & (fm >= rule.fm[0]) & (fm <= rule.fm[1])
        out[hit] = index
    return out


def compute_rfm(session: Session, *, actor: Actor, clock: Clock, window_days: int | None = None) -> RfmResult:
    """RFM of the actor's workspace as of today (brand time zone); one grouped query over orders."""
    actor.require(Scope.ANALYTICS_READ)
    ws = actor.workspace_id
    settings = current_settings(session, ws, clock)
    days = check_window(window_days if window_days is not None else settings.rfm_window_days)
    today = brand_today(session, ws, clock)
    window = Period(today - timedelta(days=days - 1), today)
    zone = workspace_zone(session, ws)
    lo, hi = window.utc_bounds(zone)
    day = local_day(session, Order.paid_at, zone, clock.now())
    rows = session.execute(
        select(
            Order.customer_id,
            func.max(day),
            func.count(),
            func.sum(scope.NET_FEN),
            func.max(case((Customer.erased_at.is_not(None), 1), else_=0)),
        )
        .join(Customer, Customer.id == Order.customer_id)
        .where(*scope.counted_orders(ws, pool_only=False), Order.paid_at >= lo, Order.paid_at < hi)
        .group_by(Order.customer_id)
        .order_by(Order.customer_id)
    ).all()
    in_scope = session.scalar(
        select(func.count()).select_from(Customer).where(*scope.live_customer(ws), Customer.erased_at.is_(None))
    )
    n = len(rows)
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=n)
    last = np.array([row[1] for row in rows], dtype="datetime64[D]").astype(np.int64) if n else np.zeros(0, np.int64)
    frequency = np.fromiter((row[2] for row in rows), dtype=np.int64, count=n)
    monetary = np.fromiter((int(row[3] or 0) for row in rows), dtype=np.int64, count=n)
    erased = np.fromiter((bool(row[4]) for row in rows), dtype=np.bool_, count=n)
    recency = np.datetime64(today, "D").astype(np.int64) - last
    r = quintile_scores(recency, inverse=True)
    f = quintile_scores(frequency)
    m = quintile_scores(monetary)
    rules = rules_from_settings(settings.rfm_segments)
    segment = assign_segments(rules, r, (f.astype(np.float64) + m) / 2)
    return RfmResult(
        as_of=today,
        window=window,
        rules=rules,
        customer_ids=ids,
        last_order_day=last,
        recency_days=recency,
        frequency=frequency,
        monetary_fen=monetary,
        r=r,
        f=f,
        m=m,
        segment=segment,
        erased=erased,
        no_recent_orders=int(in_scope or 0) - int(n - erased.sum()),
    )


def unscored_ids(session: Session, *, actor: Actor, result: RfmResult) -> list[int]:
    """Customers in scope with no order in the window (the "no recent orders" group), erased ones left out."""
    scored = set(result.customer_ids.tolist())
    everyone = session.scalars(
        select(Customer.id).where(*scope.live_customer(actor.workspace_id), Customer.erased_at.is_(None))
    )
    return [cid for cid in everyone if cid not in scored]


def summary(result: RfmResult) -> dict[str, Any]:
    """Headline figures for the page and the API."""
    return {
        "as_of": result.as_of.isoformat(),
        "window_from": result.window.start.isoformat(),
        "window_to": result.window.end.isoformat(),
        "window_days": result.window.days,
        "scored_customers": result.scored,
        "no_recent_orders": result.no_recent_orders,
        "revenue_fen": result.revenue_fen,
    }
