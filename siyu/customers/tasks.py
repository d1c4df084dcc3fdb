"""Background jobs of the customer pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.config import get_settings
from siyu.customers.importing.mapping import resolve_mapping
from siyu.customers.importing.reader import open_source
from siyu.customers.importing.service import ImportOptions, run_import
from siyu.customers.service.definitions import attribute_definitions, identity_types
from siyu.jobs.service import JobContext, enqueue, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.models import Job, Role


def actor_to_args(actor: Actor) -> dict[str, Any]:
    return {
        "kind": actor.kind,
        "workspace_id": actor.workspace_id,
        "label": actor.label,
        "scopes": sorted(actor.scopes),
        "user_id": actor.user_id,
        "token_id": actor.token_id,
        "role": actor.role,
        "staff_id": actor.staff_id,
        "store_id": actor.store_id,
    }


def actor_from_args(data: dict[str, Any]) -> Actor:
    return Actor(
        kind=data["kind"],
        workspace_id=data["workspace_id"],
        label=data["label"],
        scopes=frozenset(data["scopes"]),
        user_id=data.get("user_id"),
        token_id=data.get("token_id"),
        role=Role(data["role"]) if data.get("role") else None,
        staff_id=data.get("staff_id"),
        store_id=data.get("store_id"),
    )


@job_actor("import_customers")
def import_customers_job(job: JobContext) -> dict[str, Any]:
    """Run an uploaded import; each batch commits on its own, the report is the job's result."""
    actor = actor_from_args(job.args["actor"])
    options = ImportOptions(**job.args["options"])
    path = Path(job.args["path"])
    try:
        report = run_import(
            job.transaction,
            actor=actor,
            path=path,
            options=options,
            clock=system_clock,
            progress=job.progress,
            phone_region=get_settings().phone_region,
        )
    finally:
        # The upload holds personal data; once the import ran (or failed on the file) it is not needed.
        # A crash before this point keeps it, so a resumed job can still read it.
        path.unlink(missing_ok=True)
    return report.as_dict()


def queue_import(
    session: Session,
    *,
    actor: Actor,
    path: Path,
    filename: str,
    encoding: str | None,
    mapping: dict[str, str] | None,
    dry_run: bool,
    clock: Clock,
) -> Job:
    """Check an uploaded file and its mapping now (a 4xx here, not a failed job later) and queue its import."""
    actor.require(Scope.IMPORT_RUN)
    actor.require(Scope.CUSTOMERS_WRITE)
    source = open_source(path, encoding=encoding)
    attributes = attribute_definitions(session, actor.workspace_id)
    resolve_mapping(
        source.headers,
        mapping,
        identity_types(session, actor.workspace_id),
        {k: d.label for k, d in attributes.items()},
    )
    return enqueue(
        session,
        kind="import_customers",
        workspace_id=actor.workspace_id,
        clock=clock,
        created_by=actor.label,
        args={
            "path": str(path),
            "filename": filename,
            "actor": actor_to_args(actor),
            "options": {"encoding": encoding, "mapping": mapping, "dry_run": dry_run},
        },
    )
