"""Console pages of add-by-phone lists: lists with progress, the upload form, one list, a staff member's day."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from starlette.responses import Response

from siyu.addtasks import service
from siyu.addtasks.phones import render_greeting
from siyu.addtasks.schemas import parse_staff_ids
from siyu.auth.permissions import Scope
from siyu.customers.importing.uploads import save_upload
from siyu.customers.masking import sees_pii, shown_phone
from siyu.kit.errors import DomainError, InvalidInput
from siyu.kit.ids import MAX_ID, parse_id
from siyu.web.deps import ConsoleCtx, Ctx, IdPath
from siyu.web.pages import form_error, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
NEW_TEMPLATE = "add_tasks/new.html"
REPORTED_IN_FLASH = 5


@router.get("/add-tasks")
def lists_page(request: Request, ctx: ConsoleCtx, cursor: str | None = None) -> Response:
    if not ctx.actor.can(Scope.ACQUISITION_READ) and ctx.actor.staff_id is not None:
        return redirect("/add-tasks/mine")  # staff work their own day
    ctx.actor.require(Scope.ACQUISITION_READ)
    page = service.list_lists(ctx.session, workspace_id=ctx.actor.workspace_id, cursor=cursor, limit=50)
    progress = service.lists_progress(
        ctx.session, workspace_id=ctx.actor.workspace_id, list_ids=[x.id for x in page.items]
    )
    rows = [{"list": x, "progress": progress[x.id]} for x in page.items]
    next_url = f"/add-tasks?cursor={page.next_cursor}" if page.next_cursor else None
    return render(request, "add_tasks/list.html", {"rows": rows, "next_url": next_url})


def _new_context(ctx: Ctx, **extra: Any) -> dict[str, Any]:
    return {
        "staff": service.staff_choices(ctx.session, workspace_id=ctx.actor.workspace_id),
        "channels": service.channel_choices(ctx.session, workspace_id=ctx.actor.workspace_id),
        "today": _today(ctx).isoformat(),
        "values": {},
        "chosen_staff": set(),
        "errors": {},
    } | extra


@router.get("/add-tasks/new")
def new_list(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    return render(request, NEW_TEMPLATE, _new_context(ctx))


def _today(ctx: Ctx) -> date:
    return service.today(ctx.session, workspace_id=ctx.actor.workspace_id, clock=ctx.clock)


def _day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidInput(f"{field} is not a date (YYYY-MM-DD)", details={"field": field}) from exc


def _whole_number(text: str, field: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.removeprefix("-").isdigit() or len(text) > 12:
        raise InvalidInput(f"{field} must be a whole number", details={"field": field})
    return int(text)


@router.post("/add-tasks")
def create_list(
    request: Request,
    ctx: ConsoleCtx,
    file: Annotated[UploadFile | None, File()] = None,
    name: Annotated[str, Form()] = "",
    staff_ids: Annotated[list[str] | None, Form()] = None,
    daily_limit: Annotated[str, Form()] = "",
    starts_on: Annotated[str, Form()] = "",
    greeting: Annotated[str, Form()] = "",
    source: Annotated[str, Form()] = "",
    channel_id: Annotated[str, Form()] = "",
) -> Response:
    """Upload a phone list and split it; a bad field or file comes back to the form, named."""
    ctx.actor.require(Scope.ACQUISITION_WRITE)
    values = {
        "name": name,
        "daily_limit": daily_limit,
        "starts_on": starts_on,
        "greeting": greeting,
        "source": source,
        "channel_id": channel_id,
    }
    chosen: set[int] = set()
    path: Path | None = None
    try:
        chosen_ids = parse_staff_ids(staff_ids or [])
        chosen = set(chosen_ids)
        channel = parse_id(channel_id) if channel_id.strip() else None
        if channel_id.strip() and channel is None:
            raise InvalidInput("channel_id is not a valid id", details={"field": "channel_id"})
        spec = service.NewList(
            name=name,
            staff_ids=chosen_ids,
            daily_limit=_whole_number(daily_limit, "daily_limit"),
            starts_on=_day(starts_on, "starts_on") if starts_on.strip() else _today(ctx),
            greeting=greeting,
            source=source or None,
            channel_id=channel,
        )
        if file is None or not file.filename:
            raise InvalidInput("choose a file to upload", details={"field": "file"})
        path = save_upload(
            file.file,
            filename=file.filename,
            data_dir=ctx.settings.data_dir,
            workspace_id=ctx.actor.workspace_id,
            max_bytes=ctx.settings.max_upload_mb << 20,
        )
        report = service.import_list(
            ctx.session, actor=ctx.actor, path=path, spec=spec, clock=ctx.clock, phone_region=ctx.settings.phone_region
        )
    except DomainError as exc:
        return form_error(
            request, ctx, exc, NEW_TEMPLATE, lambda: _new_context(ctx, values=values, chosen_staff=chosen)
        )
    finally:
        if path is not None:
            path.unlink(missing_ok=True)
    _ = translator(request)
    message = _("已导入 {total} 行：分配 {assigned} 个，重复 {duplicates} 个，无效 {invalid} 个").format(
        total=report.total_rows,
        assigned=report.assigned,
        duplicates=report.task_list.duplicate_rows,
        invalid=report.invalid_rows,
    )
    if report.invalid:
        reasons = {"empty phone": _("手机号为空"), "not a valid phone number": _("手机号无效")}
        shown = "；".join(
            _("第 {row} 行：{reason}").format(row=r["row"], reason=reasons.get(str(r["reason"]), r["reason"]))
            for r in report.invalid[:REPORTED_IN_FLASH]
        )
        message += f" ({shown}{' …' if report.invalid_rows > REPORTED_IN_FLASH else ''})"
    flash(request, message)
    return redirect(f"/add-tasks/{report.task_list.id}")


@router.get("/add-tasks/mine")
def my_day(request: Request, ctx: ConsoleCtx, day: str = "", staff_id: str = "") -> Response:
    """A staff member's tasks for a day: their own, or any staff member's for operators (`?staff_id=`)."""
    chosen = parse_id(staff_id) if staff_id.strip() else None
    if staff_id.strip() and chosen is None:
        raise InvalidInput("staff_id is not a valid id", details={"field": "staff_id"})
    if (chosen is not None and chosen != ctx.actor.staff_id) or ctx.actor.staff_id is None:
        ctx.actor.require(Scope.ACQUISITION_READ)
    staff_id_ = chosen or ctx.actor.staff_id
    when = (
        _day(day, "day")
        if day.strip()
        else service.today(ctx.session, workspace_id=ctx.actor.workspace_id, clock=ctx.clock)
    )
    names = service.staff_names(ctx.session, workspace_id=ctx.actor.workspace_id)
    if staff_id_ is not None and staff_id_ not in names:
        raise InvalidInput("unknown staff member", details={"field": "staff_id"})
    whole = sees_pii(ctx.actor)
    tasks = []
    if staff_id_ is not None:
        for task, task_list in service.tasks_for_day(
            ctx.session, workspace_id=ctx.actor.workspace_id, staff_id=staff_id_, day=when
        ):
            tasks.append(
                {
                    "task": task,
                    "list": task_list,
                    "phone": shown_phone(task.phone, whole=whole, national=True),
                    "greeting": render_greeting(task_list.greeting, task.name),
                }
            )
    query = f"&staff_id={staff_id_}" if chosen is not None else ""
    return render(
        request,
        "add_tasks/mine.html",
        {
            "tasks": tasks,
            "day": when,
            "staff_id": staff_id_,
            "staff_name": names.get(staff_id_, "") if staff_id_ is not None else "",
            "staff_names": names if ctx.actor.can(Scope.ACQUISITION_READ) else {},
            "prev_url": f"/add-tasks/mine?day={(when - timedelta(days=1)).isoformat()}{query}",
            "next_url": f"/add-tasks/mine?day={(when + timedelta(days=1)).isoformat()}{query}",
            "query": query,
        },
    )


@router.post("/add-tasks/tasks/{task_id}/status")
def mark_task(
    request: Request,
    ctx: ConsoleCtx,
    task_id: IdPath,
    status: Annotated[str, Form()] = "",
    day: Annotated[str, Form()] = "",
    staff_id: Annotated[int | None, Form(gt=0, le=MAX_ID)] = None,
) -> Response:
    """The "requested" / "failed" buttons of a staff member's day."""
    task = service.mark_task(ctx.session, actor=ctx.actor, task_id=task_id, status=status, clock=ctx.clock)
    _ = translator(request)
    flash(request, _("已标记"))
    back = f"/add-tasks/mine?day={task.due_on.isoformat() if not day else _day(day, 'day').isoformat()}"
    if staff_id is not None and staff_id != ctx.actor.staff_id:
        back += f"&staff_id={staff_id}"
    return redirect(back)


@router.get("/add-tasks/{list_id}")
def list_page(request: Request, ctx: ConsoleCtx, list_id: IdPath) -> Response:
    ctx.actor.require(Scope.ACQUISITION_READ)
    task_list = service.get_list(ctx.session, workspace_id=ctx.actor.workspace_id, list_id=list_id)
    total, per_staff = service.list_conversion(ctx.session, workspace_id=ctx.actor.workspace_id, list_id=list_id)
    names = service.staff_names(ctx.session, workspace_id=ctx.actor.workspace_id)
    return render(
        request,
        "add_tasks/detail.html",
        {
            "list": task_list,
            "total": total,
            "per_staff": [(staff_id, names.get(staff_id, ""), c) for staff_id, c in per_staff.items()],
            "last_day": service.due_until(ctx.session, workspace_id=ctx.actor.workspace_id, list_id=list_id),
        },
    )
