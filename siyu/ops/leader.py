"""One scheduler leader among many: a PostgreSQL advisory lock, or a file lock on SQLite.

`siyu scheduler` may run on several machines; only the process holding the lock ticks, the
others stand by and retry every `SIYU_SCHEDULER_STANDBY_S`. On PostgreSQL the lock belongs to
one dedicated connection: when the leader dies (even `kill -9`) the server ends its session and
the lock is free for the next stand-by. That connection has client-side TCP keep-alives, a TCP
user timeout and a statement timeout, so a half-open connection is noticed in about 20 s instead of
blocking the leader for the kernel's ~15 minutes. On SQLite (one machine) an exclusive `flock` on a
file in the data directory does the same between processes on that machine; the kernel drops it
with the process. The scheduler's conditional UPDATE per run stays as a second guard for the moment
between a leader losing its lock and noticing it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

logger = logging.getLogger(__name__)

# "siyuschd" as a big-endian int64: one constant key, so every scheduler of an installation
# competes for the same lock (advisory locks are scoped to one database).
SCHEDULER_LOCK_KEY = int.from_bytes(b"siyuschd", "big")
LOCK_FILE = "scheduler.lock"
MIGRATION_LOCK_FILE = "migrate.lock"
# libpq options of the lock's own connection. Keep-alives probe an idle connection after 10 s, then
# every 5 s, 3 times; tcp_user_timeout drops it once sent data stays unacknowledged for 20 s. Without
# them a half-open connection (a machine or network gone) blocks `still_held()` for ~15 minutes,
# while /healthz keeps saying "leader": true and SIGTERM waits.
LOCK_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,
}
LOCK_STATEMENT_TIMEOUT = "5s"


class LeaderLock(Protocol):
    """A lock that at most one process holds at a time."""

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this process now holds it."""
        ...

    def still_held(self) -> bool:
        """True while the lock is still ours (checked before each tick); False once it is lost."""
        ...

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        ...

    def describe(self) -> str:
        """What the lock is, for logs."""
        ...


class PostgresLeaderLock:
    """`pg_try_advisory_lock` on a connection kept open for as long as this process leads.

    The connection is not from the application's pool: it is opened with `LOCK_CONNECT_ARGS`
    (keep-alives, TCP user timeout) and a 5 s statement timeout, and closed when the lock goes.
    """

    def __init__(self, engine: Engine, *, key: int = SCHEDULER_LOCK_KEY) -> None:
        self.engine = create_engine(engine.url, poolclass=NullPool, connect_args=LOCK_CONNECT_ARGS)
        self.key = key
        self._connection: Connection | None = None

    def try_acquire(self) -> bool:
        if self._connection is not None:
            return self.still_held()
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            connection.execute(text(f"SET statement_timeout = '{LOCK_STATEMENT_TIMEOUT}'"))
            taken = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar())
        except Exception:
            _close_quietly(connection)
            raise
        if not taken:
            connection.close()
            return False
        self._connection = connection
        return True

    def still_held(self) -> bool:
        if self._connection is None:
            return False
        try:
            # Asks the server, on the lock's own session, whether that session still holds it.
            held = self._connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = :key"
                ),
                {"key": self.key},
            ).scalar()
        except Exception:
            logger.warning("scheduler lock connection lost", exc_info=True)
            self._drop()
            return False
        if not held:
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except Exception:
            logger.warning("scheduler lock release failed", exc_info=True)
        self._drop()

    def describe(self) -> str:
        return f"postgresql advisory lock {self.key}"

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # A broken connection must not go back to the pool holding (or pretending to hold) the lock.
            with suppress(Exception):
                connection.invalidate()
            _close_quietly(connection)


class FileLeaderLock:
    """An exclusive `flock` on a file: one leader among the processes of one machine.

    The lock belongs to the file the path named when it was taken. If that file is deleted or
    replaced, another process can lock the new one, so `still_held()` also checks that the path
    still names the locked file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def try_acquire(self) -> bool:
        if self._handle is not None:
            return self.still_held()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        if not _names_file(self.path, handle.fileno()):
            # Replaced between open and flock: this lock guards nothing; try again next time.
            _unlock_and_close(handle)
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")  # who leads, for a person looking
        handle.flush()
        self._handle = handle
        return True

    def still_held(self) -> bool:
        if self._handle is None or self._handle.closed:
            return False
        if _names_file(self.path, self._handle.fileno()):
            return True
        logger.warning("scheduler lock file deleted or replaced", extra={"path": str(self.path)})
        self.release()
        return False

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            _unlock_and_close(handle)

    def describe(self) -> str:
        return f"file lock {self.path}"


def leader_lock_for(engine: Engine, data_dir: Path) -> LeaderLock:
    """The right lock for the database behind `engine`."""
    if engine.dialect.name == "postgresql":
        return PostgresLeaderLock(engine)
    return FileLeaderLock(data_dir / LOCK_FILE)


def _names_file(path: Path, fd: int) -> bool:
    """True when `path` still names the open file `fd` (not deleted, not replaced)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _unlock_and_close(handle: IO[str]) -> None:
    with suppress(OSError):
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    handle.close()


def _close_quietly(connection: Any) -> None:
    with suppress(Exception):
        connection.close()


MIGRATION_LOCK_KEY = int.from_bytes(b"siyumigr", "big")
MIGRATION_LOCK_TIMEOUT_S = 600.0


class MigrationLockTimeout(RuntimeError):
    """Another process held the migration lock for longer than we were willing to wait."""


@contextmanager
def migration_lock(
    engine: Engine,
    data_dir: Path,
    *,
    timeout_s: float = MIGRATION_LOCK_TIMEOUT_S,
    poll_s: float = 0.5,
    key: int = MIGRATION_LOCK_KEY,
) -> Iterator[None]:
    """Hold the migration lock while migrating, so two processes started at once (two
    `siyu serve` without `--no-migrate`, or a release step run twice) migrate one after the other.

    PostgreSQL: a session advisory lock. SQLite: an exclusive `flock` on `data_dir/migrate.lock`
    (alembic runs SQLite DDL outside a transaction, so SQLite's own file lock does not serialise
    two migrations). Waits at most `timeout_s`, then raises `MigrationLockTimeout`: a stuck
    migration elsewhere gives a clear error instead of a process hanging forever.
    """
    deadline = time.monotonic() + timeout_s
    if engine.dialect.name != "postgresql":
        with _migration_file_lock(data_dir / MIGRATION_LOCK_FILE, deadline, timeout_s, poll_s):
            yield
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        while not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
            if time.monotonic() >= deadline:
                raise MigrationLockTimeout(
                    f"another process has held the migration lock (PostgreSQL advisory lock {key}) for over "
                    f"{timeout_s:g} s; is a migration stuck? see pg_locks WHERE locktype = 'advisory'"
                )
            time.sleep(poll_s)
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


@contextmanager
def _migration_file_lock(path: Path, deadline: float, timeout_s: float, poll_s: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise MigrationLockTimeout(
                        f"another process has held the migration lock {path} for over {timeout_s:g} s; "
                        "is a migration stuck?"
                    ) from None
                time.sleep(poll_s)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
