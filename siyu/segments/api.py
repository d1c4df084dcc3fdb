"""HTTP API of segments: CRUD, preview, members, export, history, static lists, the schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from fastapi.responses import StreamingResponse

from siyu.audit.service import record
from siyu.auth.permissions import Scope
from siyu.customers.export import csv_lines
from siyu.customers.importing.uploads import save_upload
from siyu.customers.masking import sees_pii
from siyu.customers.schemas import CustomerPage, customer_read
from siyu.jobs.api import job_read
from siyu.segments import query
from siyu.segments.jsonschema import definition_schema
from siyu.segments.schemas import (
    CountRead,
    MembershipEventPage,
    MembershipEventRead,
    PreviewIn,
    PreviewRead,
    SampleMember,
    SegmentIn,
    SegmentPatch,
    SegmentRead,
    SegmentVersionRead,
    SizePointRead,
    SnapshotIn,
    UploadRead,
    segment_read,
)
from siyu.segments.service import catalog, crud, members, preview, static, tracking
from siyu.segments.tasks import queue_segment_refresh
from siyu.segments.validation import stored_tree
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["segments"])
Reader = Annotated[Ctx, Depends(require(Scope.SEGMENTS_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.SEGMENTS_WRITE))]


@router.get("/segments/schema")
def schema() -> dict[str, Any]:
    """The JSON Schema of a segment definition (docs/segments.md explains every condition)."""
    return definition_schema()


@router.get("/segments/catalog")
def builder_catalog(ctx: Reader) -> dict[str, Any]:
    """What a definition may name here: fields and their operators, tags, staff, channels, segments,
    event types, SKUs, categories, platforms, identity types."""
    return catalog.builder_catalog(ctx.session, ctx.actor)


@router.get("/segments", response_model=list[SegmentRead])
def list_segments(ctx: Reader, include_archived: bool = False) -> list[SegmentRead]:
    return [segment_read(s) for s in crud.list_segments(ctx.session, ctx.actor, include_archived=include_archived)]


@router.post("/segments", status_code=201, response_model=SegmentRead)
def create_segment(body: SegmentIn, ctx: Writer) -> SegmentRead:
    """Save a dynamic segment; a definition that cannot be used is a 422 naming the node's path."""
    data = crud.SegmentInput(
        name=body.name, definition=body.definition, description=body.description, is_tracked=body.is_tracked
    )
    return segment_read(crud.create_segment(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock))


@router.post("/segments/preview", response_model=PreviewRead)
def preview_definition(body: PreviewIn, ctx: Reader) -> PreviewRead:
    """Count, the newest members, the count of every group and condition, and the SQL — nothing saved."""
    result = preview.preview_definition(
        ctx.session, actor=ctx.actor, definition=body.definition, clock=ctx.clock, segment_id=body.segment_id
    )
    return PreviewRead(
        count=result.count,
        node_counts=result.node_counts,
        sample=[SampleMember(id=c.id, name=c.name) for c in result.sample],
        sql=result.sql,
        elapsed_ms=result.elapsed_ms,
    )


@router.post("/segments/upload", status_code=201, response_model=UploadRead)
def upload_static(
    ctx: Writer,
    file: Annotated[UploadFile, File(description="CSV or XLSX; columns named by identity type, or type,value")],
    name: Annotated[str, Form(max_length=200)],
    description: Annotated[str | None, Form(max_length=2000)] = None,
) -> UploadRead:
    """A static segment of the customers the file's identities name, with a report of what matched."""
    path = save_upload(
        file.file,
        filename=file.filename or "",
        data_dir=ctx.settings.data_dir,
        workspace_id=ctx.actor.workspace_id,
        max_bytes=ctx.settings.max_upload_mb << 20,
    )
    try:
        segment, report = static.create_static_from_upload(
            ctx.session,
            actor=ctx.actor,
            name=name,
            path=path,
            filename=file.filename or "",
            description=description,
            clock=ctx.clock,
            phone_region=ctx.settings.phone_region,
        )
    finally:
        path.unlink(missing_ok=True)
    return UploadRead(segment=segment_read(segment), report=report.as_dict())


@router.get("/segments/{segment_id}", response_model=SegmentRead)
def get_segment(segment_id: IdPath, ctx: Reader) -> SegmentRead:
    return segment_read(crud.get_segment(ctx.session, ctx.actor, segment_id))


@router.patch("/segments/{segment_id}", response_model=SegmentRead)
def update_segment(segment_id: IdPath, body: SegmentPatch, ctx: Writer) -> SegmentRead:
    """Rename, redefine (a new version) or start/stop tracking."""
    changes = crud.SegmentChanges(
        name=body.name, description=body.description, definition=body.definition, is_tracked=body.is_tracked
    )
    segment = crud.update_segment(ctx.session, actor=ctx.actor, segment_id=segment_id, changes=changes, clock=ctx.clock)
    return segment_read(segment)


@router.delete("/segments/{segment_id}", status_code=204)
def archive_segment(segment_id: IdPath, ctx: Writer) -> Response:
    """Archive (segments are never deleted: broadcasts and reports keep referring to them)."""
    crud.archive_segment(ctx.session, actor=ctx.actor, segment_id=segment_id, clock=ctx.clock)
    return Response(status_code=204)


@router.get("/segments/{segment_id}/versions", response_model=list[SegmentVersionRead])
def versions(segment_id: IdPath, ctx: Reader) -> list[SegmentVersionRead]:
    return [
        SegmentVersionRead(version=v.version, definition=v.definition, created_by=v.created_by, created_at=v.created_at)
        for v in crud.versions_of(ctx.session, ctx.actor, segment_id)
    ]


@router.get("/segments/{segment_id}/count", response_model=CountRead)
def count(segment_id: IdPath, ctx: Reader) -> CountRead:
    """The size now, within the caller's part of the pool."""
    size = members.count_members(ctx.session, actor=ctx.actor, segment_id=segment_id, clock=ctx.clock)
    return CountRead(segment_id=segment_id, count=size)


@router.get("/segments/{segment_id}/members", response_model=CustomerPage)
def list_members(
    segment_id: IdPath,
    ctx: Reader,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CustomerPage:
    page = members.members_page(
        ctx.session, actor=ctx.actor, segment_id=segment_id, clock=ctx.clock, cursor=cursor, limit=limit
    )
    return CustomerPage(items=[customer_read(c, ctx.actor) for c in page.items], next_cursor=page.next_cursor)


@router.get("/segments/{segment_id}/export")
def export_members(segment_id: IdPath, ctx: Reader, format: Literal["csv", "xlsx"] = "csv") -> Response:
    """Members as CSV (UTF-8 with BOM) or XLSX; phones masked unless the token may see them."""
    segment = crud.get_segment(ctx.session, ctx.actor, segment_id)
    rows = list(
        members.export_member_rows(
            ctx.session, actor=ctx.actor, segment=segment, now=ctx.clock.now(), unmasked=sees_pii(ctx.actor)
        )
    )
    record(
        ctx.session,
        ctx.actor,
        action="export",
        entity_type="segment",
        entity_id=segment.id,
        after={"format": format, "rows": len(rows) - 1},
        clock=ctx.clock,
    )
    stamp = f"{ctx.clock.now():%Y%m%d-%H%M}"
    if format == "xlsx":
        return Response(
            members.xlsx_bytes(iter(rows), title=segment.name),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="segment-{segment.id}-{stamp}.xlsx"'},
        )
    return StreamingResponse(
        csv_lines(iter(rows)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="segment-{segment.id}-{stamp}.csv"'},
    )


@router.get("/segments/{segment_id}/sql")
def segment_sql(segment_id: IdPath, ctx: Reader) -> dict[str, Any]:
    """The member query of a dynamic segment with its values written in (for reading)."""
    segment = crud.get_segment(ctx.session, ctx.actor, segment_id)
    if segment.definition is None or str(segment.kind) != "dynamic":
        return {"segment_id": segment.id, "sql": None}
    sql = query.explain_sql(
        ctx.session,
        workspace_id=ctx.actor.workspace_id,
        definition=stored_tree(ctx.session, workspace_id=ctx.actor.workspace_id, definition=segment.definition),
        now=ctx.clock.now(),
    )
    return {"segment_id": segment.id, "sql": sql}


@router.post("/segments/{segment_id}/refresh", status_code=202)
def refresh(segment_id: IdPath, ctx: Writer) -> dict[str, Any]:
    """Recompute the segment now in the background (tracked: entries and exits; all: today's size)."""
    segment = crud.get_segment(ctx.session, ctx.actor, segment_id)
    job = queue_segment_refresh(
        ctx.session,
        workspace_id=ctx.actor.workspace_id,
        segment_id=segment.id,
        clock=ctx.clock,
        created_by=ctx.actor.label,
    )
    return job_read(job)


@router.post("/segments/{segment_id}/snapshot", status_code=201, response_model=SegmentRead)
def snapshot(segment_id: IdPath, body: SnapshotIn, ctx: Writer) -> SegmentRead:
    """A static segment holding this segment's members now."""
    segment = static.snapshot_segment(
        ctx.session,
        actor=ctx.actor,
        segment_id=segment_id,
        name=body.name,
        description=body.description,
        clock=ctx.clock,
    )
    return segment_read(segment)


@router.get("/segments/{segment_id}/history", response_model=MembershipEventPage)
def history(
    segment_id: IdPath, ctx: Reader, cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> MembershipEventPage:
    """Who entered and left a tracked segment, newest first."""
    crud.get_segment(ctx.session, ctx.actor, segment_id)
    page = tracking.membership_events(ctx.session, ctx.actor, segment_id, cursor=cursor, limit=limit)
    return MembershipEventPage(
        items=[
            MembershipEventRead(
                customer_id=e.customer_id, change=str(e.change), trigger=e.trigger, occurred_at=e.occurred_at
            )
            for e in page.items
        ],
        next_cursor=page.next_cursor,
    )


@router.get("/segments/{segment_id}/trend", response_model=list[SizePointRead])
def trend(segment_id: IdPath, ctx: Reader, days: Annotated[int, Query(ge=1, le=366)] = 30) -> list[SizePointRead]:
    """Daily sizes (the last count of each brand-local day), oldest first."""
    crud.get_segment(ctx.session, ctx.actor, segment_id)
    return [
        SizePointRead(day=p.day.isoformat(), size=p.size)
        for p in tracking.size_trend(ctx.session, segment_id, days=days)
    ]
