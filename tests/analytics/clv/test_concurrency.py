"""Real commits from separate threads: two CLV fits of one workspace at once both finish, the
second waiting for the first, and leave one value per customer (no duplicate-key error)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from siyu.analytics.clv.tasks import fit_all
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import ClvFit, ClvFitStatus, CustomerValue
from tests.analytics.clv.factories import simulated_history
from tests.concurrency import committed_database, run_together  # noqa: F401 - fixture `database`: real commits
from tests.conftest import NOW
from tests.factories import make_workspace

UNSCOPED = {"siyu_unscoped": True}


def test_two_fits_at_once_replace_the_values_cleanly(database: Database) -> None:
    clock = FrozenClock(NOW)
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        simulated_history(session, ws, clock, customers=300, end=date(2026, 11, 23), days=540)
        ws_id = ws.id
    results: list[dict[str, object]] = []

    def fit() -> None:
        results.extend(fit_all(database, clock, workspace_id=ws_id, args={"holdout_days": 0})["fits"])

    assert run_together([fit, fit], timeout=120) == []
    assert [r["status"] for r in results] == ["done", "done"]
    with database.session() as session:
        fits = session.execute(
            select(ClvFit.id, ClvFit.status).where(ClvFit.workspace_id == ws_id), execution_options=UNSCOPED
        ).all()
        assert sorted(f[1] for f in fits) == [ClvFitStatus.DONE, ClvFitStatus.DONE]
        last = max(f[0] for f in fits)
        stored = session.execute(
            select(CustomerValue.fit_id, func.count(), func.count(func.distinct(CustomerValue.customer_id)))
            .where(CustomerValue.workspace_id == ws_id)
            .group_by(CustomerValue.fit_id),
            execution_options=UNSCOPED,
        ).all()
        assert [tuple(r) for r in stored] == [(last, 300, 300)]
