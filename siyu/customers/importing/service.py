"""The import engine: validate rows, resolve identities in bulk, write in batches.

Each batch of rows runs in one transaction (one savepoint per batch in a dry run, rolled back
at the end), so a crash leaves whole rows or none. Within a batch, rows that share an
identity (duplicates in the file) are applied to the same customer in file order; rows whose
identities are new are inserted in bulk; rows matching one known customer update it under
survivorship; rows matching several merge them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.customers.importing.mapping import guess_mapping
from siyu.customers.importing.reader import SourceFile, iter_rows, open_source
from siyu.customers.importing.report import ImportOptions, ImportReport
from siyu.customers.importing.rows import ParsedRow, RowContext, RowError, parse_row
from siyu.customers.importing.writer import BatchWriter
from siyu.customers.service.definitions import attribute_definitions, identity_types
from siyu.db import refresh_planner_statistics
from siyu.kit.clock import Clock
from siyu.ops.collectors import count_import_rows

logger = logging.getLogger(__name__)

POOL_TABLES = ("customers", "identities", "customer_tags")
STATISTICS_FIRST_REFRESH = 10_000
"""Rows created before the planner statistics are first refreshed during an import."""

Transaction = Callable[[], AbstractContextManager[Session]]
ProgressFn = Callable[[int, int | None], None]


def preview(
    session: Session, *, actor: Actor, path: Path, encoding: str | None = None, sample_rows: int = 5
) -> dict[str, Any]:
    """Headers, guessed mapping and a few rows, for the mapping step of the console."""
    source = open_source(path, encoding=encoding)
    attributes = attribute_definitions(session, actor.workspace_id)
    # Only a guess here: the operator picks the identity column in the mapping step if none was recognised.
    mapping = guess_mapping(
        source.headers, identity_types(session, actor.workspace_id), {k: d.label for k, d in attributes.items()}
    )
    rows = [cells for _, cells, _ in islice(iter_rows(source), sample_rows) if cells is not None]
    return {
        "kind": source.kind,
        "encoding": source.encoding,
        "headers": source.headers,
        "mapping": mapping,
        "rows": rows,
        "total_rows": source.total_rows,
    }


def _batches(items: Iterator[tuple[int, list[Any] | None, str | None]], size: int) -> Iterator[list[Any]]:
    while batch := list(islice(items, size)):
        yield batch


def run_import(
    transaction: Transaction,
    *,
    actor: Actor,
    path: Path,
    options: ImportOptions,
    clock: Clock,
    progress: ProgressFn | None = None,
    phone_region: str = "CN",
) -> ImportReport:
    """Import a file. `transaction()` opens a session bound to the actor's workspace that commits
    when its block ends; each batch gets one (a dry run uses one for everything and rolls back).
    """
    actor.require(Scope.IMPORT_RUN)
    actor.require(Scope.CUSTOMERS_WRITE)
    report = ImportReport(dry_run=options.dry_run)
    source = open_source(path, encoding=options.encoding)
    report.file_kind, report.encoding = source.kind, source.encoding
    with transaction() as session:
        importer = BatchWriter(session, actor, options, clock)
        ctx = importer.context(session, source, report, phone_region)
    if progress:
        progress(0, source.total_rows)
    if options.dry_run:
        # One transaction for the whole dry run, so duplicates across batches count exactly as in a
        # real run. SQLite allows one writer: progress written from another transaction would wait
        # for this one, so there it is reported when the dry run ends.
        with transaction() as session:
            on_sqlite = session.get_bind().dialect.name == "sqlite"
            with session.begin_nested() as savepoint:
                _process(session, importer, ctx, source, report, options, None if on_sqlite else progress)
                savepoint.rollback()
            _audit(session, actor, report, path, clock)
        if progress:
            progress(report.rows, source.total_rows)
        return report
    analyzed_at = 0
    for batch in _batches(iter_rows(source), options.batch_size):
        before = (report.created, report.merged, report.updated, report.rejected)
        with transaction() as session:
            _process_batch(session, importer, ctx, batch, report)
            if report.created >= max(STATISTICS_FIRST_REFRESH, 2 * analyzed_at):
                # The pool doubled since the planner last looked: with statistics of a small
                # table it would answer the per-batch lookups by scanning, and the import would
                # slow down as the pool grows. A handful of sampled ANALYZEs keep it on the indexes.
                refresh_planner_statistics(session, POOL_TABLES)
                analyzed_at = report.created
        # Counted once the batch's transaction has committed: a batch that rolled back counts nothing.
        count_import_rows(before, (report.created, report.merged, report.updated, report.rejected))
        if progress:
            progress(report.rows, source.total_rows)
    with transaction() as session:
        _audit(session, actor, report, path, clock)
        if report.created:
            refresh_planner_statistics(session, POOL_TABLES)
    return report


def _process(
    session: Session,
    importer: BatchWriter,
    ctx: RowContext,
    source: SourceFile,
    report: ImportReport,
    options: ImportOptions,
    progress: ProgressFn | None,
) -> None:
    for batch in _batches(iter_rows(source), options.batch_size):
        _process_batch(session, importer, ctx, batch, report)
        if progress:
            progress(report.rows, source.total_rows)


def _process_batch(
    session: Session, importer: BatchWriter, ctx: RowContext, batch: list[Any], report: ImportReport
) -> None:
    parsed: list[ParsedRow] = []
    for line, cells, problem in batch:
        report.rows += 1
        if cells is None:
            report.reject(line, "", problem or "unreadable row")
            continue
        try:
            parsed.append(parse_row(line, cells, ctx))
        except RowError as exc:
            report.reject(line, exc.column, exc.reason)
    if not parsed:
        return
    counts = (report.created, report.merged, report.updated, report.rejected, len(report.rejections))
    try:
        with session.begin_nested():
            importer.apply_batch(session, parsed, report)
    except IntegrityError:
        # Another writer created one of these identities meanwhile: redo the batch row by row,
        # so each row either lands whole or is rejected with the reason.
        (report.created, report.merged, report.updated, report.rejected) = counts[:4]
        del report.rejections[counts[4] :]
        for row in parsed:
            try:
                with session.begin_nested():
                    importer.apply_batch(session, [row], report)
            except IntegrityError as exc:
                report.reject(row.line, "", f"conflicting concurrent write: {exc.orig}")


def _audit(session: Session, actor: Actor, report: ImportReport, path: Path, clock: Clock) -> None:
    summary = {k: v for k, v in report.as_dict().items() if k != "rejections"}
    record(
        session,
        actor,
        action="import",
        entity_type="customer_import",
        entity_id=None,
        after=summary | {"file": path.name},
        clock=clock,
    )


__all__ = ["ImportOptions", "ImportReport", "preview", "run_import"]
