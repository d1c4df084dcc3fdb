"""The order import job: the uploaded file is imported batch by batch; the report is the job's result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.commerce.orders.importing.service import check_file, run_order_import
from siyu.customers.tasks import actor_from_args, actor_to_args
from siyu.jobs.service import JobContext, enqueue, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.models import Job

JOB_KIND = "import_orders"


@job_actor(JOB_KIND)
def import_orders_job(job: JobContext) -> dict[str, Any]:
    """Run an uploaded order import; the file is removed once it ran (it holds personal data)."""
    path = Path(job.args["path"])
    try:
        report = run_order_import(
            job.transaction,
            actor=actor_from_args(job.args["actor"]),
            path=path,
            clock=system_clock,
            encoding=job.args.get("encoding"),
            progress=job.progress,
        )
    finally:
        path.unlink(missing_ok=True)
    return report.as_dict() | {"filename": job.args.get("filename", "")}


def queue_order_import(
    session: Session, *, actor: Actor, path: Path, filename: str, encoding: str | None, clock: Clock
) -> Job:
    """Check the file's header now (a 422 for an unknown layout) and queue its import."""
    actor.require(Scope.COMMERCE_WRITE)
    check_file(path, encoding=encoding)
    return enqueue(
        session,
        kind=JOB_KIND,
        workspace_id=actor.workspace_id,
        clock=clock,
        created_by=actor.label,
        args={"path": str(path), "filename": filename, "encoding": encoding, "actor": actor_to_args(actor)},
    )
