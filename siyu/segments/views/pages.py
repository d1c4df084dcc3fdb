"""Segment list (sizes and trends), the detail page (definition in words, size now, trend,
versions, members, membership history), exports, refresh, snapshot, archive and list uploads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.customers.export import csv_lines
from siyu.customers.importing.uploads import save_upload
from siyu.customers.masking import sees_pii, shown_phone
from siyu.customers.repository import pool_query
from siyu.kit.errors import DomainError, InvalidInput
from siyu.models import Customer, Segment, SegmentKind, SegmentSizePoint, Staff
from siyu.segments import query
from siyu.segments.service import crud, members, static, tracking
from siyu.segments.tasks import queue_segment_refresh
from siyu.segments.validation import stored_tree
from siyu.segments.views.describe import Describer, load_names
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath, database
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator
from siyu.workspaces.scope import bind_workspace

router = APIRouter(include_in_schema=False)
TREND_DAYS = 30
PAGE_SIZE = 50
SPARK_WIDTH, SPARK_HEIGHT = 120, 28


def sparkline(points: Sequence[SegmentSizePoint]) -> str | None:
    """SVG polyline points for a size trend (None below two points): oldest left, largest at the top."""
    if len(points) < 2:
        return None
    sizes = [p.size for p in points]
    low, high = min(sizes), max(sizes)
    span = (high - low) or 1
    step = SPARK_WIDTH / (len(sizes) - 1)
    return " ".join(
        f"{i * step:.1f},{SPARK_HEIGHT - 2 - (s - low) * (SPARK_HEIGHT - 4) / span:.1f}" for i, s in enumerate(sizes)
    )


# --- list --------------------------------------------------------------------------------------


@router.get("/segments")
def segments_page(request: Request, ctx: ConsoleCtx, archived: bool = False) -> Response:
    ctx.actor.require(Scope.SEGMENTS_READ)
    rows = []
    for segment in crud.list_segments(ctx.session, ctx.actor, include_archived=archived):
        trend = tracking.size_trend(ctx.session, segment.id, days=TREND_DAYS)
        rows.append({"segment": segment, "spark": sparkline(trend), "points": len(trend)})
    context = {"rows": rows, "archived": archived, "spark": {"width": SPARK_WIDTH, "height": SPARK_HEIGHT}}
    return render(request, "segments/list.html", context)


# --- static segments from an uploaded list -----------------------------------------------------


def _upload_page(request: Request, values: dict[str, str], *, error: str | None = None, status: int = 200) -> Response:
    context = {"values": values, "errors": {"form": error} if error else {}, "report": None, "segment": None}
    return render(request, "segments/upload.html", context, status_code=status)


@router.get("/segments/upload")
def upload_form(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.SEGMENTS_WRITE)
    return _upload_page(request, {"name": "", "description": ""})


@router.post("/segments/upload")
def upload(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """A static segment of the customers a CSV/XLSX of identities names, and the report of the rows."""
    try:
        return _upload(request, ctx, form)
    finally:
        # The form was parsed by hand (FormDep), so its spooled files are closed here.
        for _key, value in form.multi_items():
            if isinstance(value, UploadFile):
                value.file.close()


def _upload(request: Request, ctx: Ctx, form: FormData) -> Response:
    ctx.actor.require(Scope.SEGMENTS_WRITE)
    values = {k: v if isinstance(v := form.get(k), str) else "" for k in ("name", "description")}
    file = form.get("file")
    path: Path | None = None
    try:
        if not isinstance(file, UploadFile) or not file.filename:
            raise InvalidInput("choose a file to upload", details={"field": "file"})
        path = save_upload(
            file.file,
            filename=file.filename,
            data_dir=ctx.settings.data_dir,
            workspace_id=ctx.actor.workspace_id,
            max_bytes=ctx.settings.max_upload_mb << 20,
        )
        segment, report = static.create_static_from_upload(
            ctx.session,
            actor=ctx.actor,
            name=values["name"],
            path=path,
            filename=file.filename,
            description=values["description"],
            clock=ctx.clock,
            phone_region=ctx.settings.phone_region,
        )
    except DomainError as exc:
        ctx.session.rollback()
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        return _upload_page(request, values, error=error_text(request, exc), status=status)
    finally:
        if path is not None:
            path.unlink(missing_ok=True)
    context = {"values": values, "errors": {}, "report": report.as_dict(), "segment": segment}
    return render(request, "segments/upload.html", context)


# --- detail ------------------------------------------------------------------------------------


def member_row(customer: Customer, *, whole: bool, staff_names: dict[int, str]) -> dict[str, Any]:
    """One member row; the phone is masked unless the actor may see it whole."""
    return {
        "id": customer.id,
        "name": customer.name,
        "phone": shown_phone(customer.phone, whole=whole, national=True),
        "lifecycle_stage": str(customer.lifecycle_stage),
        "owner": staff_names.get(customer.owner_staff_id or 0, ""),
        "city": customer.city,
        "created_at": customer.created_at,
        "erased": customer.erased_at is not None,
    }


def _members(ctx: Ctx, segment: Segment, cursor: str | None) -> dict[str, Any]:
    """Size now and a page of members, as the actor sees them."""
    size = members.count_members(ctx.session, actor=ctx.actor, segment_id=segment.id, clock=ctx.clock)
    if not ctx.actor.can(Scope.CUSTOMERS_READ):
        return {"size": size, "member_rows": None, "members_next": None}
    page = members.members_page(
        ctx.session, actor=ctx.actor, segment_id=segment.id, clock=ctx.clock, cursor=cursor, limit=PAGE_SIZE
    )
    rows = ctx.session.execute(select(Staff.id, Staff.name).where(Staff.workspace_id == segment.workspace_id))
    staff = {staff_id: name for staff_id, name in rows}
    whole = sees_pii(ctx.actor)
    return {
        "size": size,
        "member_rows": [member_row(c, whole=whole, staff_names=staff) for c in page.items],
        "members_next": f"/segments/{segment.id}?cursor={page.next_cursor}#members" if page.next_cursor else None,
    }


def _history(ctx: Ctx, segment: Segment, cursor: str | None) -> dict[str, Any]:
    """Who entered and left (newest first); names only of customers the actor may see."""
    page = tracking.membership_events(ctx.session, ctx.actor, segment.id, cursor=cursor, limit=PAGE_SIZE)
    ids = {e.customer_id for e in page.items}
    visible = (
        {c.id: c.name for c in ctx.session.scalars(pool_query(ctx.actor).where(Customer.id.in_(ids)))} if ids else {}
    )
    rows = [
        {
            "customer_id": e.customer_id,
            "visible": e.customer_id in visible,
            "name": visible.get(e.customer_id),
            "change": str(e.change),
            "trigger": e.trigger,
            "occurred_at": e.occurred_at,
        }
        for e in page.items
    ]
    next_url = f"/segments/{segment.id}?history_cursor={page.next_cursor}#history" if page.next_cursor else None
    return {"history": rows, "history_next": next_url}


def _sql(ctx: Ctx, segment: Segment, now: datetime) -> str | None:
    if segment.kind != SegmentKind.DYNAMIC or not segment.definition:
        return None
    return query.explain_sql(
        ctx.session,
        workspace_id=segment.workspace_id,
        definition=stored_tree(ctx.session, workspace_id=segment.workspace_id, definition=segment.definition),
        now=now,
    )


def _source(segment: Segment) -> dict[str, Any] | None:
    """Where a static segment's list came from: a snapshot of a segment, or an uploaded file."""
    kind, _, value = (segment.source or "").partition(":")
    if kind == "snapshot" and value.isdigit():
        return {"kind": "snapshot", "segment_id": int(value)}
    if kind == "upload":
        return {"kind": "upload", "file": value}
    return None


@router.get("/segments/{segment_id}")
def segment_page(
    request: Request,
    ctx: ConsoleCtx,
    segment_id: IdPath,
    cursor: str | None = None,
    history_cursor: str | None = None,
) -> Response:
    segment = crud.get_segment(ctx.session, ctx.actor, segment_id)
    _ = translator(request)
    names = load_names(ctx.session, ctx.actor.workspace_id)
    trend = tracking.size_trend(ctx.session, segment.id, days=TREND_DAYS)
    context: dict[str, Any] = {
        "segment": segment,
        "dynamic": segment.kind == SegmentKind.DYNAMIC,
        "summary": Describer(_, names).node(segment.definition) if segment.definition else None,
        "source": _source(segment),
        "segment_names": names.segments,
        "versions": crud.versions_of(ctx.session, ctx.actor, segment.id),
        "trend": {"days": [p.day.isoformat() for p in trend], "sizes": [p.size for p in trend]},
        "evaluation_error": None,
        "size": None,
        "member_rows": None,
        "members_next": None,
        "sql": None,
    }
    context |= _history(ctx, segment, history_cursor)
    try:
        context["sql"] = _sql(ctx, segment, ctx.clock.now())
        context |= _members(ctx, segment, cursor)
    except DomainError as exc:
        # A timeout (PostgreSQL) or a bad cursor: the page still shows everything else.
        ctx.session.rollback()
        context["evaluation_error"] = error_text(request, exc)
    return render(request, "segments/detail.html", context)


# --- exports -----------------------------------------------------------------------------------


def _audit_export(ctx: Ctx, segment: Segment, fmt: str) -> None:
    record(
        ctx.session,
        ctx.actor,
        action="export",
        entity_type="segment",
        entity_id=segment.id,
        after={"format": fmt, "unmasked": sees_pii(ctx.actor)},
        clock=ctx.clock,
    )


def _filename(ctx: Ctx, segment: Segment, suffix: str) -> str:
    return f"segment-{segment.id}-{ctx.clock.now():%Y%m%d-%H%M}.{suffix}"


@router.get("/segments/{segment_id}/export.csv")
def export_csv(request: Request, ctx: ConsoleCtx, segment_id: IdPath) -> Response:
    """Members as CSV (UTF-8 with BOM), streamed; phones masked unless the role may see them."""
    ctx.actor.require(Scope.CUSTOMERS_READ)
    segment = crud.get_segment(ctx.session, ctx.actor, segment_id)
    _audit_export(ctx, segment, "csv")
    actor, now, db = ctx.actor, ctx.clock.now(), database(request)

    def lines() -> Iterator[str]:
        # The request's transaction ends before the body is sent: stream from a session of its own.
        with db.transaction(read_only=True) as session:
            bind_workspace(session, actor.workspace_id)
            source = crud.get_segment(session, actor, segment_id)
            rows = members.export_member_rows(session, actor=actor, segment=source, now=now, unmasked=sees_pii(actor))
            yield from csv_lines(rows)

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_filename(ctx, segment, "csv")}"'},
    )


@router.get("/segments/{segment_id}/export.xlsx")
def export_xlsx(ctx: ConsoleCtx, segment_id: IdPath) -> Response:
    """Members as an Excel workbook; phones masked unless the role may see them."""
    ctx.actor.require(Scope.CUSTOMERS_READ)
    segment = crud.get_segment(ctx.session, ctx.actor, segment_id)
    _audit_export(ctx, segment, "xlsx")
    rows = members.export_member_rows(
        ctx.session, actor=ctx.actor, segment=segment, now=ctx.clock.now(), unmasked=sees_pii(ctx.actor)
    )
    return Response(
        members.xlsx_bytes(rows, title=segment.name),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{_filename(ctx, segment, "xlsx")}"'},
    )


# --- actions -----------------------------------------------------------------------------------


def _writer(ctx: Ctx) -> Actor:
    ctx.actor.require(Scope.SEGMENTS_WRITE)
    return ctx.actor


@router.post("/segments/{segment_id}/refresh")
def refresh(request: Request, ctx: ConsoleCtx, segment_id: IdPath) -> Response:
    """Recompute in the background: a tracked segment's entries and exits, any segment's size today."""
    actor = _writer(ctx)
    segment = crud.get_segment(ctx.session, actor, segment_id)
    queue_segment_refresh(
        ctx.session, workspace_id=actor.workspace_id, segment_id=segment.id, clock=ctx.clock, created_by=actor.label
    )
    _ = translator(request)
    flash(request, _("已开始刷新，稍后刷新页面查看最新人数"))
    return redirect(f"/segments/{segment_id}")


@router.post("/segments/{segment_id}/snapshot")
def snapshot(request: Request, ctx: ConsoleCtx, segment_id: IdPath, form: FormDep) -> Response:
    """A static segment holding this segment's members now."""
    actor = _writer(ctx)
    name, description = form.get("name"), form.get("description")
    _ = translator(request)
    try:
        copy = static.snapshot_segment(
            ctx.session,
            actor=actor,
            segment_id=segment_id,
            name=name if isinstance(name, str) else "",
            description=description if isinstance(description, str) else None,
            clock=ctx.clock,
        )
    except DomainError as exc:
        ctx.session.rollback()
        flash(request, error_text(request, exc), kind="error")
        return redirect(f"/segments/{segment_id}")
    flash(request, _("已保存为静态人群"))
    return redirect(f"/segments/{copy.id}")


@router.post("/segments/{segment_id}/archive")
def archive(request: Request, ctx: ConsoleCtx, segment_id: IdPath) -> Response:
    """Hide a segment from lists and pickers (references to it keep working); tracking stops."""
    actor = _writer(ctx)
    crud.archive_segment(ctx.session, actor=actor, segment_id=segment_id, clock=ctx.clock)
    _ = translator(request)
    flash(request, _("人群已归档"))
    return redirect("/segments")
