"""CLV in the product: fit BG/NBD + Gamma-Gamma on the workspace's orders and store every
customer's predicted value, the super-user flag, and the tracked "超级用户" segment.

The mathematics is in `models` / `summary` (pure numpy); this module reads the orders (one query,
brand-local purchase days), stores the fit (`ClvFit`) and replaces the `CustomerValue` rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from siyu.analytics import scope
from siyu.analytics.clv import models
from siyu.analytics.clv.pareto import revenue_by_customer
from siyu.analytics.clv.schemas import SuperUsers
from siyu.analytics.clv.summary import Summary, summarize, unit_days
from siyu.analytics.periods import Period, brand_today, local_day, utc_start, workspace_zone
from siyu.analytics.settings import settings_for_update
from siyu.analytics.tables import ratio
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.models import ClvFit, ClvFitStatus, Customer, CustomerValue, Order, Segment

DEFAULT_HOLDOUT_DAYS = 90
"""The validation fit holds out the last 90 days before the calibration end (0 skips it)."""
MAX_HOLDOUT_DAYS = 730
INSERT_CHUNK = 5000
READ_PARTITION = 100_000
SUPER_USER_SEGMENT = "超级用户"
SUPER_USER_DEFINITION: dict[str, Any] = {"kind": "super_user"}
NOT_ENOUGH = "not enough orders to fit: the model needs customers with repeat purchases"
NOT_FINITE = "the fitted model gave predictions that are not finite numbers (NaN or infinity) for {count} customers"


@dataclass(frozen=True)
class Orders:
    """Every order of the workspace up to a day, as numpy arrays (amounts in yuan)."""

    customer_ids: np.ndarray
    days: np.ndarray
    amounts: np.ndarray


def read_orders(session: Session, workspace_id: int, *, until: date, clock: Clock) -> Orders:
    """Orders paid up to brand-local `until` (inclusive): customer, local day, total − refunded (yuan).

    Fully refunded orders and merged-away customers are left out (their orders moved to the survivor).
    """
    zone = workspace_zone(session, workspace_id)
    day = local_day(session, Order.paid_at, zone, clock.now())
    statement = select(Order.customer_id, day, scope.NET_FEN).where(
        *scope.counted_orders(workspace_id, pool_only=False),
        Order.paid_at.is_not(None),
        Order.paid_at < utc_start(until + timedelta(days=1), zone),
    )
    # Streamed in partitions (server-side cursor on PostgreSQL): at 3M orders only one partition of
    # rows is alive at a time, each turned into numpy arrays right away.
    ids: list[np.ndarray] = []
    days: list[np.ndarray] = []
    amounts: list[np.ndarray] = []
    result = session.execute(statement.execution_options(yield_per=READ_PARTITION))
    for part in result.partitions():
        ids.append(np.fromiter((r[0] for r in part), dtype=np.int64, count=len(part)))
        days.append(np.array([r[1] for r in part], dtype="datetime64[D]"))
        amounts.append(np.fromiter((max(int(r[2] or 0), 0) / 100 for r in part), dtype=np.float64, count=len(part)))
    return Orders(
        customer_ids=np.concatenate(ids) if ids else np.empty(0, dtype=np.int64),
        days=np.concatenate(days) if days else np.empty(0, dtype="datetime64[D]"),
        amounts=np.concatenate(amounts) if amounts else np.empty(0, dtype=np.float64),
    )


def _fit(summary: Summary) -> tuple[models.BgNbd, models.GammaGamma]:
    """Both models, or `ValueError` with a readable reason (too few repeat buyers…)."""
    if len(summary.customer_ids) == 0 or not np.any(summary.frequency > 0):
        raise ValueError(NOT_ENOUGH)
    return models.fit_bgnbd(summary.frequency, summary.recency, summary.T), models.fit_gamma_gamma(
        summary.frequency, summary.monetary
    )


def _validation(orders: Orders, calibration_end: date, holdout_days: int, time_unit: str) -> dict[str, Any]:
    """Fit on the orders up to `calibration_end − holdout_days` and compare the predicted purchases
    in the hold-out with the actual ones, per calibration frequency bucket."""
    split = calibration_end - timedelta(days=holdout_days)
    try:
        summary = summarize(
            orders.customer_ids,
            orders.days,
            orders.amounts,
            calibration_end=split,
            time_unit=time_unit,
            holdout_end=calibration_end,
        )
        bgnbd, _ = _fit(summary)
        buckets = models.holdout_validation(bgnbd, summary, holdout_days / unit_days(time_unit))
    except ValueError as exc:
        return {"calibration_end": split.isoformat(), "holdout_end": calibration_end.isoformat(), "error": str(exc)}
    return {
        "calibration_end": split.isoformat(),
        "holdout_end": calibration_end.isoformat(),
        "holdout_days": holdout_days,
        "params": {"r": bgnbd.r, "alpha": bgnbd.alpha, "a": bgnbd.a, "b": bgnbd.b},
        "buckets": [
            {"label": b.label, "customers": b.customers, "predicted": _finite(b.predicted), "actual": _finite(b.actual)}
            for b in buckets
        ],
    }


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def run_fit(
    session: Session,
    *,
    actor: Actor,
    clock: Clock,
    calibration_end: date | None = None,
    holdout_days: int | None = None,
) -> ClvFit:
    """Fit BG/NBD + Gamma-Gamma on every order up to `calibration_end` (default: brand-local today)
    and replace the workspace's `CustomerValue` rows. Also runs a validation fit holding out the
    last `holdout_days` (default 90; 0 skips it). A fit that cannot be made is stored as FAILED with
    the reason; the previous values are then kept.
    """
    actor.require(Scope.ANALYTICS_WRITE)
    ws = actor.workspace_id
    # One fit per workspace at a time: a second one waits here for the first to commit, then
    # replaces its values (SQLite serialises writers anyway).
    settings = settings_for_update(session, ws, clock)
    today = brand_today(session, ws, clock)
    end = calibration_end or today
    if end > today:
        raise InvalidInput("calibration_end cannot be after today", details={"field": "calibration_end"})
    holdout = DEFAULT_HOLDOUT_DAYS if holdout_days is None else holdout_days
    if not 0 <= holdout <= MAX_HOLDOUT_DAYS:
        raise InvalidInput(f"holdout_days must be 0 to {MAX_HOLDOUT_DAYS}", details={"field": "holdout_days"})
    unit = settings.clv_time_unit if settings.clv_time_unit in ("day", "week") else "week"
    fit = ClvFit(
        workspace_id=ws,
        status=ClvFitStatus.RUNNING,
        calibration_end=end,
        holdout_end=None,
        time_unit=unit,
        horizon_days=settings.clv_horizon_days,
        customers=0,
        params={},
        created_by=actor.label,
        started_at=clock.now(),
    )
    session.add(fit)
    session.flush()
    orders = read_orders(session, ws, until=end, clock=clock)
    try:
        summary = summarize(orders.customer_ids, orders.days, orders.amounts, calibration_end=end, time_unit=unit)
        fit.customers = len(summary.customer_ids)
        bgnbd, gg = _fit(summary)
    except ValueError as exc:
        fit.status, fit.error, fit.finished_at = ClvFitStatus.FAILED, str(exc)[:2000], clock.now()
        return fit
    fit.params = {
        "r": bgnbd.r,
        "alpha": bgnbd.alpha,
        "a": bgnbd.a,
        "b": bgnbd.b,
        "bgnbd_ll": bgnbd.log_likelihood,
        "p": gg.p,
        "q": gg.q,
        "v": gg.v,
        "gg_ll": gg.log_likelihood,
        "gg_customers": gg.customers,
    }
    fit.validation = _validation(orders, end, holdout, unit) if holdout else None
    try:
        predictions = _predict(summary, bgnbd, gg, fit.horizon_days / unit_days(unit))
    except ValueError as exc:
        fit.status, fit.error, fit.finished_at = ClvFitStatus.FAILED, str(exc)[:2000], clock.now()
        return fit
    _store_values(session, fit, summary, predictions, settings.super_user_top_pct, clock)
    fit.status, fit.finished_at = ClvFitStatus.DONE, clock.now()
    _queue_segment_refresh(session, actor=actor, clock=clock)
    return fit


def _queue_segment_refresh(session: Session, *, actor: Actor, clock: Clock) -> None:
    """The tracked "超级用户" segment follows the new flags: refresh it after this fit commits."""
    segment_id = super_user_segment_id(session, actor.workspace_id)
    if segment_id is None:
        return
    from siyu.segments.tasks import queue_segment_refresh

    queue_segment_refresh(
        session, workspace_id=actor.workspace_id, segment_id=segment_id, clock=clock, created_by=actor.label
    )


@dataclass(frozen=True)
class Predictions:
    purchases: np.ndarray
    alive: np.ndarray
    spend_fen: np.ndarray
    value_fen: np.ndarray


def _predict(summary: Summary, bgnbd: models.BgNbd, gg: models.GammaGamma, horizon: float) -> Predictions:
    """Every customer's predictions, or `ValueError` when any is not finite (never stored as 0)."""
    f, r, t = summary.frequency, summary.recency, summary.T
    purchases = np.asarray(models.expected_purchases(bgnbd, horizon, f, r, t), dtype=np.float64)
    alive = np.asarray(models.p_alive(bgnbd, f, r, t), dtype=np.float64)
    spend = np.asarray(models.expected_spend(gg, f, summary.monetary), dtype=np.float64) * 100
    bad = ~(np.isfinite(purchases) & np.isfinite(alive) & np.isfinite(spend))
    if np.any(bad):
        raise ValueError(NOT_FINITE.format(count=int(bad.sum())))
    spend_fen = np.rint(spend).astype(np.int64)
    return Predictions(purchases, alive, spend_fen, np.rint(purchases * spend_fen).astype(np.int64))


def _store_values(
    session: Session,
    fit: ClvFit,
    summary: Summary,
    predictions: Predictions,
    top_pct: int,
    clock: Clock,
) -> None:
    """Replace the workspace's customer values with this fit's (ranked; the top `top_pct` % with a
    positive predicted value flagged as super users)."""
    f, r, t = summary.frequency, summary.recency, summary.T
    purchases, alive, spend_fen, value_fen = (
        predictions.purchases,
        predictions.alive,
        predictions.spend_fen,
        predictions.value_fen,
    )
    order = np.lexsort((summary.customer_ids, -value_fen))
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(1, len(order) + 1)
    supers = math.ceil(len(order) * top_pct / 100)
    flags = (ranks <= supers) & (value_fen > 0)
    now = clock.now()
    session.execute(delete(CustomerValue).where(CustomerValue.workspace_id == fit.workspace_id))
    for start in range(0, len(order), INSERT_CHUNK):
        rows = [
            {
                "workspace_id": fit.workspace_id,
                "customer_id": int(summary.customer_ids[i]),
                "fit_id": fit.id,
                "frequency": int(f[i]),
                "recency": float(r[i]),
                "age": float(t[i]),
                "average_spend_fen": round(float(summary.monetary[i]) * 100),
                "expected_purchases": float(purchases[i]),
                "p_alive": float(alive[i]),
                "expected_spend_fen": int(spend_fen[i]),
                "expected_value_fen": int(value_fen[i]),
                "value_rank": int(ranks[i]),
                "is_super_user": bool(flags[i]),
                "computed_at": now,
            }
            for i in range(start, min(start + INSERT_CHUNK, len(order)))
        ]
        session.execute(insert(CustomerValue), rows)


def latest_fit(session: Session, *, actor: Actor) -> ClvFit | None:
    """The workspace's most recent fit, finished or not."""
    actor.require(Scope.ANALYTICS_READ)
    return session.scalar(
        select(ClvFit)
        .where(ClvFit.workspace_id == actor.workspace_id)
        .order_by(ClvFit.started_at.desc(), ClvFit.id.desc())
        .limit(1)
    )


def latest_done_fit(session: Session, *, actor: Actor) -> ClvFit | None:
    """The most recent fit that finished (its values are the ones stored)."""
    actor.require(Scope.ANALYTICS_READ)
    return session.scalar(
        select(ClvFit)
        .where(ClvFit.workspace_id == actor.workspace_id, ClvFit.status == ClvFitStatus.DONE)
        .order_by(ClvFit.started_at.desc(), ClvFit.id.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class ValueRow:
    value: CustomerValue
    name: str | None
    """None for erased customers (never listed by name)."""


def customer_values(session: Session, *, actor: Actor, limit: int = 50, cursor: str | None = None) -> Page[ValueRow]:
    """Customers by predicted value, highest first; `cursor` is the last rank seen."""
    actor.require(Scope.ANALYTICS_READ)
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE_SIZE}", details={"field": "limit"})
    query = _values_query(actor.workspace_id)
    if cursor:
        query = query.where(CustomerValue.value_rank > decode_id_cursor(cursor))
    rows = session.execute(query.order_by(CustomerValue.value_rank).limit(limit + 1)).all()
    items = [ValueRow(row[0], None if row[2] is not None else row[1]) for row in rows[:limit]]
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(items[-1].value.value_rank) if more else None)


def _values_query(workspace_id: int) -> Any:
    return (
        select(CustomerValue, Customer.name, Customer.erased_at)
        .join(Customer, Customer.id == CustomerValue.customer_id)
        .where(CustomerValue.workspace_id == workspace_id, Customer.merged_into_id.is_(None))
    )


def count_customer_values(session: Session, *, actor: Actor) -> int:
    """How many customers have a predicted value (merged-away ones left out)."""
    actor.require(Scope.ANALYTICS_READ)
    return int(
        session.scalar(
            select(func.count())
            .select_from(CustomerValue)
            .join(Customer, Customer.id == CustomerValue.customer_id)
            .where(CustomerValue.workspace_id == actor.workspace_id, Customer.merged_into_id.is_(None))
        )
        or 0
    )


def every_customer_value(session: Session, *, actor: Actor) -> Iterator[ValueRow]:
    """Every customer's predicted value by rank, read in partitions (for the full export)."""
    actor.require(Scope.ANALYTICS_READ)
    query = _values_query(actor.workspace_id).order_by(CustomerValue.value_rank)
    result = session.execute(query.execution_options(yield_per=INSERT_CHUNK))
    for part in result.partitions():
        for row in part:
            yield ValueRow(row[0], None if row[2] is not None else row[1])


def super_user_segment_id(session: Session, workspace_id: int) -> int | None:
    """The live segment named "超级用户" whose definition is the super-user condition, if any."""
    for segment_id, definition in session.execute(
        select(Segment.id, Segment.definition).where(
            Segment.workspace_id == workspace_id, Segment.name == SUPER_USER_SEGMENT, Segment.archived_at.is_(None)
        )
    ):
        if definition == SUPER_USER_DEFINITION:
            return int(segment_id)
    return None


def super_users(session: Session, *, actor: Actor, start: date, end: date, total_fen: int | None = None) -> SuperUsers:
    """How many super users the latest fit flagged and their share of the revenue from `start` to `end`.

    `total_fen`: the revenue of that period when the caller already has it (the Pareto table's), so
    the orders are not grouped a second time."""
    actor.require(Scope.ANALYTICS_READ)
    ws = actor.workspace_id
    counts = session.execute(
        select(func.count(), func.count().filter(CustomerValue.is_super_user.is_(True))).where(
            CustomerValue.workspace_id == ws
        )
    ).one()
    zone = workspace_zone(session, ws)
    start_utc, end_utc = Period(start, end).utc_bounds(zone)
    revenue = func.sum(scope.NET_FEN)
    supers = select(CustomerValue.customer_id).where(
        CustomerValue.workspace_id == ws, CustomerValue.is_super_user.is_(True)
    )
    super_revenue = session.scalar(
        select(revenue).where(
            *scope.counted_orders(ws, pool_only=False),
            Order.customer_id.in_(supers),
            Order.paid_at >= start_utc,
            Order.paid_at < end_utc,
        )
    )
    if total_fen is None:
        total_fen = sum(revenue_by_customer(session, workspace_id=ws, start_utc=start_utc, end_utc=end_utc))
    return SuperUsers(
        count=int(counts[1] or 0),
        customers=int(counts[0] or 0),
        revenue_fen=int(super_revenue or 0),
        share=ratio(int(super_revenue or 0), total_fen),
        segment_id=super_user_segment_id(session, ws),
    )


def ensure_super_user_segment(session: Session, *, actor: Actor, clock: Clock) -> Segment:
    """The tracked "超级用户" segment (`{"kind": "super_user"}`), created if missing.

    Needs `analytics:write` and `segments:write` (it is an ordinary dynamic segment)."""
    from siyu.segments.service.crud import SegmentInput, create_segment

    actor.require(Scope.ANALYTICS_WRITE)
    existing = super_user_segment_id(session, actor.workspace_id)
    if existing is not None:
        segment = session.get(Segment, existing)
        assert segment is not None
        return segment
    return create_segment(
        session,
        actor=actor,
        data=SegmentInput(
            name=SUPER_USER_SEGMENT,
            definition=dict(SUPER_USER_DEFINITION),
            description="Top customers by predicted value (CLV fit); refreshed with the segments.",
            is_tracked=True,
        ),
        clock=clock,
    )
