"""Shared fixtures: a real database per backend (SQLite always, PostgreSQL when
`SIYU_TEST_DATABASE_URL` is set), rolled back after each test, and a frozen clock."""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from hypothesis import settings as hypothesis_settings
from playwright.sync_api import expect as playwright_expect
from sqlalchemy import Connection, Engine, make_url, text
from sqlalchemy.orm import Session

import siyu.auth.passwords as passwords
import siyu.tasks  # noqa: F401 - every area's jobs and listeners, registered as the app and workers have them
from siyu.config import Settings
from siyu.db import Database, make_engine
from siyu.kit.clock import FrozenClock
from siyu.migrate import upgrade

# argon2's production cost (64 MiB, three passes: ~0.15 s a hash, as much a check) is the point in
# production and pure waste in a suite that creates and signs in users in a thousand tests; the
# algorithm, the salt and the "$argon2id$" format stay the same.
passwords._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def _share_route_contexts_between_apps() -> None:
    """Build each route's FastAPI request context once per process instead of once per app.

    FastAPI (0.16x) builds an included route's dependant, parameter and response adapters lazily,
    per app, on the first request that walks past it: a console request in a fresh app walks every
    API router first, about half a second of pydantic schema work. The suite builds a fresh app per
    test (each over its own rolled-back transaction and clock), so most console and API tests paid
    it (tests/segments/test_views.py: 33 s, 10 s with this). The routers are module-level objects,
    so the context for (route, inclusion) is the same in every app; what differs is the app as
    `dependency_overrides_provider`, which matters only to `app.dependency_overrides`: an app that
    has overrides when its routes are built gets contexts of its own.
    """
    from fastapi import routing

    context_class = getattr(routing, "_EffectiveRouteContext", None)
    if context_class is None or not hasattr(context_class, "from_api_route"):
        return  # another FastAPI: nothing to share, the suite is only slower
    build = context_class.from_api_route
    built: dict[tuple[object, ...], tuple[object, object]] = {}

    def shared(cls: type, *, original_route: object, include_context: object) -> object:
        ctx = include_context
        if getattr(getattr(ctx, "dependency_overrides_provider", None), "dependency_overrides", None):
            return build(original_route=original_route, include_context=include_context)
        key = (
            id(original_route),
            id(getattr(ctx, "included_router", None)),
            getattr(ctx, "prefix", None),
            repr(getattr(ctx, "tags", None)),
            tuple(id(d) for d in getattr(ctx, "dependencies", ())),
            repr(getattr(ctx, "responses", None)),
            getattr(ctx, "deprecated", None),
            getattr(ctx, "include_in_schema", None),
            getattr(ctx, "max_body_size", None),
        )
        if key not in built:
            # the route is kept with its context, so its id is never reused by another object
            built[key] = (original_route, build(original_route=original_route, include_context=include_context))
        return built[key][1]

    context_class.from_api_route = classmethod(shared)


_share_route_contexts_between_apps()

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


_engines: dict[str, Engine] = {}
_engine_cleanup = ExitStack()


def _migrated_engine(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("db") / "siyu-test.db"
        eng = make_engine(f"sqlite:///{path}")
        _engine_cleanup.callback(eng.dispose)
    else:
        assert PG_URL
        eng = _engine_cleanup.enter_context(_throwaway_postgres(PG_URL))
    upgrade(eng)
    return eng


@pytest.fixture(scope="session", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """A migrated database for the whole run, one per backend.

    Built once per process and kept until the session ends: under `xdist --dist loadfile` pytest
    switches this fixture's parameter at every file (sqlite tests, then postgresql tests, then the
    next file), and tearing the databases down at each switch re-created and re-migrated both
    for every file — most of the suite's time.
    """
    if request.param not in _engines:
        _engines[request.param] = _migrated_engine(request.param, tmp_path_factory)
    return _engines[request.param]


# Files that took 20 s or more in a full run (junit), slowest first. `make test` hands files to its
# two xdist workers in collection order, one at a time as each worker frees up
# (`--no-loadscope-reorder`). xdist's default order (most tests first) ended the run with these
# and the browser files, one worker busy and the other idle; two browser files at once (two
# Chromiums, two consoles, PostgreSQL on two cores) is also when browser timeouts happened.
SLOW_FILES = (
    "tests/campaigns/test_crash.py",
    "tests/bench/test_bench.py",
    "tests/demo/test_community_demo.py",
    "tests/fuzz/test_openapi_schemathesis.py",
    "tests/demo/test_acquisition.py",
    "tests/demo/test_builder.py",
    "tests/ops/test_multiprocess.py",
    "tests/bench/test_cluster_bench.py",
    "tests/demo/test_loyalty_demo.py",
    "tests/segments/test_properties.py",
    "tests/bench/test_wecom_bench.py",
    "tests/security/test_authz_matrix.py",
    "tests/demo/test_touch_demo.py",
    "tests/demo/test_wecom_demo.py",
    "tests/demo/test_analytics_demo.py",
    "tests/demo/test_demo_segments.py",
    "tests/loyalty/points/test_ledger_properties.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order files for the workers: `SLOW_FILES` first, then each browser file followed by an
    ordinary one (so the two workers seldom drive two browsers at once), then the other files.
    Tests keep their order within a file."""
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    slow = [path for path in SLOW_FILES if path in files]
    browser = [path for path in files if "/test_browser" in path and path not in SLOW_FILES]
    other = [path for path in files if path not in slow and path not in browser]
    order = slow[:]
    for index, path in enumerate(browser):
        order.append(path)
        if index < len(other):
            order.append(other[index])
    order += other[len(browser) :]
    items[:] = [item for path in order for item in files[path]]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move everything imported so far (siyu, SQLAlchemy, FastAPI, hypothesis…) out of the garbage
    collector's sight: a full collection then walks only what the tests themselves allocated."""
    gc.collect()
    gc.freeze()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop the run's databases (the throwaway PostgreSQL one, the SQLite file's engine).

    Then freeze the heap: the interpreter's last full collection over a whole run's heap kept each
    xdist worker busy for a minute or two after its last test, for nothing (the process ends)."""
    _engine_cleanup.close()
    _engines.clear()
    gc.freeze()


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
