"""Helpers for concurrency tests that make real commits from several threads.

The usual `database` fixture (in conftest) joins every session to one transaction that is rolled
back, so two threads cannot race on it. A concurrency test module imports `committed_database`
instead, which overrides `database` for that module:

    from tests.concurrency import committed_database, run_together  # noqa: F401 - fixture `database`

Every session of that `Database` has its own connection and commits for real; the workspaces a
test makes are deleted after it (with their rows, through the foreign keys' ON DELETE CASCADE).
A module that needs more cleanup, or a different fixture, builds one on `committing`.

`run_together` starts every job on its own thread at the same instant (behind a barrier) and
returns the errors they raised; `outcome_names` returns what each job came to, for races in which
some jobs are expected to lose.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from siyu.config import Settings
from siyu.db import Database
from siyu.models import Workspace

Cleanup = Callable[[Session, set[int]], None]
"""Extra deletions before the test's workspaces go: called with the session and the workspace ids
that existed before the test."""


@contextmanager
def committing(engine: Engine, *, cleanup: Cleanup | None = None) -> Iterator[Database]:
    """A `Database` on `engine` whose transactions commit; the workspaces made inside are deleted after.

    `cleanup`, if given, runs first in the same transaction (for rows that SQLite would not cascade,
    or rows outside any new workspace)."""
    database = Database(Settings(database_url="sqlite://"), engine=engine)
    with database.session() as session:
        before = set(session.scalars(select(Workspace.id)))
    yield database
    with database.transaction() as session:
        if cleanup is not None:
            cleanup(session, before)
        session.execute(delete(Workspace).where(Workspace.id.not_in(before)))


@pytest.fixture(name="database")
def committed_database(engine: Engine) -> Iterator[Database]:
    """Real commits on the shared test database; the workspaces made here are deleted after."""
    with committing(engine) as database:
        yield database


def _run(jobs: Sequence[Callable[[], Any]], timeout: float | None) -> list[tuple[Any, Exception | None]]:
    """Each job on its own thread, all released at once; (returned value, raised exception) in order of finishing."""
    results: list[tuple[Any, Exception | None]] = []
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results.append((job(), None))
        except Exception as exc:  # collected and returned to the test
            results.append((None, exc))

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results


def run_together(jobs: Sequence[Callable[[], object]], *, timeout: float | None = None) -> list[str]:
    """Start every job at the same instant on its own thread; the errors they raised, as `repr` strings.

    `timeout` bounds the wait for each thread (a thread still running after it is left behind)."""
    return [repr(exc) for _, exc in _run(jobs, timeout) if exc is not None]


def outcome_names(jobs: Sequence[Callable[[], object]], *, success: str | None = None) -> list[Any]:
    """Start every job at the same instant on its own thread; what each came to, in order of finishing:
    its return value (or `success`, when given), or the class name of the exception it raised."""
    return [
        type(exc).__name__ if exc is not None else (value if success is None else success)
        for value, exc in _run(jobs, None)
    ]
