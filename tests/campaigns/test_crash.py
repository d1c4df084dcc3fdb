"""Crash test: kill the dispatch worker at random points of a broadcast, restart it, and check that
every eligible customer got exactly one message — none twice, none lost.

A real database (a SQLite file, or a throwaway PostgreSQL database) holds a brand loaded the way
`siyu bench dispatch` loads it (3% unsubscribed from SMS, 5% at the day and week caps, 2% sent the
same content two days ago; 5% holdout), without quiet hours, and one scheduled broadcast to all
of it. `siyu touch dispatch --until-idle` runs as a subprocess with the system clock and is killed
with SIGKILL: twice at a random moment while it plans, twice at a random moment after it starts
(start-up and migrations included), twice while it sends; then it runs to the end. The outcome
must equal a reference computed from the same rules: one delivery row per customer with the
expected status and reason, one sandbox message per sent row, nothing left queued or sending.
The same for a running SOP ("send → task → send" for 500 customers who just joined a group, 3,000
with `SIYU_SOAK=1`): killed while it advances and while it sends, every customer ends with one
completed enrolment, two sent messages and one task.

20,000 recipients in the normal suite; `SIYU_SOAK=1` runs the issue's 100,000.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from bench import dispatch_bench
from bench.harness import new_workspace
from siyu.db import make_engine, read_only_engine
from siyu.kit.clock import system_clock
from siyu.messaging.planning import bucket
from siyu.migrate import upgrade
from siyu.models import Broadcast, Customer, Delivery, JourneyEnrolment, JourneyStepRun, SandboxMessage, StaffTask
from tests.campaigns.journeys.factories import make_journey
from tests.conftest import PG_URL, _throwaway_postgres
from tests.factories import make_workspace
from tests.messaging.factories import make_account, make_content, make_policy

RECIPIENTS = 100_000 if os.environ.get("SIYU_SOAK") else 20_000
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
WORKER = [sys.executable, "-c", "from siyu.cli import main; main()", "touch", "dispatch", "--until-idle"]


@pytest.fixture(params=BACKENDS)
def crash_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh migrated database of its own (the worker subprocess connects to it by URL)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'crash.db'}")
        upgrade(engine)
        yield engine
        engine.dispose()
        return
    assert PG_URL
    with _throwaway_postgres(PG_URL) as engine:
        upgrade(engine)
        yield engine


def reference(brand: dispatch_bench.Brand) -> dict[int, tuple[str, str | None]]:
    """Each customer's expected final (status, reason), from the rules the brand was built with."""
    salt = f"broadcast:{brand.broadcast_id}"
    expected: dict[int, tuple[str, str | None]] = {}
    for i, cid in enumerate(brand.ids()):
        kind = dispatch_bench._kind(i)
        if bucket(salt + ":holdout", cid) < dispatch_bench.HOLDOUT_PCT * 100:
            expected[cid] = ("holdout", None)
        elif kind == "unsubscribed":
            expected[cid] = ("suppressed", "unsubscribed")
        elif kind == "capped":
            expected[cid] = ("suppressed", "capped")
        elif kind == "recent":
            expected[cid] = ("suppressed", "duplicate")
        else:
            expected[cid] = ("sent", None)
    return expected


class Worker:
    """Starts `siyu touch dispatch --until-idle` against the database and kills it."""

    def __init__(self, engine: Engine, tmp_path: Path) -> None:
        self.env = os.environ | {
            "SIYU_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "SIYU_DATA_DIR": str(tmp_path / "data"),
            "SIYU_SECRET_KEY": "crash-test-secret-0123456789abcdef",
            # small send transactions, so a kill while sending lands between commits as well as in one
            "SIYU_SEND_BATCH_SIZE": "100",
        }
        self.kills: list[str] = []

    def start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(WORKER, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def kill_when(self, ready: Callable[[], bool], phase: Callable[[], str], rng: random.Random, delay: float) -> None:
        """Start a worker, wait until `ready()`, then SIGKILL it after a random `0…delay` s and
        record the phase it was killed in (`phase()`); nothing when it finished on its own first."""
        process = self.start()
        try:
            while not ready():
                if process.poll() is not None:
                    break
                time.sleep(0.05)
            else:
                time.sleep(rng.uniform(0, delay))
            if process.poll() is not None:
                assert process.returncode == 0, process.stderr.read().decode(errors="replace") if process.stderr else ""
                return
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            self.kills.append(phase())
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
            if process.stderr:
                process.stderr.close()

    def run_to_the_end(self) -> None:
        process = self.start()
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err.decode(errors="replace")


def test_a_killed_worker_neither_loses_nor_repeats_a_message(crash_engine: Engine, tmp_path: Path) -> None:
    engine = crash_engine
    # given a brand of RECIPIENTS customers and a broadcast to all of them, due now
    workspace_id = new_workspace(engine, "crash")
    brand = dispatch_bench.load(
        engine, workspace_id, RECIPIENTS, lambda _: None, now=system_clock.now(), quiet=("00:00", "00:00")
    )
    engine.dispose()  # the loader's big SQLite page cache and PostgreSQL sessions go
    expected = reference(brand)
    rng = random.Random(20261123)
    worker = Worker(engine, tmp_path)
    reader = read_only_engine(engine)  # polling must not queue for SQLite's write lock

    def progress() -> tuple[str, int, int]:
        with reader.connect() as conn:
            status, through = conn.execute(
                select(Broadcast.status, Broadcast.planned_through).where(Broadcast.id == brand.broadcast_id)
            ).one()
            sent = conn.execute(select(func.count()).select_from(SandboxMessage)).scalar_one()
        return str(status), int(through), int(sent)

    def phase() -> str:
        status, _, sent = progress()
        return status if status != "sending" or sent == 0 else "sending"

    def planning_moved(through: int) -> Callable[[], bool]:
        def ready() -> bool:
            status, now_through, _ = progress()
            return (status == "planning" and now_through > through) or status in ("sending", "done")

        return ready

    def sending_moved(sent: int) -> Callable[[], bool]:
        return lambda: progress()[2] > sent

    # when the worker is killed at random moments: while planning, after start, while sending
    for _ in range(2):
        worker.kill_when(planning_moved(progress()[1]), phase, rng, delay=0.5)
    for _ in range(2):
        worker.kill_when(lambda: True, phase, rng, delay=4.0)
    for _ in range(2):
        worker.kill_when(sending_moved(progress()[2]), phase, rng, delay=2.0)
    # and then restarted until it finishes
    worker.run_to_the_end()

    # then the kills hit planning and sending
    assert "planning" in worker.kills and "sending" in worker.kills, worker.kills
    # and every customer has exactly one row, with the reference's status and reason
    with engine.connect() as conn:
        rows = conn.execute(
            select(Delivery.customer_id, Delivery.status, Delivery.reason).where(
                Delivery.source == "broadcast", Delivery.source_id == brand.broadcast_id
            )
        ).all()
        outbox = Counter(conn.execute(select(SandboxMessage.customer_id)).scalars())
        states = Counter(conn.execute(text("SELECT status FROM deliveries")).scalars())
        status = conn.execute(select(Broadcast.status).where(Broadcast.id == brand.broadcast_id)).scalar_one()
    assert len(rows) == RECIPIENTS
    assert {cid: (str(s), r) for cid, s, r in rows} == expected
    # and every sent row has exactly one sandbox message; nobody else has one
    sent = {cid for cid, (s, _) in expected.items() if s == "sent"}
    assert set(outbox) == sent and set(outbox.values()) == {1}
    assert states["queued"] == 0 and states["sending"] == 0
    assert str(status) == "done"
    counts = Counter(s for s, _ in expected.values())
    assert counts["sent"] > RECIPIENTS * 0.8 and counts["holdout"] > 0  # the mix is as documented


SOP_CUSTOMERS = 3_000 if os.environ.get("SIYU_SOAK") else 500


def test_a_killed_worker_runs_every_sop_step_once(crash_engine: Engine, tmp_path: Path) -> None:
    # given an active SOP "send → task → send" (no caps, no quiet hours) and SOP_CUSTOMERS customers
    # who just joined a group, so the next sweep enrols all of them
    engine = crash_engine
    now = system_clock.now()
    with Session(engine, expire_on_commit=False) as db:
        workspace = make_workspace(db, clock=system_clock)
        make_policy(db, workspace=workspace, clock=system_clock)
        account = make_account(db, workspace=workspace, clock=system_clock)
        first, second = (make_content(db, workspace=workspace, clock=system_clock, body=b) for b in ("欢迎", "回访"))
        db.commit()
        journey = make_journey(
            db,
            workspace=workspace,
            clock=system_clock,
            trigger={"type": "group_joined"},
            steps=[
                {"id": "hello", "type": "send", "content_id": first.id},
                {"id": "call", "type": "task", "title": "电话回访"},
                {"id": "again", "type": "send", "content_id": second.id},
            ],
            channel_account_ids=[account.id],
        )
        workspace_id, journey_id = workspace.id, journey.id
        base = int(db.scalar(select(func.coalesce(func.max(Customer.id), 0)))) + 1
    ids = range(base, base + SOP_CUSTOMERS)
    kind = engine.dialect.name
    at = dispatch_bench._stamp(kind, now)
    dispatch_bench._write(
        engine,
        "customers",
        dispatch_bench._CUSTOMER_COLUMNS,
        ((cid, workspace_id, f"客户{cid}", "active", "{}", "{}", at, at) for cid in ids),
    )
    if kind == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('customers', 'id'), max(id)) FROM customers"))
    dispatch_bench._write(
        engine,
        "customer_events",
        "workspace_id, customer_id, type, occurred_at, properties, source, idempotency_key, recorded_at",
        ((workspace_id, cid, "group.joined", at, "{}", "test", f"joined-{cid}", at) for cid in ids),
    )
    engine.dispose()
    rng = random.Random(20261124)
    worker = Worker(engine, tmp_path)
    reader = read_only_engine(engine)  # polling must not queue for SQLite's write lock

    def progress() -> tuple[int, int]:
        with reader.connect() as conn:
            steps = conn.execute(
                select(func.count())
                .select_from(JourneyStepRun)
                .join(JourneyEnrolment, JourneyEnrolment.id == JourneyStepRun.enrolment_id)
                .where(JourneyEnrolment.journey_id == journey_id)
            ).scalar_one()
            sent = conn.execute(
                select(func.count()).select_from(SandboxMessage).where(SandboxMessage.workspace_id == workspace_id)
            ).scalar_one()
        return int(steps), int(sent)

    def phase() -> str:
        steps, sent = progress()
        return "sending" if sent else "advancing" if steps else "starting"

    def moved(index: int) -> Callable[[], bool]:
        before = progress()[index]
        return lambda: progress()[index] > before

    # when the worker is killed at random moments: after start, while advancing the SOP, while sending
    # (the whole run takes ~5 s on this machine: ~1 s start-up, ~3 s advancing, ~0.7 s sending, so
    # the delays stay inside the phase they aim at)
    for _ in range(2):
        worker.kill_when(lambda: True, phase, rng, delay=2.5)
    for index, delay in ((0, 0.8), (0, 0.8), (1, 0.15), (1, 0.15)):
        worker.kill_when(moved(index), phase, rng, delay=delay)
    # and then restarted until it finishes
    worker.run_to_the_end()

    # then every customer was enrolled once, completed, got one message per send step and one task
    assert "advancing" in worker.kills and "sending" in worker.kills, worker.kills
    with engine.connect() as conn:
        enrolments = Counter(
            conn.execute(
                select(JourneyEnrolment.customer_id, JourneyEnrolment.status).where(
                    JourneyEnrolment.journey_id == journey_id
                )
            ).all()
        )
        deliveries = Counter(
            conn.execute(
                select(Delivery.customer_id, Delivery.status).where(
                    Delivery.workspace_id == workspace_id, Delivery.source == "journey"
                )
            ).all()
        )
        outbox = Counter(
            conn.execute(
                select(SandboxMessage.customer_id).where(SandboxMessage.workspace_id == workspace_id)
            ).scalars()
        )
        tasks = Counter(
            conn.execute(select(StaffTask.customer_id).where(StaffTask.workspace_id == workspace_id)).scalars()
        )
    assert enrolments == {(cid, "completed"): 1 for cid in ids}
    assert deliveries == {(cid, "sent"): 2 for cid in ids}
    assert outbox == {cid: 2 for cid in ids}
    assert tasks == {cid: 1 for cid in ids}
