"""Several engine sweeps at once over real committed data (a fresh database per backend): every
customer is enrolled once and every step acts once, whichever worker gets there first."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.campaigns.journeys.engine import run_journeys
from siyu.config import Settings
from siyu.db import Database, make_engine
from siyu.kit.clock import FrozenClock
from siyu.migrate import upgrade
from siyu.models import JourneyEnrolment, JourneyStepRun, StaffTask
from tests.campaigns.journeys.factories import make_journey
from tests.conftest import BACKENDS, NOW, PG_URL, _throwaway_postgres
from tests.factories import actor_for, make_customer, make_workspace
from tests.segments.factories import make_event

CUSTOMERS = 60
WORKERS = 4


@pytest.fixture(params=BACKENDS)
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database of its own whose transactions really commit."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'siyu.db'}"
        else:
            assert PG_URL
            url = stack.enter_context(_throwaway_postgres(PG_URL)).url.render_as_string(hide_password=False)
        engine = make_engine(url)
        upgrade(engine)
        settings = Settings(database_url=url, data_dir=tmp_path / "data", secret_key="x", log_json=False)
        database = Database(settings, engine=engine)
        yield database
        engine.dispose()


def test_concurrent_sweeps_enrol_and_act_once(fresh: Database) -> None:
    # given a journey "task → wait 1 hour → task" and 60 customers who joined a group
    clock = FrozenClock(NOW)
    with Session(fresh.engine, expire_on_commit=False) as db:
        workspace = make_workspace(db, clock=clock)
        make_journey(
            db,
            workspace=workspace,
            clock=clock,
            trigger={"type": "group_joined"},
            steps=[
                {"id": "a", "type": "task", "title": "打招呼"},
                {"id": "w", "type": "wait", "hours": 1},
                {"id": "b", "type": "task", "title": "回访"},
            ],
        )
        for i in range(CUSTOMERS):
            customer = make_customer(db, actor=actor_for(workspace), clock=clock, name=f"客{i}").customer
            make_event(db, customer=customer, type="group.joined", occurred_at=clock.now())
        db.commit()

    def sweep_at_once() -> Counter[str]:
        totals: Counter[str] = Counter()
        lock = threading.Lock()
        start = threading.Barrier(WORKERS)

        def work() -> None:
            start.wait()
            result = run_journeys(fresh, clock, batch_size=7)
            with lock:
                totals.update(result)

        threads = [threading.Thread(target=work) for _ in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        return totals

    # when four workers sweep at the same moment, then again after the wait
    first = sweep_at_once()
    clock.advance(timedelta(hours=1))
    second = sweep_at_once()
    run_journeys(fresh, clock)  # anything left by a worker's error is picked up
    # then every customer entered once and has exactly one task per task step
    with Session(fresh.engine) as db:
        entries = db.scalars(select(JourneyEnrolment)).all()
        assert len(entries) == CUSTOMERS
        assert Counter(str(e.status) for e in entries) == {"completed": CUSTOMERS}
        tasks = Counter((t.customer_id, t.title) for t in db.scalars(select(StaffTask)))
        assert len(tasks) == 2 * CUSTOMERS and set(tasks.values()) == {1}
        assert len(db.scalars(select(JourneyStepRun)).all()) == 3 * CUSTOMERS
    # and the work was shared, not repeated: the others skipped what one worker had taken
    assert (first["enrolled"], first["steps"], first["errors"]) == (CUSTOMERS, 2 * CUSTOMERS, 0)
    assert (second["steps"], second["completed"], second["errors"]) == (CUSTOMERS, CUSTOMERS, 0)
