"""Queries of the experiments area: experiments, and users/conversions per variant from exposures."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from siyu.experiments.errors import ExperimentNotFound
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.models import Experiment, ExperimentExposure, ExperimentMetric, ExperimentStatus, Order, OrderStatus


@dataclass(frozen=True)
class Counts:
    users: int
    conversions: int


def get(session: Session, *, workspace_id: int, experiment_id: int, for_update: bool = False) -> Experiment:
    """The experiment, or ExperimentNotFound (also for another workspace's id)."""
    query = select(Experiment).where(Experiment.id == experiment_id, Experiment.workspace_id == workspace_id)
    if for_update:
        query = query.with_for_update()
    experiment = session.scalar(query)
    if experiment is None:
        raise ExperimentNotFound(f"experiment {experiment_id} not found")
    return experiment


def name_taken(session: Session, *, workspace_id: int, name: str, except_id: int | None = None) -> bool:
    query = select(Experiment.id).where(Experiment.workspace_id == workspace_id, Experiment.name == name)
    if except_id is not None:
        query = query.where(Experiment.id != except_id)
    return session.scalar(query) is not None


def list_experiments(
    session: Session,
    *,
    workspace_id: int,
    status: ExperimentStatus | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Experiment]:
    """Experiments, newest first, cursor-paginated."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(Experiment).where(Experiment.workspace_id == workspace_id)
    if status is not None:
        query = query.where(Experiment.status == status)
    if cursor:
        query = query.where(Experiment.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(Experiment.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


def counts_by_variant(session: Session, experiment: Experiment) -> dict[str, Counts]:
    """Users (exposures) and conversions per variant key, by the experiment's primary metric.

    Add and click rates count exposures marked converted. The first-order rate counts exposures
    of customers whose first order (earliest paid_at) was paid within the conversion window after
    the exposure and was not fully refunded.
    """
    exposures = ExperimentExposure
    scope = (exposures.workspace_id == experiment.workspace_id, exposures.experiment_id == experiment.id)
    rows = session.execute(
        select(exposures.variant_key, func.count(), func.count(exposures.converted_at))
        .where(*scope)
        .group_by(exposures.variant_key)
    ).all()
    users = {key: int(n) for key, n, _ in rows}
    if experiment.primary_metric != ExperimentMetric.FIRST_ORDER_RATE:
        return {key: Counts(int(n), int(converted)) for key, n, converted in rows}
    first = (
        select(Order.customer_id, func.min(Order.paid_at).label("paid_at"))
        .where(Order.workspace_id == experiment.workspace_id)
        .group_by(Order.customer_id)
        .subquery()
    )
    kept = exists(
        select(Order.id).where(
            Order.workspace_id == experiment.workspace_id,
            Order.customer_id == first.c.customer_id,
            Order.paid_at == first.c.paid_at,
            Order.status != OrderStatus.REFUNDED,
        )
    )
    candidates = session.execute(
        select(exposures.variant_key, exposures.exposed_at, first.c.paid_at)
        .join(first, first.c.customer_id == exposures.customer_id)
        .where(*scope, first.c.paid_at >= exposures.exposed_at, kept)
    ).all()
    window = timedelta(days=experiment.conversion_window_days)
    converted = Counter(key for key, exposed_at, paid_at in candidates if paid_at <= exposed_at + window)
    return {key: Counts(n, converted.get(key, 0)) for key, n in users.items()}
