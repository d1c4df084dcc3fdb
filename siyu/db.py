"""Engine and session handling for SQLite (embedded) and PostgreSQL (production).

SQLite: WAL journal, foreign keys on, and every transaction that may write starts with
`BEGIN IMMEDIATE`, so two writers serialise on the database lock at the start of their
transactions instead of failing half-way with "database is locked". Read-only sessions
(`read_only=True`) begin deferred and never wait for writers.

Within one process, writers first queue on a lock of the engine and only then take SQLite's
lock: SQLite's own busy handler polls with sleeps of up to 100 ms, which turned a burst of
concurrent scans into second-long tails; a queue hands the lock over as soon as it is free.
Other processes (a CLI import beside the server) still meet at SQLite's lock and wait there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from siyu.config import Settings, get_settings

_BEGIN_OPTION = "siyu_sqlite_begin"
_HOLDS_WRITER = "siyu_holds_writer"


def make_engine(url: str, *, busy_timeout_ms: int = 30_000, echo: bool = False, pool_size: int = 10) -> Engine:
    """Create an engine configured for siyu's rules on either database (`pool_size`: PostgreSQL
    connections kept open; 20 more may open under load)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            hide_parameters=True,  # bound values are personal data: keep them out of logs and job errors
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        )
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, echo=echo, hide_parameters=True, pool_pre_ping=True, pool_size=pool_size, max_overflow=20)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    # A plain Lock, not an RLock: FastAPI may end a request's transaction on another thread
    # than the one that began it. A thread that nests two write transactions (a bug) times
    # out here just as it would on SQLite's lock.
    writer = threading.Lock()
    timeout = busy_timeout_ms / 1000

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        if mode == "IMMEDIATE":
            if not writer.acquire(timeout=timeout):
                raise TimeoutError("timed out waiting for the database write lock")
            conn.info[_HOLDS_WRITER] = True
        try:
            conn.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            _release(conn)
            raise

    def _release(conn: Connection) -> None:
        if conn.info.pop(_HOLDS_WRITER, False):
            writer.release()

    event.listen(engine, "commit", _release)
    event.listen(engine, "rollback", _release)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        # A connection returned to the pool without commit or rollback (closed mid-transaction).
        if record.info.pop(_HOLDS_WRITER, False):
            writer.release()


def read_only_engine(engine: Engine) -> Engine:
    """A view of `engine` whose SQLite transactions begin deferred (no write lock)."""
    if engine.dialect.name != "sqlite":
        return engine
    return engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"})


class Database:
    """The process's engine and session factories."""

    def __init__(self, settings: Settings | None = None, *, engine: Engine | None = None) -> None:
        self.settings = settings or get_settings()
        self.engine = engine or make_engine(
            self.settings.database_url, busy_timeout_ms=self.settings.sqlite_busy_timeout_ms
        )
        self._write = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._read = sessionmaker(bind=read_only_engine(self.engine), expire_on_commit=False)

    def session(self, *, read_only: bool = False) -> Session:
        return (self._read if read_only else self._write)()

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Session]:
        """A session that commits when the block ends normally and rolls back on error."""
        session = self.session(read_only=read_only)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"


_database: Database | None = None


def get_database() -> Database:
    """The process-wide database (created lazily from settings)."""
    global _database
    if _database is None:
        _database = Database()
    return _database


def set_database(database: Database | None) -> None:
    """Replace the process-wide database (the app factory and tests use this)."""
    global _database
    _database = database


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once `session`'s transaction commits (dropped on rollback).

    Used to enqueue background jobs only after the rows they read are visible.
    """
    callbacks: list[Callable[[], None]] = session.info.setdefault("after_commit", [])
    callbacks.append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    callbacks = session.info.pop("after_commit", [])
    for callback in callbacks:
        callback()


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_commit(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:  # the outermost transaction rolled back
        session.info.pop("after_commit", None)


def refresh_planner_statistics(session: Session, tables: tuple[str, ...]) -> None:
    """Update the query planner's statistics after a bulk load (imports, the demo builder).

    Without them SQLite guesses every index equally selective and may scan a whole brand; a
    bounded `analysis_limit` keeps this to a fraction of a second even on a million rows.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("PRAGMA analysis_limit=1000"))
        for table in tables:
            session.execute(text(f"ANALYZE {table}"))
    else:
        session.execute(text(f"ANALYZE {', '.join(tables)}"))
