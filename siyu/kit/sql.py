"""Small SQL helpers that read the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_or_ignore(session: Session, model: Any, values: dict[str, Any], conflict_columns: Sequence[str]) -> bool:
    """Insert one row unless it collides on `conflict_columns`' unique constraint; True if inserted.

    Concurrent callers race on the unique index, not on a prior SELECT, so exactly one wins.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = model.__table__
    statement = (
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(conflict_columns))
        .returning(*table.primary_key.columns)
    )
    # A row comes back only when it was inserted. Not `rowcount`: PostgreSQL INSERTs carry an
    # implicit RETURNING for the primary key, and their rowcount is not reported reliably.
    return session.connection().execute(statement).first() is not None
