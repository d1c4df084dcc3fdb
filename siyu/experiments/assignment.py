"""Which variant a visitor sees, and the exposure/conversion rows results are computed from.

Assignment hashes (experiment, visitor): a returning visitor sees the same variant on any
machine, with no lookup, and weights are honoured over many visitors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.kit.sql import insert_or_ignore
from siyu.models import Experiment, ExperimentExposure, ExperimentStatus, ExperimentVariant

BUCKETS = 10_000


def bucket(experiment_id: int, visitor_id: str) -> int:
    """A stable number in [0, 10000) for this visitor in this experiment."""
    digest = hashlib.sha256(f"{experiment_id}:{visitor_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign_variant(experiment_id: int, visitor_id: str, weighted_keys: Sequence[tuple[str, int]]) -> str:
    """The variant key for this visitor: buckets are split in proportion to the weights, in order."""
    total = sum(weight for _, weight in weighted_keys)
    if not weighted_keys or total <= 0:
        raise ValueError("an experiment needs at least one variant with a positive weight")
    point = bucket(experiment_id, visitor_id) * total // BUCKETS
    for key, weight in weighted_keys:
        if point < weight:
            return key
        point -= weight
    return weighted_keys[-1][0]  # unreachable: point < total


def variants_of(session: Session, experiment_id: int) -> list[ExperimentVariant]:
    return list(
        session.scalars(
            select(ExperimentVariant)
            .where(ExperimentVariant.experiment_id == experiment_id)
            .order_by(ExperimentVariant.position, ExperimentVariant.id)
        )
    )


def expose(
    session: Session,
    *,
    experiment: Experiment,
    visitor_id: str,
    at: datetime,
    customer_id: int | None = None,
) -> ExperimentVariant | None:
    """Assign the visitor a variant of a running experiment and record the first exposure.

    Returns None when the experiment is not running (visitors then see the default content).
    A second exposure keeps the first row: results count each visitor once, in one arm.
    """
    if experiment.status != ExperimentStatus.RUNNING:
        return None
    variants = variants_of(session, experiment.id)
    if not variants:
        return None
    key = assign_variant(experiment.id, visitor_id, [(v.key, v.weight) for v in variants])
    insert_or_ignore(
        session,
        ExperimentExposure,
        {
            "workspace_id": experiment.workspace_id,
            "experiment_id": experiment.id,
            "variant_key": key,
            "visitor_id": visitor_id,
            "customer_id": customer_id,
            "exposed_at": at,
        },
        ("experiment_id", "visitor_id"),
    )
    return next(v for v in variants if v.key == key)


def convert(session: Session, *, experiment_id: int, visitor_id: str, at: datetime, customer_id: int | None) -> bool:
    """Mark the visitor's exposure converted (first conversion wins); True if this call did it."""
    result = session.execute(
        update(ExperimentExposure)
        .where(
            ExperimentExposure.experiment_id == experiment_id,
            ExperimentExposure.visitor_id == visitor_id,
            ExperimentExposure.converted_at.is_(None),
        )
        .values(converted_at=at, customer_id=customer_id)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
