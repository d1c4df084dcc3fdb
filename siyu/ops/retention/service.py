"""Retention runs: archive old rows of the retained tables to Parquet, then delete them.

One batch = one transaction: select up to `batch_size` archivable rows (lowest ids first),
merge them into their months' files (written, fsync'd, renamed and read back), record each
file in `retention_archives`, and delete exactly those rows. A crash before the commit leaves
the rows in the database and (perhaps) in a file; the next run merges them again by id, so a
file never holds a row twice and no row is deleted that is not in a file that read back.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import Clock
from siyu.models import RetentionArchive
from siyu.ops.retention import repository
from siyu.ops.retention.parquet import merge_write, month_of
from siyu.ops.retention.schemas import RETAINED, RetainedTable, RetentionPolicy, cutoff

DEFAULT_BATCH = 5_000


@dataclass
class TableRun:
    """What a run did (or, dry, would do) to one table of one workspace."""

    workspace_id: int
    table: str
    before: datetime
    rows_by_month: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.rows_by_month.values())


@dataclass
class RetentionReport:
    dry_run: bool
    tables: list[TableRun] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(run.rows for run in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "rows": self.rows,
            "tables": [
                {
                    "workspace_id": run.workspace_id,
                    "table": run.table,
                    "before": run.before.isoformat(),
                    "rows": run.rows,
                    "months": run.rows_by_month,
                }
                for run in self.tables
                if run.rows
            ],
        }


def archive_path(workspace_id: int, table: str, period: str) -> Path:
    """Where a month's rows go, relative to the archive directory."""
    return Path(str(workspace_id)) / table / f"{period}.parquet"


def archive_batch(
    session: Session,
    spec: RetainedTable,
    *,
    workspace_id: int,
    before: datetime,
    archive_dir: Path,
    batch_size: int,
    clock: Clock,
) -> dict[str, int]:
    """Archive and delete one batch of `spec`'s rows older than `before`; rows per month ({} when done).

    Files are written before this returns; the deletes and archive records are flushed, not committed."""
    if session.get_bind().dialect.name == "postgresql":
        # One batch at a time per table and brand, across machines: two batches merging into the
        # same month's file at once would each drop the other's rows. (SQLite: the write lock.)
        key = zlib.crc32(f"siyu.retention:{workspace_id}:{spec.name}".encode())
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    rows = repository.old_rows(session, spec, workspace_id=workspace_id, before=before, limit=batch_size)
    if not rows:
        return {}
    table = repository.table_of(spec)
    months: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        months[month_of(row[spec.time_column])].append(row)
    now = clock.now()
    archived: list[int] = []
    for period, month_rows in sorted(months.items()):
        relative = archive_path(workspace_id, spec.name, period)
        count, digest = merge_write(table, archive_dir / relative, month_rows)
        record = repository.archive_record(session, workspace_id=workspace_id, table_name=spec.name, period=period)
        if record is None:
            record = RetentionArchive(
                workspace_id=workspace_id,
                table_name=spec.name,
                period=period,
                path=relative.as_posix(),
                created_at=now,
            )
            session.add(record)
        record.rows, record.sha256, record.updated_at = count, digest, now
        archived.extend(row["id"] for row in month_rows)
    repository.delete_rows(session, spec, workspace_id=workspace_id, ids=archived)
    session.flush()
    return {period: len(month_rows) for period, month_rows in months.items()}


def run_retention(
    database: Database,
    settings: Settings,
    *,
    clock: Clock,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH,
) -> RetentionReport:
    """Archive every retained table of every workspace, one committed transaction per batch.

    `dry_run` only counts what would be archived: no file, no delete, no record."""
    policy = RetentionPolicy.from_settings(settings)
    report = RetentionReport(dry_run=dry_run)
    now = clock.now()
    kept = [(spec, policy.months[spec.name]) for spec in RETAINED if policy.months[spec.name] > 0]
    if not kept:
        return report
    with database.transaction(read_only=True) as session:
        workspaces = repository.workspace_ids(session)
    for workspace_id in workspaces:
        for spec, months in kept:
            run = TableRun(workspace_id, spec.name, cutoff(now, months))
            report.tables.append(run)
            if dry_run:
                with database.transaction(read_only=True) as session:
                    run.rows_by_month = repository.count_old_by_month(
                        session, spec, workspace_id=workspace_id, before=run.before
                    )
                continue
            while True:
                with database.transaction() as session:
                    done = archive_batch(
                        session,
                        spec,
                        workspace_id=workspace_id,
                        before=run.before,
                        archive_dir=policy.archive_dir,
                        batch_size=batch_size,
                        clock=clock,
                    )
                if not done:
                    break
                for period, rows in done.items():
                    run.rows_by_month[period] = run.rows_by_month.get(period, 0) + rows
    return report
