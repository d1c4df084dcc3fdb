"""Console page of retention (admins): the settings in force and the archives of this workspace."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.ops.retention.repository import archives
from siyu.ops.retention.schemas import RETAINED, RetentionConfigError, RetentionPolicy, cutoff
from siyu.web.deps import ConsoleCtx
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/retention")
def retention_page(request: Request, ctx: ConsoleCtx) -> Response:
    """Months kept per table, each table's current cutoff, and the Parquet files written so far."""
    ctx.actor.require(Scope.USERS_ADMIN)  # archive paths and sizes are for the brand's administrators
    error = None
    tables = []
    try:
        policy = RetentionPolicy.from_settings(ctx.settings)
    except RetentionConfigError as exc:
        policy, error = None, str(exc)
    if policy is not None:
        now = ctx.clock.now()
        for spec in RETAINED:
            months = policy.months[spec.name]
            tables.append({"name": spec.name, "months": months, "before": cutoff(now, months) if months else None})
    files = archives(ctx.session, workspace_id=ctx.actor.workspace_id)
    return render(
        request,
        "ops/retention.html",
        {"policy": policy, "error": error, "tables": tables, "archives": files},
    )
