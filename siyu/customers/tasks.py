"""Background jobs of the customer pool."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.config import get_settings
from siyu.customers.importing.service import ImportOptions, run_import
from siyu.db import get_database
from siyu.jobs.service import Progress, job_actor
from siyu.kit.clock import system_clock
from siyu.models import Job, Role
from siyu.workspaces.scope import bind_workspace


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
def import_customers_job(session: Session, job: Job, progress: Progress) -> dict[str, Any]:
    """Run an uploaded import; each batch commits on its own, the report is the job's result."""
    actor = actor_from_args(job.args["actor"])
    database = get_database()

    @contextmanager
    def transaction() -> Iterator[Session]:
        with database.transaction() as batch_session:
            bind_workspace(batch_session, actor.workspace_id)
            yield batch_session

    options = ImportOptions(**job.args["options"])
    report = run_import(
        transaction,
        actor=actor,
        path=Path(job.args["path"]),
        options=options,
        clock=system_clock,
        progress=progress,
        phone_region=get_settings().phone_region,
    )
    return report.as_dict()
