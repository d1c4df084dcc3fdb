"""The visual builder: new/edit pages, the catalogue it picks from and the live preview.

The page holds the definition as JSON in a form field; segment-builder.js edits it as a tree,
asks `/segments/preview.json` for the counts as it changes and posts it with the form.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.kit.errors import DomainError
from siyu.models import Segment, SegmentKind
from siyu.segments.definition import DefinitionError
from siyu.segments.service import catalog, crud, preview
from siyu.segments.views.labels import builder_labels
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath, database
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator
from siyu.workspaces.scope import bind_workspace

router = APIRouter(include_in_schema=False)
FORM = "segments/form.html"
EMPTY_DEFINITION: dict[str, Any] = {"all": []}
MAX_DEFINITION_BYTES = 256 * 1024
"""Far above 200 nodes of 1,000 values each would need; anything bigger is not a definition."""


# --- reading the definition --------------------------------------------------------------------


def parse_definition_text(text: str) -> Any:
    """The definition a form posted (JSON text), or `DefinitionError` at "$"."""
    if len(text.encode()) > MAX_DEFINITION_BYTES:
        raise DefinitionError("$", f"the definition is larger than {MAX_DEFINITION_BYTES // 1024} KiB")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
        raise DefinitionError("$", "the definition is not valid JSON") from None


@dataclass(frozen=True)
class JsonBody:
    """A request body read as JSON: the value, or why it could not be read."""

    value: Any = None
    error: str | None = None


async def json_body(request: Request) -> JsonBody:
    """The body of a console JSON POST, read before the sync handler runs (see `FormDep`)."""
    raw = await request.body()
    if len(raw) > MAX_DEFINITION_BYTES:
        return JsonBody(error=f"the body is larger than {MAX_DEFINITION_BYTES // 1024} KiB")
    try:
        return JsonBody(value=json.loads(raw))
    except (ValueError, RecursionError):
        return JsonBody(error="the body is not valid JSON")


JsonBodyDep = Annotated[JsonBody, Depends(json_body)]


@contextmanager
def read_session(request: Request, ctx: Ctx) -> Iterator[Session]:
    """A read-only session for work that only reads.

    A console POST opens a writing transaction, which on SQLite holds the database's writer lock
    until the response; a preview that reads for a second would stall every scan and import
    meanwhile. So the request's own transaction ends here and the reads run deferred.
    """
    ctx.session.commit()
    with database(request).transaction(read_only=True) as session:
        bind_workspace(session, ctx.actor.workspace_id)
        yield session


def _json_error(exc: DomainError) -> JSONResponse:
    details = exc.details if isinstance(exc.details, dict) else {}
    path = getattr(exc, "path", None) or details.get("path") or "$"
    status = exc.status_code if 400 <= exc.status_code < 500 else 400
    return JSONResponse({"error": {"code": exc.code, "message": exc.message, "path": path}}, status_code=status)


# --- JSON for the builder script ---------------------------------------------------------------


@router.get("/segments/catalog.json")
def catalog_json(ctx: ConsoleCtx) -> Response:
    """Fields with their operators, tags, staff, channels, segments, event types, SKUs, categories,
    platforms, identity types and consent channels: what the builder's pickers list."""
    try:
        return JSONResponse(catalog.builder_catalog(ctx.session, ctx.actor))
    except DomainError as exc:
        return _json_error(exc)


@router.post("/segments/preview.json")
def preview_json(request: Request, ctx: ConsoleCtx, body: JsonBodyDep) -> Response:
    """`{"definition": …, "segment_id": …}` → count, count per node (by path), newest members, SQL;
    an unusable definition → 422 `{"error": {"message", "path"}}`."""
    try:
        ctx.actor.require(Scope.SEGMENTS_READ)
        if body.error is not None:
            raise DefinitionError("$", body.error)
        if not isinstance(body.value, dict) or "definition" not in body.value:
            raise DefinitionError("$", 'expected {"definition": …}')
        segment_id = body.value.get("segment_id")
        if segment_id is not None and (isinstance(segment_id, bool) or not isinstance(segment_id, int)):
            segment_id = None
        with read_session(request, ctx) as session:
            result = preview.preview_definition(
                session, actor=ctx.actor, definition=body.value["definition"], clock=ctx.clock, segment_id=segment_id
            )
    except DomainError as exc:
        return _json_error(exc)
    return JSONResponse(
        {
            "count": result.count,
            "node_counts": result.node_counts,
            "sample": [{"id": c.id, "name": c.name} for c in result.sample],
            "sql": result.sql,
            "elapsed_ms": result.elapsed_ms,
        }
    )


# --- the form ----------------------------------------------------------------------------------


@dataclass
class SegmentForm:
    """The new/edit form as posted (or as first shown)."""

    name: str = ""
    description: str = ""
    definition: str = json.dumps(EMPTY_DEFINITION)
    is_tracked: bool = False

    @classmethod
    def from_form(cls, form: FormData) -> SegmentForm:
        def text(key: str) -> str:
            value = form.get(key)
            return value if isinstance(value, str) else ""

        return cls(
            name=text("name"),
            description=text("description"),
            definition=text("definition") or json.dumps(EMPTY_DEFINITION),
            is_tracked=text("is_tracked") in ("1", "on", "true"),
        )

    @classmethod
    def from_segment(cls, segment: Segment) -> SegmentForm:
        return cls(
            name=segment.name,
            description=segment.description or "",
            definition=json.dumps(segment.definition or EMPTY_DEFINITION, ensure_ascii=False),
            is_tracked=segment.is_tracked,
        )


def _builder_definition(text: str) -> Any:
    """What the builder starts from: the posted JSON when it parses, else an empty group."""
    try:
        return json.loads(text)
    except ValueError:
        return EMPTY_DEFINITION


def _form_page(
    request: Request,
    values: SegmentForm,
    segment: Segment | None,
    *,
    error: str | None = None,
    error_path: str | None = None,
    status_code: int = 200,
) -> Response:
    _ = translator(request)
    dynamic = segment is None or segment.kind == SegmentKind.DYNAMIC
    data = {
        "definition": _builder_definition(values.definition),
        "segment_id": segment.id if segment is not None else None,
        "catalog_url": "/segments/catalog.json",
        "preview_url": "/segments/preview.json",
        "labels": builder_labels(_),
        "error_path": error_path,
        "error": error,
    }
    context = {
        "segment": segment,
        "values": values,
        "dynamic": dynamic,
        "builder": data,
        "errors": {"form": error} if error else {},
        "error_path": error_path,
    }
    return render(request, FORM, context, status_code=status_code)


def _failed(request: Request, ctx: Ctx, exc: DomainError, values: SegmentForm, segment_id: int | None) -> Response:
    """Undo what the failed save wrote and show the form again with the message (and the path)."""
    ctx.session.rollback()
    _ = translator(request)
    segment = crud.get_segment(ctx.session, ctx.actor, segment_id) if segment_id is not None else None
    if isinstance(exc, DefinitionError):
        message, path = f"{_('人群条件有误')}: {exc.message}", exc.path
    else:
        message, path = error_text(request, exc), None
    status = exc.status_code if 400 <= exc.status_code < 500 else 400
    return _form_page(request, values, segment, error=message, error_path=path, status_code=status)


@router.get("/segments/new")
def new_segment_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.SEGMENTS_WRITE)
    return _form_page(request, SegmentForm(), None)


@router.post("/segments")
def create_segment(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Save a new dynamic segment (version 1); the server checks the definition again."""
    ctx.actor.require(Scope.SEGMENTS_WRITE)
    values = SegmentForm.from_form(form)
    try:
        data = crud.SegmentInput(
            name=values.name,
            definition=parse_definition_text(values.definition),
            description=values.description,
            is_tracked=values.is_tracked,
        )
        segment = crud.create_segment(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock)
    except DomainError as exc:
        return _failed(request, ctx, exc, values, None)
    _ = translator(request)
    flash(request, _("人群已保存"))
    return redirect(f"/segments/{segment.id}")


@router.get("/segments/{segment_id}/edit")
def edit_segment_page(request: Request, ctx: ConsoleCtx, segment_id: IdPath) -> Response:
    ctx.actor.require(Scope.SEGMENTS_WRITE)
    segment = crud.get_segment(ctx.session, ctx.actor, segment_id)
    return _form_page(request, SegmentForm.from_segment(segment), segment)


@router.post("/segments/{segment_id}/edit")
def update_segment(request: Request, ctx: ConsoleCtx, segment_id: IdPath, form: FormDep) -> Response:
    """Rename, describe, redefine (a new version when the definition changed) or (un)track."""
    ctx.actor.require(Scope.SEGMENTS_WRITE)
    segment = crud.get_segment(ctx.session, ctx.actor, segment_id)
    values = SegmentForm.from_form(form)
    dynamic = segment.kind == SegmentKind.DYNAMIC
    try:
        changes = crud.SegmentChanges(
            name=values.name,
            description=values.description,
            definition=parse_definition_text(values.definition) if dynamic else None,
            is_tracked=values.is_tracked if dynamic else None,
        )
        crud.update_segment(ctx.session, actor=ctx.actor, segment_id=segment_id, changes=changes, clock=ctx.clock)
    except DomainError as exc:
        return _failed(request, ctx, exc, values, segment_id)
    _ = translator(request)
    flash(request, _("人群已保存"))
    return redirect(f"/segments/{segment_id}")
