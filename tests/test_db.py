"""SQLite write transactions really serialise: concurrent read-modify-write loses nothing."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from siyu.config import Settings
from siyu.db import Database


def test_concurrent_increments_on_sqlite_are_not_lost(tmp_path: Path) -> None:
    database = Database(Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}"))
    with database.transaction() as session:
        session.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        session.execute(text("INSERT INTO counter VALUES (0)"))
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                with database.transaction() as session:
                    value = session.execute(text("SELECT n FROM counter")).scalar_one()
                    session.execute(text("UPDATE counter SET n = :n"), {"n": value + 1})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with database.session(read_only=True) as session:
        assert session.execute(text("SELECT n FROM counter")).scalar_one() == 200
        assert session.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert session.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    database.engine.dispose()
