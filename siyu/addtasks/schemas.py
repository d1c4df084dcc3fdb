"""API shapes of add-by-phone lists and tasks."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from siyu.addtasks.phones import render_greeting
from siyu.addtasks.progress import Conversion
from siyu.addtasks.service import ImportReport
from siyu.auth.permissions import Actor
from siyu.customers.masking import sees_pii, shown_phone
from siyu.kit.errors import InvalidInput
from siyu.kit.ids import parse_id
from siyu.kit.schemas import Input
from siyu.models import AddTask, AddTaskList


class ConversionRead(BaseModel):
    assigned: int
    pending: int
    requested: int
    """Friend request sent, no answer yet."""
    added: int
    failed: int
    add_rate: float | None
    """added / assigned, 4 decimals; null for an empty list."""


class AddTaskListRead(BaseModel):
    id: int
    name: str
    source: str | None
    channel_id: int | None
    greeting: str
    daily_limit: int
    starts_on: date
    total_rows: int
    duplicate_rows: int
    invalid_rows: int
    created_by: str | None
    created_at: datetime
    progress: ConversionRead | None = None


class StaffConversionRead(ConversionRead):
    staff_id: int
    staff_name: str


class AddTaskListDetail(AddTaskListRead):
    per_staff: list[StaffConversionRead]


class AddTaskListPage(BaseModel):
    items: list[AddTaskListRead]
    next_cursor: str | None


class InvalidRow(BaseModel):
    row: int
    reason: str


class ImportReportRead(BaseModel):
    task_list: AddTaskListRead
    total_rows: int
    assigned: int
    duplicates_in_list: int
    already_friends: int
    linked_customers: int
    invalid_rows: int
    invalid: list[InvalidRow]
    """Row numbers count the header as row 1 (as a spreadsheet shows them)."""
    per_staff: dict[int, int]
    last_due_on: date | None


class AddTaskRead(BaseModel):
    id: int
    list_id: int
    staff_id: int
    phone: str | None
    """Whole with the customers:pii scope, masked (138****8000) without."""
    name: str | None
    customer_id: int | None
    due_on: date
    status: str
    greeting: str
    added_at: datetime | None
    updated_at: datetime | None


class AddTaskPage(BaseModel):
    items: list[AddTaskRead]
    next_cursor: str | None


class TaskStatusIn(Input):
    model_config = ConfigDict(extra="forbid")

    status: str
    """"requested" (friend request sent) or "failed" (not found / refused)."""


def conversion_read(conversion: Conversion) -> ConversionRead:
    rate = conversion.add_rate
    return ConversionRead(
        assigned=conversion.assigned,
        pending=conversion.pending,
        requested=conversion.requested,
        added=conversion.added,
        failed=conversion.failed,
        add_rate=round(rate, 4) if rate is not None else None,
    )


def list_read(task_list: AddTaskList, progress: Conversion | None = None) -> AddTaskListRead:
    return AddTaskListRead(
        id=task_list.id,
        name=task_list.name,
        source=task_list.source,
        channel_id=task_list.channel_id,
        greeting=task_list.greeting,
        daily_limit=task_list.daily_limit,
        starts_on=task_list.starts_on,
        total_rows=task_list.total_rows,
        duplicate_rows=task_list.duplicate_rows,
        invalid_rows=task_list.invalid_rows,
        created_by=task_list.created_by,
        created_at=task_list.created_at,
        progress=conversion_read(progress) if progress is not None else None,
    )


def report_read(report: ImportReport) -> ImportReportRead:
    return ImportReportRead(
        task_list=list_read(report.task_list),
        total_rows=report.total_rows,
        assigned=report.assigned,
        duplicates_in_list=report.duplicates_in_list,
        already_friends=report.already_friends,
        linked_customers=report.linked_customers,
        invalid_rows=report.invalid_rows,
        invalid=[InvalidRow(row=int(str(r["row"])), reason=str(r["reason"])) for r in report.invalid],
        per_staff=report.per_staff,
        last_due_on=report.last_due_on,
    )


def task_read(task: AddTask, greeting: str, actor: Actor) -> AddTaskRead:
    return AddTaskRead(
        id=task.id,
        list_id=task.list_id,
        staff_id=task.staff_id,
        phone=shown_phone(task.phone, whole=sees_pii(actor)),
        name=task.name,
        customer_id=task.customer_id,
        due_on=task.due_on,
        status=str(task.status),
        greeting=render_greeting(greeting, task.name),
        added_at=task.added_at,
        updated_at=task.updated_at,
    )


def parse_staff_ids(values: list[str]) -> list[int]:
    """Staff ids from form fields, repeated (`staff_ids=1&staff_ids=2`) or comma-separated ("1,2")."""
    ids: list[int] = []
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            parsed = parse_id(part)
            if parsed is None:
                raise InvalidInput(f"staff id {part.strip()[:20]!r} is not a valid id", details={"field": "staff_ids"})
            ids.append(parsed)
    return ids
