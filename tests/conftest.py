"""Shared fixtures: a real database per backend (SQLite always, PostgreSQL when
`SIYU_TEST_DATABASE_URL` is set), rolled back after each test, and a frozen clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from playwright.sync_api import expect as playwright_expect
from sqlalchemy import Connection, Engine, make_url, text
from sqlalchemy.orm import Session

import siyu.tasks  # noqa: F401 - every area's jobs and listeners, registered as the app and workers have them
from siyu.config import Settings
from siyu.db import Database, make_engine
from siyu.kit.clock import FrozenClock
from siyu.migrate import upgrade

PG_URL = os.environ.get("SIYU_TEST_DATABASE_URL")
# No per-example deadline: CI machines run two cores under load, and a slow first example (a
# cold cache, a database round trip) is not a failure. Property tests bound their own sizes.
hypothesis_settings.register_profile("siyu", deadline=None)
hypothesis_settings.load_profile("siyu")
# Browser assertions wait up to 20 s (Playwright's default is 5 s): on a busy two-core CI machine
# a page that renders in 300 ms here can take seconds; a wrong value still fails, only later.
playwright_expect.set_options(timeout=20_000)
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@contextmanager
def _throwaway_postgres(url: str) -> Iterator[Engine]:
    """A new database on the server of `url` for this run (so parallel runs never collide), dropped after."""
    admin = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    name = f"siyu_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        # Commits of the suite's throwaway database need not wait for the disk: a slow fsync on a
        # busy CI machine must not turn every committing test into a wait (crash tests that kill
        # processes never kill the server, so nothing acknowledged is lost).
        conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    engine = make_engine(str(make_url(url).set(database=name).render_as_string(hide_password=False)))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated database for the whole run, one per backend."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "siyu-test.db"
        eng = make_engine(f"sqlite:///{path}")
        upgrade(eng)
        yield eng
        eng.dispose()
        return
    assert PG_URL
    with _throwaway_postgres(PG_URL) as eng:
        upgrade(eng)
        yield eng


class ConnectionDatabase(Database):
    """A `Database` whose sessions all join one outer transaction that the test rolls back."""

    def __init__(self, settings: Settings, connection: Connection) -> None:
        super().__init__(settings, engine=connection.engine)
        self.connection = connection

    def session(self, *, read_only: bool = False) -> Session:
        return Session(bind=self.connection, join_transaction_mode="create_savepoint", expire_on_commit=False)

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Session]:
        session = self.session()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    conn = engine.connect()
    outer = conn.begin()
    try:
        yield conn
    finally:
        outer.rollback()
        conn.close()


@pytest.fixture
def db(connection: Connection) -> Iterator[Session]:
    """A session inside the test's transaction; `commit()` only releases a savepoint."""
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url="sqlite://",
        data_dir=tmp_path / "data",
        secret_key="test-secret",
        log_json=False,
        broker_url=None,
        max_upload_mb=1,
    )


@pytest.fixture
def database(settings: Settings, connection: Connection) -> Iterator[Database]:
    from siyu.db import set_database

    database = ConnectionDatabase(settings, connection)
    set_database(database)
    yield database
    set_database(None)
