"""Scheduler leadership: one leader ticks, stand-bys take over when it dies, a leader that lost
its lock stops ticking."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select, text

from siyu.config import Settings
from siyu.db import Database, set_database
from siyu.jobs import scheduler
from siyu.kit.clock import FrozenClock
from siyu.models import Job, ScheduledRun
from siyu.ops.leader import (
    LOCK_CONNECT_ARGS,
    FileLeaderLock,
    LeaderLock,
    MigrationLockTimeout,
    PostgresLeaderLock,
    leader_lock_for,
    migration_lock,
)
from tests.ops.slowjob import SLOW_KIND

TASK = "test-leader-sweep"


@pytest.fixture
def committed(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """Real commits; only this module's periodic task is declared; its rows are removed after."""
    monkeypatch.setattr(scheduler, "_tasks", {})
    scheduler.periodic(TASK, kind=SLOW_KIND, every=lambda: timedelta(minutes=10))
    database = Database(Settings(database_url="sqlite://", data_dir=tmp_path, log_json=False), engine=engine)
    set_database(database)

    def clean() -> None:
        with database.transaction() as session:
            session.execute(delete(Job).where(Job.kind == SLOW_KIND))
            session.execute(delete(ScheduledRun).where(ScheduledRun.name == TASK))

    clean()
    yield database
    clean()
    set_database(None)


def test_a_file_lock_has_one_holder_at_a_time(tmp_path: Path) -> None:
    first, second = FileLeaderLock(tmp_path / "s.lock"), FileLeaderLock(tmp_path / "s.lock")
    assert (first.try_acquire(), second.try_acquire()) == (True, False)
    assert (first.still_held(), second.still_held()) == (True, False)
    first.release()
    assert (first.still_held(), second.try_acquire()) == (False, True)
    second.release()


def test_a_file_lock_whose_file_was_deleted_or_replaced_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "s.lock"
    first, second = FileLeaderLock(path), FileLeaderLock(path)
    assert first.try_acquire() is True
    # when someone deletes the lock file, another process could lock a new one: the leader steps down
    path.unlink()
    assert (first.still_held(), second.try_acquire(), first.try_acquire()) == (False, True, False)
    # when the file is replaced (a new inode under the same name), the same
    path.with_suffix(".new").write_text("")
    path.with_suffix(".new").replace(path)
    assert (second.still_held(), first.try_acquire(), second.try_acquire()) == (False, True, False)
    first.release()
    second.release()


def test_the_migration_lock_serialises_migrations_and_gives_up_with_a_clear_error(
    engine: Engine, tmp_path: Path
) -> None:
    key = 4242421  # not the real key: other runs may share the test database
    with migration_lock(engine, tmp_path, key=key):
        started = time.monotonic()
        with (
            pytest.raises(MigrationLockTimeout, match="held the migration lock") as raised,
            migration_lock(engine, tmp_path, timeout_s=0.2, poll_s=0.05, key=key),
        ):
            pass
        assert 0.2 <= time.monotonic() - started < 2
    expected = f"advisory lock {key}" if engine.dialect.name == "postgresql" else str(tmp_path / "migrate.lock")
    assert expected in str(raised.value)
    # once the first is done, the next one goes ahead
    with migration_lock(engine, tmp_path, timeout_s=0.2, key=key):
        pass


def test_the_postgres_lock_connection_times_out_on_the_client_side(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL advisory lock")
    lock = PostgresLeaderLock(engine, key=424243)
    try:
        assert lock.try_acquire() is True
        assert lock._connection is not None
        parameters = lock._connection.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
        timeout = lock._connection.execute(text("SHOW statement_timeout")).scalar()
    finally:
        lock.release()
    assert {name: parameters.get(name) for name in LOCK_CONNECT_ARGS} == {
        name: str(value) for name, value in LOCK_CONNECT_ARGS.items()
    }
    assert (timeout, LOCK_CONNECT_ARGS["tcp_user_timeout"]) == ("5s", 20_000)


def test_a_postgres_lock_is_freed_when_the_leaders_session_dies(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL advisory lock")
    first, second = PostgresLeaderLock(engine, key=424242), PostgresLeaderLock(engine, key=424242)
    try:
        assert (first.try_acquire(), second.try_acquire()) == (True, False)
        assert first.still_held()
        # when the leader's session is killed (as the server does when the process dies)
        assert first._connection is not None
        pid = first._connection.execute(text("SELECT pg_backend_pid()")).scalar()
        with engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.commit()
        # then the old leader notices and a stand-by takes the lock
        assert first.still_held() is False
        assert second.try_acquire() is True
        assert first.try_acquire() is False
    finally:
        first.release()
        second.release()


def _run(database: Database, clock: FrozenClock, lock: LeaderLock) -> tuple[threading.Event, scheduler.SchedulerState]:
    stop, state = threading.Event(), scheduler.SchedulerState()
    threading.Thread(
        target=scheduler.run_scheduler,
        args=(database, clock, stop),
        kwargs={"interval_s": 0.05, "leader": lock, "standby_s": 0.05, "state": state},
        daemon=True,
    ).start()
    return stop, state


def _until(condition: object, timeout: float = 10) -> float:
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.01)
    return time.monotonic() - started


def test_one_of_two_schedulers_leads_and_the_other_takes_over_when_it_stops(
    committed: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    first_stop, first = _run(committed, clock, leader_lock_for(committed.engine, tmp_path))
    _until(lambda: first.ticks >= 2)
    second_stop, second = _run(committed, clock, leader_lock_for(committed.engine, tmp_path))
    time.sleep(0.3)  # several stand-by retries
    assert (first.is_leader, second.is_leader, second.ticks) == (True, False, 0)
    # when the leader stops, the stand-by takes over within a few stand-by periods
    first_stop.set()
    took = _until(lambda: second.is_leader and second.ticks > 0)
    second_stop.set()
    assert took < 2
    # the task, due every 10 minutes, was claimed once by the two of them
    with committed.session() as session:
        assert len(session.scalars(select(Job).where(Job.kind == SLOW_KIND)).all()) == 1


class _LosableLock:
    """A lock that the test can take away, as a dead database connection would."""

    def __init__(self) -> None:
        self.lost = False

    def try_acquire(self) -> bool:
        return not self.lost

    def still_held(self) -> bool:
        return not self.lost

    def release(self) -> None:
        pass

    def describe(self) -> str:
        return "test lock"


def test_a_leader_that_lost_its_lock_stops_ticking(committed: Database, clock: FrozenClock) -> None:
    lock = _LosableLock()
    stop, state = _run(committed, clock, lock)
    _until(lambda: state.ticks >= 2)
    lock.lost = True
    _until(lambda: not state.is_leader)
    ticks = state.ticks
    time.sleep(0.3)
    stop.set()
    assert (state.is_leader, state.ticks) == (False, ticks)
