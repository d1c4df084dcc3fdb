"""HTTP API for customer imports: upload a file, get a job to follow."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile

from siyu.auth.permissions import Scope
from siyu.customers.importing.uploads import save_upload
from siyu.customers.tasks import queue_import
from siyu.jobs.api import job_read
from siyu.kit.errors import InvalidInput
from siyu.web.deps import Ctx, require

router = APIRouter(prefix="/api/v1", tags=["import"])
Importer = Annotated[Ctx, Depends(require(Scope.IMPORT_RUN))]


def parse_mapping(raw: str | None) -> dict[str, str] | None:
    if not raw:
        return None
    try:
        mapping = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"mapping is not valid JSON: {exc.msg}", details={"field": "mapping"}) from exc
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise InvalidInput('mapping must be an object {"column": "target"}', details={"field": "mapping"})
    return mapping


@router.post("/imports", status_code=202)
def create_import(
    ctx: Importer,
    file: Annotated[UploadFile, File(description="CSV (UTF-8 or GBK) or XLSX, first row = column names")],
    encoding: Annotated[str | None, Form()] = None,
    mapping: Annotated[str | None, Form(description='JSON {"column": "target"} overrides')] = None,
    dry_run: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    """Queue an import; follow it at `/api/v1/jobs/{id}` (its result is the import report)."""
    ctx.actor.require(Scope.CUSTOMERS_WRITE)
    overrides = parse_mapping(mapping)
    path = save_upload(
        file.file,
        filename=file.filename or "",
        data_dir=ctx.settings.data_dir,
        workspace_id=ctx.actor.workspace_id,
        max_bytes=ctx.settings.max_upload_mb << 20,
    )
    try:
        job = queue_import(
            ctx.session,
            actor=ctx.actor,
            path=path,
            filename=file.filename or "",
            encoding=encoding or None,
            mapping=overrides,
            dry_run=dry_run,
            clock=ctx.clock,
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return job_read(job)
