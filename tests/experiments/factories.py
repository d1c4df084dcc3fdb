"""Factories of the experiments tests: exposures with exact counts per variant."""

from __future__ import annotations

import itertools
from datetime import datetime

from sqlalchemy.orm import Session

from siyu.models import Experiment, ExperimentExposure

_seq = itertools.count(1)


def add_exposures(
    db: Session,
    *,
    experiment: Experiment,
    key: str,
    users: int,
    conversions: int = 0,
    at: datetime,
    customer_id: int | None = None,
) -> list[ExperimentExposure]:
    """`users` exposures of variant `key`, the first `conversions` of them converted at `at`."""
    rows = [
        ExperimentExposure(
            workspace_id=experiment.workspace_id,
            experiment_id=experiment.id,
            variant_key=key,
            visitor_id=f"v{next(_seq)}",
            customer_id=customer_id,
            exposed_at=at,
            converted_at=at if index < conversions else None,
        )
        for index in range(users)
    ]
    db.add_all(rows)
    db.flush()
    return rows
