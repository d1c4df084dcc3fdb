"""Liveness and readiness: /healthz never touches the database; /readyz names what is not ready."""

from __future__ import annotations

import json
import logging
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from siyu import __version__, migrate
from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database, make_engine, set_database
from siyu.ops import health
from siyu.ops.health import HealthServer, _scripts, migration_heads, readiness

HEAD = ",".join(sorted(migration_heads()))
READY = {"database": "ok", "migrations": "ok", "broker": "in-process"}


def _settings(tmp: Path, **changes: Any) -> Settings:
    base = Settings(database_url="sqlite://", data_dir=tmp, secret_key="t", log_json=False)
    return base.model_copy(update=changes)


@pytest.fixture(scope="module")
def client(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = _settings(tmp_path_factory.mktemp("health"))
    app = create_app(settings, database=Database(settings, engine=engine), run_worker=False)
    with TestClient(app) as c:
        yield c
    set_database(None)


def test_healthz_answers_without_the_database(client: TestClient, tmp_path: Path) -> None:
    # an app whose database does not exist at all is still alive, but not ready
    nowhere = _settings(tmp_path, database_url="postgresql://nobody@127.0.0.1:1/none")
    state = client.app.state  # type: ignore[attr-defined]
    reachable, state.database = state.database, Database(nowhere)
    try:
        live = client.get("/healthz")
        ready = client.get("/readyz")
    finally:
        state.database.engine.dispose()
        state.database = reachable
    assert (live.status_code, live.json()) == (200, {"status": "ok", "version": __version__})
    assert (ready.status_code, ready.json()["failed"], ready.json()["checks"]["database"]) == (
        503,
        ["database", "migrations"],
        "unreachable: OperationalError",
    )


def test_readyz_is_ok_on_a_migrated_database(client: TestClient) -> None:
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "version": __version__, "checks": READY})


def test_readyz_names_migrations_behind_the_code(tmp_path: Path) -> None:
    empty = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        ready, body = readiness(Database(_settings(tmp_path), engine=empty), _settings(tmp_path))
    finally:
        empty.dispose()
    assert (ready, body["failed"], body["checks"]["migrations"]) == (
        False,
        ["migrations"],
        f"at none, expected {HEAD}",
    )


def _at_revisions(tmp_path: Path, *revisions: str) -> Engine:
    """A SQLite database whose alembic_version says it is at `revisions` (all the check reads)."""
    path = tmp_path / f"at-{'-'.join(revisions)}.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        connection.executemany("INSERT INTO alembic_version VALUES (?)", [(r,) for r in revisions])
    connection.close()
    return make_engine(f"sqlite:///{path}")


def _readiness_at(tmp_path: Path, *revisions: str) -> tuple[bool, dict[str, Any]]:
    engine = _at_revisions(tmp_path, *revisions)
    try:
        return readiness(Database(_settings(tmp_path), engine=engine), _settings(tmp_path))
    finally:
        engine.dispose()


PREVIOUS = _scripts().get_revision(HEAD).down_revision


def test_readyz_fails_on_a_database_one_migration_behind(tmp_path: Path) -> None:
    assert isinstance(PREVIOUS, str)
    ready, body = _readiness_at(tmp_path, PREVIOUS)
    assert (ready, body["failed"], body["checks"]["migrations"]) == (
        False,
        ["migrations"],
        f"at {PREVIOUS}, expected {HEAD}",
    )


def test_readyz_stays_ready_on_a_database_migrated_past_the_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a newer release migrated to a revision this code has never heard of (rolling deploy)
    ready, body = _readiness_at(tmp_path, "fffffffff999")
    assert (ready, body["status"], body["checks"]["migrations"]) == (
        True,
        "ok",
        f"ok (ahead): at fffffffff999, expected {HEAD}",
    )
    # old code whose head is an ancestor of the database's revision
    assert isinstance(PREVIOUS, str)
    monkeypatch.setattr(health, "migration_heads", lambda: frozenset({PREVIOUS}))
    ready, body = _readiness_at(tmp_path, HEAD)
    assert (ready, body["checks"]["migrations"]) == (True, f"ok (ahead): at {HEAD}, expected {PREVIOUS}")


def test_readyz_names_missing_migration_scripts_without_a_500(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # siyu installed as a plain wheel: migrations/ is not beside the package
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path / "missing")
    health._scripts.cache_clear()
    try:
        ready = client.get("/readyz")
    finally:
        health._scripts.cache_clear()
    assert (ready.status_code, ready.json()["failed"], ready.json()["checks"]) == (
        503,
        ["migrations"],
        {"database": "ok", "migrations": "unknown: MigrationsMissing", "broker": "in-process"},
    )


def test_a_readiness_probe_logs_nothing(engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = _settings(tmp_path)
    with caplog.at_level(logging.DEBUG):
        ready, _body = readiness(Database(settings, engine=engine), settings)
    assert (ready, [(r.name, r.getMessage()) for r in caplog.records]) == (True, [])


def test_readyz_names_an_unreachable_broker(engine: Engine, tmp_path: Path) -> None:
    settings = _settings(tmp_path, broker_url="redis://127.0.0.1:1/0")
    ready, body = readiness(Database(settings, engine=engine), settings)
    assert (ready, body["failed"], body["checks"]["broker"]) == (False, ["broker"], "unreachable: ConnectionError")


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_worker_health_server_answers_probes(engine: Engine, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    server = HealthServer(
        Database(settings, engine=engine), settings, host="127.0.0.1", port=0, extra=lambda: {"leader": True}
    ).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert _get(base + "/healthz") == (200, {"status": "ok", "version": __version__, "leader": True})
        assert _get(base + "/readyz") == (
            200,
            {"status": "ok", "version": __version__, "checks": READY, "leader": True},
        )
        assert _get(base + "/nope")[0] == 404
        # while shutting down it is alive but no longer ready
        server.is_stopping = True
        assert _get(base + "/healthz")[0] == 200
        assert _get(base + "/readyz") == (
            503,
            {"status": "error", "failed": ["shutting_down"], "checks": {"process": "shutting down"}},
        )
    finally:
        server.stop()
