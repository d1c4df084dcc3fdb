"""Liveness (`/healthz`) and readiness (`/readyz`) for load balancers and orchestrators.

`/healthz` says the process is up and answering; it touches nothing else, so a slow database
never gets healthy processes restarted. `/readyz` says the process can do its work: the
database answers, its schema is at (or, during a rolling deploy, past) the migration head this
code expects, and the broker answers when one is configured. A failing check gives 503 with JSON
naming it.

`siyu serve` answers both on its own port; `siyu worker` and `siyu scheduler` answer them on
`SIYU_HEALTH_PORT` through `HealthServer`, a small threaded HTTP server (Kubernetes probes).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, inspect, text

from siyu import __version__
from siyu.config import Settings
from siyu.db import Database, read_only_engine

logger = logging.getLogger(__name__)
router = APIRouter(tags=["ops"])

OK = "ok"
AHEAD = "ok (ahead)"
"""The migrations check when the database is newer than this code (passes: expand/contract)."""
PASSING = (OK, "in-process")
Extra = Callable[[], dict[str, Any]]
"""More fields for a health body (the scheduler adds whether it leads)."""


@lru_cache
def _scripts() -> ScriptDirectory:
    from siyu.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def migration_heads() -> frozenset[str]:
    """The migration heads this code expects (read once: the scripts do not change at run time)."""
    return frozenset(_scripts().get_heads())


def _database_revisions(connection: Connection) -> frozenset[str]:
    # A plain SELECT, not alembic's MigrationContext, which logs two INFO lines on every probe.
    if not inspect(connection).has_table("alembic_version"):
        return frozenset()
    return frozenset(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _is_ahead(current: frozenset[str], expected: frozenset[str]) -> bool:
    """True when the database was migrated past this code: a revision this code does not know
    (a newer release ran `siyu migrate`), or every expected head is an ancestor of the current ones."""
    scripts = _scripts()
    reached: set[str] = set()
    for revision in current:
        try:
            known = scripts.get_revision(revision)
        except CommandError:
            return True
        if known is None:
            return True
        reached.update(script.revision for script in scripts.iterate_revisions(revision, "base"))
    return bool(current) and expected <= reached


def _check_database(database: Database) -> tuple[str, str]:
    try:
        with read_only_engine(database.engine).connect() as connection:
            connection.execute(text("SELECT 1"))
            current = _database_revisions(connection)
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}", "unknown"
    try:
        # Inside the try: an install without its migration scripts must give a 503 naming the
        # check, not a 500 on every probe.
        expected = migration_heads()
        if current == expected:
            return OK, OK
        shown = f"at {','.join(sorted(current)) or 'none'}, expected {','.join(sorted(expected))}"
        # Old code on a newer schema is the normal state during a rolling deploy: still ready.
        return OK, (f"{AHEAD}: {shown}" if _is_ahead(current, expected) else shown)
    except Exception as exc:
        logger.warning("migration check failed", exc_info=True)
        return OK, f"unknown: {type(exc).__name__}"


def _check_broker(url: str | None) -> str:
    if not url:
        return "in-process"
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
    return OK


def readiness(database: Database, settings: Settings) -> tuple[bool, dict[str, Any]]:
    """Check the database, the migration head and the broker; returns (ready, JSON body). A database
    ahead of the code passes (`ok (ahead): …`); one behind it fails."""
    database_check, migrations_check = _check_database(database)
    checks = {"database": database_check, "migrations": migrations_check, "broker": _check_broker(settings.broker_url)}
    failed = [name for name, result in checks.items() if result not in PASSING and not result.startswith(AHEAD)]
    body: dict[str, Any] = {"status": "error" if failed else OK, "version": __version__, "checks": checks}
    if failed:
        body["failed"] = failed
    return not failed, body


def liveness() -> dict[str, Any]:
    """The liveness body: the process answers."""
    return {"status": OK, "version": __version__}


@router.get("/healthz")
def healthz() -> dict[str, Any]:
    """Liveness: the process is up. No database call (restarting for a slow database helps nobody)."""
    return liveness()


@router.get(
    "/readyz",
    responses={
        503: {"description": "Not ready: `failed` names the checks that failed.", "content": {"application/json": {}}}
    },
)
def readyz(request: Request) -> JSONResponse:
    """Readiness: database reachable, migrations at or past this code's head, broker reachable when
    configured; else 503."""
    ready, body = readiness(request.app.state.database, request.app.state.settings)
    return JSONResponse(body, status_code=200 if ready else 503)


class HealthServer:
    """`/healthz` and `/readyz` over plain HTTP for processes without the web app (worker, scheduler).

    `is_stopping` turns readiness off while the process shuts down; `extra` adds fields to both bodies.
    """

    def __init__(
        self, database: Database, settings: Settings, *, host: str, port: int, extra: Extra | None = None
    ) -> None:
        self.database, self.settings, self.extra = database, settings, extra
        self.is_stopping = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = server.answer(self.path.split("?", 1)[0])
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return  # probes come every few seconds: not logged

        self._http = ThreadingHTTPServer((host, port), Handler)
        self._http.daemon_threads = True
        self.port = int(self._http.server_address[1])
        self._thread: threading.Thread | None = None

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        """Status code and body for a probe of `path`."""
        extra = self.extra() if self.extra else {}
        if path == "/healthz":
            return 200, liveness() | extra
        if path == "/readyz":
            if self.is_stopping:
                return 503, {"status": "error", "failed": ["shutting_down"], "checks": {"process": "shutting down"}}
            ready, body = readiness(self.database, self.settings)
            return (200 if ready else 503), body | extra
        return 404, {"status": "error", "failed": ["path"]}

    def start(self) -> HealthServer:
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True, name="siyu-health")
        self._thread.start()
        logger.info("health server listening", extra={"port": self.port})
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
