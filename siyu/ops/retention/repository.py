"""Queries of retention: old rows of a retained table, their deletion, and the archive records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, func, select
from sqlalchemy.orm import Session

from siyu.models import Base, RetentionArchive, Workspace
from siyu.ops.retention.schemas import RetainedTable


def table_of(spec: RetainedTable) -> Table:
    return Base.metadata.tables[spec.name]


def _old(spec: RetainedTable, workspace_id: int, before: datetime) -> list[ColumnElement[bool]]:
    table = table_of(spec)
    conditions = [table.c.workspace_id == workspace_id, table.c[spec.time_column] < before]
    if spec.only is not None:
        conditions.append(spec.only(table))
    return conditions


def old_rows(
    session: Session, spec: RetainedTable, *, workspace_id: int, before: datetime, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` archivable rows, lowest ids first, locked against concurrent change (PostgreSQL)."""
    table = table_of(spec)
    query = select(table).where(*_old(spec, workspace_id, before)).order_by(table.c.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [dict(row) for row in session.execute(query).mappings()]


def count_old_by_month(session: Session, spec: RetainedTable, *, workspace_id: int, before: datetime) -> dict[str, int]:
    """Archivable rows per UTC month ("YYYY-MM"), counted in the database."""
    table = table_of(spec)
    column = table.c[spec.time_column]
    if session.get_bind().dialect.name == "postgresql":
        month = func.to_char(func.timezone("UTC", column), "YYYY-MM")
    else:  # SQLite stores UTC text
        month = func.strftime("%Y-%m", column)
    query = select(month, func.count()).where(*_old(spec, workspace_id, before)).group_by(month).order_by(month)
    return {str(period): int(rows) for period, rows in session.execute(query).all()}


def delete_rows(session: Session, spec: RetainedTable, *, workspace_id: int, ids: Sequence[int]) -> int:
    """Delete exactly the rows `ids` (already in a verified archive file)."""
    table = table_of(spec)
    result = session.execute(delete(table).where(table.c.workspace_id == workspace_id, table.c.id.in_(ids)))
    return int(result.rowcount)  # type: ignore[attr-defined]


def workspace_ids(session: Session) -> list[int]:
    return list(session.scalars(select(Workspace.id).order_by(Workspace.id)))


def archive_record(session: Session, *, workspace_id: int, table_name: str, period: str) -> RetentionArchive | None:
    return session.scalar(
        select(RetentionArchive).where(
            RetentionArchive.workspace_id == workspace_id,
            RetentionArchive.table_name == table_name,
            RetentionArchive.period == period,
        )
    )


def archives(session: Session, *, workspace_id: int | None = None) -> list[RetentionArchive]:
    query = select(RetentionArchive).order_by(
        RetentionArchive.workspace_id, RetentionArchive.table_name, RetentionArchive.period
    )
    if workspace_id is not None:
        query = query.where(RetentionArchive.workspace_id == workspace_id)
    return list(session.scalars(query))


def archived_rows(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(RetentionArchive.rows), 0))) or 0)
