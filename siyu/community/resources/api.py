"""JSON API of community resources: `/api/v1/resources` (write, upload, publish, archive, counts)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, UploadFile
from pydantic import BaseModel
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.community.resources import service
from siyu.community.resources.errors import ResourceNotFound
from siyu.community.resources.files import MAX_FILE_BYTES, check_upload, content_disposition
from siyu.community.resources.schemas import ResourceIn, ResourcePatch
from siyu.models.resource import Resource, ResourceKind, ResourceStatus
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["resources"])
Reader = Annotated[Ctx, Depends(require(Scope.COMMUNITY_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.COMMUNITY_WRITE))]


class ResourceRead(BaseModel):
    id: int
    kind: str
    title: str
    summary: str
    body: str
    file_name: str | None
    file_type: str | None
    file_size: int | None
    visible_tier_ids: list[int]
    visible_segment_id: int | None
    status: str
    is_pinned: bool
    published_at: datetime | None
    reads_count: int
    downloads_count: int
    unique_readers: int
    created_at: datetime
    updated_at: datetime


def resource_read(row: Resource, unique_readers: int) -> ResourceRead:
    return ResourceRead(
        id=row.id,
        kind=str(row.kind),
        title=row.title,
        summary=row.summary,
        body=row.body,
        file_name=row.file_name,
        file_type=row.file_type,
        file_size=row.file_size,
        visible_tier_ids=[int(t) for t in row.visible_tier_ids or []],
        visible_segment_id=row.visible_segment_id,
        status=str(row.status),
        is_pinned=row.is_pinned,
        published_at=row.published_at,
        reads_count=row.reads_count,
        downloads_count=row.downloads_count,
        unique_readers=unique_readers,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _read(ctx: Ctx, row: Resource) -> ResourceRead:
    ws = ctx.actor.workspace_id
    return resource_read(row, service.unique_readers(ctx.session, workspace_id=ws, resource_id=row.id))


@router.get("/resources", response_model=list[ResourceRead])
def list_resources(
    ctx: Reader,
    status: Annotated[ResourceStatus | None, Query()] = None,
    kind: Annotated[ResourceKind | None, Query()] = None,
) -> list[ResourceRead]:
    """Every resource of the workspace (pinned, then last changed first) with reads, downloads and unique readers."""
    rows = service.list_resources(ctx.session, workspace_id=ctx.actor.workspace_id, status=status, kind=kind)
    return [resource_read(s.resource, s.unique_readers) for s in rows]


@router.post("/resources", status_code=201, response_model=ResourceRead)
def create_resource(body: ResourceIn, ctx: Writer) -> ResourceRead:
    """A new draft (a file resource gets its file with `PUT /resources/{id}/file`)."""
    return _read(ctx, service.create_resource(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/resources/{resource_id}", response_model=ResourceRead)
def get_resource(resource_id: IdPath, ctx: Reader) -> ResourceRead:
    return _read(ctx, service.get_resource(ctx.session, workspace_id=ctx.actor.workspace_id, resource_id=resource_id))


@router.patch("/resources/{resource_id}", response_model=ResourceRead)
def update_resource(resource_id: IdPath, body: ResourcePatch, ctx: Writer) -> ResourceRead:
    """Change the fields sent."""
    row = service.update_resource(ctx.session, actor=ctx.actor, resource_id=resource_id, data=body, clock=ctx.clock)
    return _read(ctx, row)


@router.put("/resources/{resource_id}/file", response_model=ResourceRead)
def upload_file(resource_id: IdPath, file: UploadFile, ctx: Writer) -> ResourceRead:
    """Upload (or replace) the file: ≤ 10 MB; PDF, PNG, JPEG, DOCX, XLSX, PPTX, ZIP or TXT by its bytes."""
    checked = check_upload(file.filename, file.file.read(MAX_FILE_BYTES + 1))
    row = service.attach_file(ctx.session, actor=ctx.actor, resource_id=resource_id, file=checked, clock=ctx.clock)
    return _read(ctx, row)


@router.get("/resources/{resource_id}/file")
def download_file(resource_id: IdPath, ctx: Reader) -> Response:
    """The stored file, as uploaded (operators; not counted as a member download)."""
    row = service.get_resource(ctx.session, workspace_id=ctx.actor.workspace_id, resource_id=resource_id)
    return file_response(row)


@router.post("/resources/{resource_id}/publish", response_model=ResourceRead)
def publish(resource_id: IdPath, ctx: Writer) -> ResourceRead:
    return _read(ctx, service.publish(ctx.session, actor=ctx.actor, resource_id=resource_id, clock=ctx.clock))


@router.post("/resources/{resource_id}/archive", response_model=ResourceRead)
def archive(resource_id: IdPath, ctx: Writer) -> ResourceRead:
    return _read(ctx, service.archive(ctx.session, actor=ctx.actor, resource_id=resource_id, clock=ctx.clock))


def file_response(row: Resource) -> Response:
    """A resource's file as an attachment: its sniffed type, the original name RFC 5987-encoded,
    and `nosniff` so a browser never renders it as something else."""
    if row.file_data is None:
        raise ResourceNotFound(f"resource {row.id} has no file", details={"resource_id": row.id})
    return Response(
        row.file_data,
        media_type=row.file_type or "application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(row.file_name or "download"),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )
