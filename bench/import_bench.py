"""`siyu bench import`: the customer importer against a raw bulk insert of the same rows.

The file (姓名,手机,淘宝ID,京东ID,标签; three identities a row, every 20th row a duplicate of an
earlier customer bringing one new JD id) is streamed to disk. The baseline runs first, into
its own workspace of the same database: the same customers, identities and tags, already
normalised, written with Core `executemany` inserts in the importer's batch size, one
transaction per batch. Then the importer (`run_import`, a system actor, one transaction per
batch) imports the file into a fresh workspace; its peak memory is the RSS growth while it runs.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench import data
from bench.harness import Reporter, bench_database, new_workspace, peak_memory, result_row, size_rows, timed
from bench.raw import create_tags, raw_insert
from siyu.auth.permissions import Actor
from siyu.customers.importing.report import BATCH_SIZE, ImportOptions
from siyu.customers.importing.service import run_import
from siyu.kit.clock import system_clock
from siyu.models import Customer, Identity
from siyu.workspaces.scope import bind_workspace


class BenchFailed(RuntimeError):
    """The importer did not produce what the bench expects (a correctness failure, not a slow run)."""


def run(*, size: str, database_url: str | None, reporter: Reporter) -> dict[str, Any]:
    """Generate the file, run the baseline and the importer; return the bench result."""
    count = size_rows(size)
    directory = Path(tempfile.mkdtemp(prefix="siyu-bench-import-"))
    try:
        with bench_database(database_url) as database:
            engine = database.engine
            path = directory / "customers.csv"
            reporter.step(f"writing {count:,} rows to {path.name}")
            file_bytes = data.write_csv(path, count)

            reporter.step(f"baseline: raw bulk insert into {database.label}")
            raw_workspace = new_workspace(engine, "bench-raw")
            with timed() as baseline:
                now = system_clock.now()
                tag_ids = create_tags(engine, raw_workspace, now)
                raw = raw_insert(
                    engine,
                    workspace_id=raw_workspace,
                    rows=data.rows(count),
                    count=count,
                    batch_size=BATCH_SIZE,
                    now=now,
                    tag_ids=tag_ids,
                )

            reporter.step("importer: run_import")
            workspace_id = new_workspace(engine, "bench-import")
            actor = Actor.system(workspace_id)

            @contextmanager
            def transaction() -> Iterator[Session]:
                with Session(engine, expire_on_commit=False) as session, session.begin():
                    bind_workspace(session, workspace_id)
                    yield session

            with peak_memory() as memory, timed() as importer:
                report = run_import(transaction, actor=actor, path=path, options=ImportOptions(), clock=system_clock)

            with Session(engine) as session:
                customers, identities = (
                    _count(session, Customer, workspace_id),
                    _count(session, Identity, workspace_id),
                )
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    if report.rejected or report.created + report.merged != count:
        raise BenchFailed(
            f"importer outcome off: created {report.created} + merged {report.merged} != {count} rows, "
            f"rejected {report.rejected} (first: {report.rejections[:3]})"
        )
    if (customers, identities) != (raw.customers, raw.identities):
        raise BenchFailed(
            f"importer wrote {customers} customers / {identities} identities, "
            f"the baseline {raw.customers} / {raw.identities}"
        )
    reporter.step("done")
    return {
        "bench": "import",
        "size": size,
        "database": database.kind,
        "results": [result_row("import", importer.seconds, baseline.seconds, count)],
        "rows": count,
        "created": report.created,
        "merged": report.merged,
        "updated": report.updated,
        "rejected": report.rejected,
        "customers": customers,
        "identities": identities,
        "baseline_rows_per_s": round(count / baseline.seconds, 1),
        "batch_size": BATCH_SIZE,
        "file_mb": round(file_bytes / 2**20, 1),
        "peak_memory_mb": memory.peak_mb,
        "memory_method": memory.method,
    }


def _count(session: Session, model: type[Customer] | type[Identity], workspace_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(model.workspace_id == workspace_id)) or 0)
