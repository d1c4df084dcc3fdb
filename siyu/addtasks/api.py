"""HTTP API of add-by-phone lists: upload a phone list, follow progress, work and mark tasks."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from siyu.addtasks import service
from siyu.addtasks.schemas import (
    AddTaskListDetail,
    AddTaskListPage,
    AddTaskPage,
    AddTaskRead,
    ImportReportRead,
    StaffConversionRead,
    TaskStatusIn,
    conversion_read,
    list_read,
    parse_staff_ids,
    report_read,
    task_read,
)
from siyu.auth.permissions import Scope
from siyu.customers.importing.uploads import save_upload
from siyu.kit.errors import InvalidInput
from siyu.kit.ids import MAX_ID
from siyu.models import AddTaskList
from siyu.web.deps import ApiCtx, Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["addtasks"])
Reader = Annotated[Ctx, Depends(require(Scope.ACQUISITION_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.ACQUISITION_WRITE))]


@router.post("/add-task-lists", status_code=201, response_model=ImportReportRead)
def create_list(
    ctx: Writer,
    file: Annotated[
        UploadFile,
        File(description="CSV or XLSX: a phone column (手机/手机号/phone), optional name (姓名/name)"),
    ],
    name: Annotated[str, Form(max_length=100)],
    staff_ids: Annotated[list[str], Form(description="Repeat the field or separate ids with commas.")],
    daily_limit: Annotated[int, Form(description="Most tasks per staff member per day.")],
    starts_on: Annotated[date | None, Form(description="First day (brand time zone); default today.")] = None,
    greeting: Annotated[str, Form(max_length=2000, description="Suggested greeting; may use {name}.")] = "",
    source: Annotated[str | None, Form(max_length=100)] = None,
    channel_id: Annotated[int | None, Form(gt=0, le=MAX_ID)] = None,
) -> ImportReportRead:
    """Import a phone list and split it into daily per-staff tasks; the report names invalid rows."""
    spec = service.NewList(
        name=name,
        staff_ids=parse_staff_ids(staff_ids),
        daily_limit=daily_limit,
        starts_on=starts_on or service.today(ctx.session, workspace_id=ctx.actor.workspace_id, clock=ctx.clock),
        greeting=greeting,
        source=source,
        channel_id=channel_id,
    )
    path = save_upload(
        file.file,
        filename=file.filename or "",
        data_dir=ctx.settings.data_dir,
        workspace_id=ctx.actor.workspace_id,
        max_bytes=ctx.settings.max_upload_mb << 20,
    )
    try:
        report = service.import_list(
            ctx.session, actor=ctx.actor, path=path, spec=spec, clock=ctx.clock, phone_region=ctx.settings.phone_region
        )
    finally:
        path.unlink(missing_ok=True)  # the phones now live in the tasks; the file is not kept
    return report_read(report)


@router.get("/add-task-lists", response_model=AddTaskListPage)
def lists(ctx: Reader, cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> AddTaskListPage:
    """Lists, newest first, each with its progress."""
    page = service.list_lists(ctx.session, workspace_id=ctx.actor.workspace_id, cursor=cursor, limit=limit)
    progress = service.lists_progress(
        ctx.session, workspace_id=ctx.actor.workspace_id, list_ids=[x.id for x in page.items]
    )
    return AddTaskListPage(items=[list_read(x, progress[x.id]) for x in page.items], next_cursor=page.next_cursor)


@router.get("/add-task-lists/{list_id}", response_model=AddTaskListDetail)
def get_list(list_id: IdPath, ctx: Reader) -> AddTaskListDetail:
    """A list with its conversion overall and per staff member."""
    task_list = service.get_list(ctx.session, workspace_id=ctx.actor.workspace_id, list_id=list_id)
    total, per_staff = service.list_conversion(ctx.session, workspace_id=ctx.actor.workspace_id, list_id=list_id)
    names = service.staff_names(ctx.session, workspace_id=ctx.actor.workspace_id)
    return AddTaskListDetail(
        **list_read(task_list, total).model_dump(),
        per_staff=[
            StaffConversionRead(
                staff_id=staff_id, staff_name=names.get(staff_id, ""), **conversion_read(conversion).model_dump()
            )
            for staff_id, conversion in per_staff.items()
        ],
    )


@router.get("/add-task-lists/{list_id}/tasks", response_model=AddTaskPage)
def list_tasks(
    list_id: IdPath,
    ctx: Reader,
    staff_id: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None,
    status: str | None = None,
    due_on: date | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AddTaskPage:
    """The list's tasks; phones are masked without the customers:pii scope."""
    task_list = service.get_list(ctx.session, workspace_id=ctx.actor.workspace_id, list_id=list_id)
    page = service.list_tasks(
        ctx.session,
        workspace_id=ctx.actor.workspace_id,
        list_id=list_id,
        staff_id=staff_id,
        status=status,
        due_on=due_on,
        cursor=cursor,
        limit=limit,
    )
    return AddTaskPage(
        items=[task_read(t, task_list.greeting, ctx.actor) for t in page.items], next_cursor=page.next_cursor
    )


@router.get("/add-tasks", response_model=list[AddTaskRead])
def day_tasks(
    ctx: ApiCtx,
    staff_id: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None,
    day: date | None = None,
) -> list[AddTaskRead]:
    """One staff member's tasks for a day (default today): their own for a staff user, any with acquisition:read."""
    staff = _staff_for(ctx, staff_id)
    when = day or service.today(ctx.session, workspace_id=ctx.actor.workspace_id, clock=ctx.clock)
    rows = service.tasks_for_day(ctx.session, workspace_id=ctx.actor.workspace_id, staff_id=staff, day=when)
    return [task_read(task, task_list.greeting, ctx.actor) for task, task_list in rows]


def _staff_for(ctx: Ctx, staff_id: int | None) -> int:
    if staff_id is not None and staff_id != ctx.actor.staff_id:
        ctx.actor.require(Scope.ACQUISITION_READ)
        return staff_id
    if ctx.actor.staff_id is not None:
        return ctx.actor.staff_id
    ctx.actor.require(Scope.ACQUISITION_READ)
    raise InvalidInput("staff_id is required", details={"field": "staff_id"})


@router.post("/add-tasks/{task_id}/status", response_model=AddTaskRead)
def mark(task_id: IdPath, body: TaskStatusIn, ctx: ApiCtx) -> AddTaskRead:
    """Mark a task "requested" or "failed" (staff: their own tasks; acquisition:write: any)."""
    task = service.mark_task(ctx.session, actor=ctx.actor, task_id=task_id, status=body.status, clock=ctx.clock)
    task_list = ctx.session.get(AddTaskList, task.list_id)
    return task_read(task, task_list.greeting if task_list else "", ctx.actor)
