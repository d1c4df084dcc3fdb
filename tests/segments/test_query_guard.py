"""Segment queries on PostgreSQL run under a statement timeout; running over is a clear 422."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from siyu.segments import query


def test_guard_sets_the_timeout_and_work_memory_for_the_transaction(db: Session) -> None:
    query.guard(db, timeout_s=12.5)
    if db.get_bind().dialect.name != "postgresql":
        return  # SQLite has no statement timeout; its queries are bounded by the definition limits
    assert db.execute(text("SHOW statement_timeout")).scalar_one() == "12500ms"
    assert db.execute(text("SHOW work_mem")).scalar_one() == "64MB"


def test_a_query_running_over_the_timeout_is_a_422(db: Session) -> None:
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("statement timeouts are a PostgreSQL feature")
    savepoint = db.begin_nested()
    try:
        query.guard(db, timeout_s=0.05)
        with pytest.raises(query.SegmentQueryTimeout) as caught:
            query.execute(db, text("SELECT pg_sleep(2)"))
    finally:
        savepoint.rollback()  # the failed statement aborted the savepoint
    assert caught.value.status_code == 422
    assert caught.value.code == "segment_timeout"
    assert caught.value.details == {"field": "definition"}
