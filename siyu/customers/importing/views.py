"""Console pages for importing customers: upload, check the column mapping, start the job."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.customers.importing.mapping import (
    ATTRIBUTE_PREFIX,
    IDENTITY_PREFIX,
    IGNORE,
    OWNER,
    PROFILE_TARGETS,
    TAGS,
    valid_targets,
)
from siyu.customers.importing.reader import ENCODINGS
from siyu.customers.importing.service import preview
from siyu.customers.importing.uploads import save_upload
from siyu.customers.service.definitions import attribute_definitions, identity_types
from siyu.customers.tasks import queue_import
from siyu.kit.errors import DomainError, InvalidInput
from siyu.web.deps import ConsoleCtx, Ctx
from siyu.web.pages import error_text, redirect
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)
_UPLOAD_NAME = re.compile(r"^[0-9a-f]{32}\.(csv|txt|tsv|xlsx)$")


def _upload_path(ctx: Ctx, upload: str) -> Path:
    """The stored file an upload token names: only names `save_upload` makes, in this workspace."""
    if not _UPLOAD_NAME.match(upload):
        raise InvalidInput("unknown upload", details={"field": "upload"})
    path = ctx.settings.data_dir / "uploads" / str(ctx.actor.workspace_id) / upload
    if not path.is_file():
        raise InvalidInput("the uploaded file is gone; upload it again", details={"field": "upload"})
    return path


def _targets(ctx: Ctx) -> list[str]:
    """Every valid target, in the order the <select> lists them."""
    types = identity_types(ctx.session, ctx.actor.workspace_id)
    attributes = attribute_definitions(ctx.session, ctx.actor.workspace_id)
    valid = valid_targets(types, attributes)
    ordered = [*PROFILE_TARGETS, OWNER, TAGS]
    ordered += sorted(t for t in valid if t.startswith(IDENTITY_PREFIX))
    ordered += sorted(t for t in valid if t.startswith(ATTRIBUTE_PREFIX))
    return [t for t in ordered if t in valid] + [IGNORE]


def _upload_form(request: Request, error: str | None = None, status: int = 200) -> Response:
    return render(request, "imports/upload.html", {"errors": {"file": error} if error else {}}, status_code=status)


def _mapping_context(ctx: Ctx, upload: str, filename: str, encoding: str | None) -> dict[str, Any]:
    """Detected encoding, headers, the guessed target per column and sample rows."""
    path = _upload_path(ctx, upload)
    info: dict[str, Any] = preview(ctx.session, actor=ctx.actor, path=path, encoding=encoding or None)
    attributes = attribute_definitions(ctx.session, ctx.actor.workspace_id)
    return {
        "upload": upload,
        "filename": filename,
        "encoding_override": encoding or "",
        "encodings": list(ENCODINGS),
        "preview": info,
        "chosen": info["mapping"],
        "targets": _targets(ctx),
        "attribute_labels": {ATTRIBUTE_PREFIX + k: d.label for k, d in attributes.items()},
        "errors": {},
    }


def _mapping_page(ctx: Ctx, request: Request, upload: str, filename: str, encoding: str | None) -> Response:
    return render(request, "imports/mapping.html", _mapping_context(ctx, upload, filename, encoding))


@router.get("/imports")
def upload_form(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.IMPORT_RUN)
    return _upload_form(request)


@router.post("/imports")
def upload(
    request: Request,
    ctx: ConsoleCtx,
    file: Annotated[UploadFile | None, File()] = None,
    encoding: Annotated[str, Form()] = "",
) -> Response:
    """Store the file and show the mapping step; a file that cannot be read goes back to the form."""
    ctx.actor.require(Scope.IMPORT_RUN)
    ctx.actor.require(Scope.CUSTOMERS_WRITE)
    path: Path | None = None
    try:
        if file is None or not file.filename:
            raise InvalidInput("choose a file to upload", details={"field": "file"})
        path = save_upload(
            file.file,
            filename=file.filename,
            data_dir=ctx.settings.data_dir,
            workspace_id=ctx.actor.workspace_id,
            max_bytes=ctx.settings.max_upload_mb << 20,
        )
        return _mapping_page(ctx, request, path.name, file.filename, encoding or None)
    except DomainError as exc:
        if path is not None:
            path.unlink(missing_ok=True)
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        return _upload_form(request, error_text(request, exc), status)


@router.get("/imports/mapping")
def mapping_step(request: Request, ctx: ConsoleCtx, upload: str, filename: str = "", encoding: str = "") -> Response:
    """The mapping step again, e.g. read with another encoding."""
    ctx.actor.require(Scope.IMPORT_RUN)
    try:
        return _mapping_page(ctx, request, upload, filename, encoding or None)
    except DomainError as exc:
        return _upload_form(request, error_text(request, exc), exc.status_code if exc.status_code < 500 else 400)


async def form_fields(request: Request) -> dict[str, str]:
    """The text fields of a form whose field names are not known in advance (one per column)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.post("/imports/start")
def start(request: Request, ctx: ConsoleCtx, fields: Annotated[dict[str, str], Depends(form_fields)]) -> Response:
    """Queue the import with the chosen mapping, exactly as the API does, and follow its job."""
    ctx.actor.require(Scope.IMPORT_RUN)
    ctx.actor.require(Scope.CUSTOMERS_WRITE)
    upload, filename = fields.get("upload", ""), fields.get("filename", "")
    encoding = fields.get("encoding") or None
    overrides: dict[str, str] = {}
    try:
        path = _upload_path(ctx, upload)
        headers = preview(ctx.session, actor=ctx.actor, path=path, encoding=encoding)["headers"]
        overrides = {header: fields.get(f"target_{i}", IGNORE) for i, header in enumerate(headers)}
        job = queue_import(
            ctx.session,
            actor=ctx.actor,
            path=path,
            filename=filename,
            encoding=encoding,
            mapping=overrides,
            dry_run=fields.get("dry_run") == "on",
            clock=ctx.clock,
        )
    except DomainError as exc:
        try:
            context = _mapping_context(ctx, upload, filename, encoding)
        except DomainError:
            return _upload_form(request, error_text(request, exc), 422)
        context["chosen"] = overrides or context["chosen"]
        context["errors"] = {"mapping": error_text(request, exc)}
        return render(request, "imports/mapping.html", context, status_code=exc.status_code)
    return redirect(f"/jobs/{job.id}")
