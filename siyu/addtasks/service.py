"""Add-by-phone lists (主动添加): import phones, drop those already friends, split into daily per-staff tasks.

Staff work their list for the day (send the friend request, mark it requested or failed); when the
customer's add arrives, `match_add` marks the task added. Conversion is read per list and per staff.
Marking and matching live in `siyu.addtasks.progress` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from siyu.addtasks.errors import AddTaskListNotFound
from siyu.addtasks.phones import PhoneFile, PhoneRow, check_greeting, read_phone_file
from siyu.addtasks.progress import (
    Conversion,
    list_conversion,
    lists_progress,
    mark_task,
    match_add,
    tasks_for_day,
)
from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.models import (
    AddTask,
    AddTaskList,
    AddTaskStatus,
    Channel,
    Customer,
    Identity,
    IdentityType,
    Relationship,
    Staff,
    Workspace,
)

__all__ = [
    "Conversion",
    "ImportReport",
    "NewList",
    "get_list",
    "import_list",
    "list_conversion",
    "list_lists",
    "list_tasks",
    "lists_progress",
    "mark_task",
    "match_add",
    "split_days",
    "tasks_for_day",
    "today",
]

MAX_DAILY_LIMIT = 1000
CHUNK = 500


@dataclass(frozen=True)
class NewList:
    """What the operator chooses for a new list (the phones come from the file)."""

    name: str
    staff_ids: Sequence[int]
    """Staff to split the phones across, round-robin in this order."""
    daily_limit: int
    """Most tasks per staff member per day."""
    starts_on: date
    greeting: str = ""
    source: str | None = None
    channel_id: int | None = None


@dataclass
class ImportReport:
    """What became of each row of the file."""

    task_list: AddTaskList
    total_rows: int
    assigned: int
    duplicates_in_list: int
    already_friends: int
    """Phones whose customer already has an open relationship with some staff member."""
    linked_customers: int
    """Assigned phones that belong to a pool customer (not yet a friend)."""
    invalid_rows: int
    invalid: list[dict[str, object]]
    per_staff: dict[int, int] = field(default_factory=dict)
    last_due_on: date | None = None


def today(session: Session, *, workspace_id: int, clock: Clock) -> date:
    """Today in the brand's time zone."""
    workspace = session.get(Workspace, workspace_id)
    return clock.now().astimezone(ZoneInfo(workspace.timezone if workspace else "Asia/Shanghai")).date()


def split_days(count: int, *, staff_ids: Sequence[int], daily_limit: int, starts_on: date) -> list[tuple[int, date]]:
    """(staff id, due day) for each of `count` phones in order: round-robin across staff, each
    staff member's k-th phone due `k // daily_limit` days after `starts_on`."""
    if not staff_ids or daily_limit <= 0:
        raise ValueError("split_days needs staff and a positive daily limit")
    per_staff: dict[int, int] = {}
    plan = []
    for index in range(count):
        staff_id = staff_ids[index % len(staff_ids)]
        nth = per_staff.get(staff_id, 0)
        per_staff[staff_id] = nth + 1
        plan.append((staff_id, starts_on + timedelta(days=nth // daily_limit)))
    return plan


def _check_spec(session: Session, actor: Actor, spec: NewList) -> tuple[str, list[int], str]:
    name = spec.name.strip()
    if not name:
        raise InvalidInput("name is required", details={"field": "name"})
    if len(name) > 100:
        raise InvalidInput("name is longer than 100 characters", details={"field": "name"})
    if not 0 < spec.daily_limit <= MAX_DAILY_LIMIT:
        raise InvalidInput(f"daily_limit must be between 1 and {MAX_DAILY_LIMIT}", details={"field": "daily_limit"})
    staff_ids = list(dict.fromkeys(spec.staff_ids))
    if not staff_ids:
        raise InvalidInput("choose at least one staff member", details={"field": "staff_ids"})
    active = {
        row.id: row.is_active
        for row in session.scalars(
            select(Staff).where(Staff.workspace_id == actor.workspace_id, Staff.id.in_(staff_ids))
        )
    }
    unknown = [s for s in staff_ids if s not in active]
    if unknown:
        raise InvalidInput(
            f"unknown staff: {', '.join(map(str, unknown))}", details={"field": "staff_ids", "unknown": unknown}
        )
    inactive = [s for s in staff_ids if not active[s]]
    if inactive:
        raise InvalidInput(
            f"inactive staff: {', '.join(map(str, inactive))}", details={"field": "staff_ids", "inactive": inactive}
        )
    if spec.channel_id is not None and (
        session.scalar(
            select(Channel.id).where(Channel.id == spec.channel_id, Channel.workspace_id == actor.workspace_id)
        )
        is None
    ):
        raise InvalidInput("unknown channel", details={"field": "channel_id"})
    if spec.source is not None and len(spec.source.strip()) > 100:
        raise InvalidInput("source is longer than 100 characters", details={"field": "source"})
    return name, staff_ids, check_greeting(spec.greeting)


def _pool_customers(session: Session, workspace_id: int, phones: list[str]) -> dict[str, int]:
    """Phone → live customer id, for the phones some customer holds as a phone identity."""
    found: dict[str, int] = {}
    for start in range(0, len(phones), CHUNK):
        rows = session.execute(
            select(Identity.value, Identity.customer_id)
            .join(Customer, Customer.id == Identity.customer_id)
            .where(
                Identity.workspace_id == workspace_id,
                Identity.type == IdentityType.PHONE,
                Identity.value.in_(phones[start : start + CHUNK]),
                Customer.merged_into_id.is_(None),
            )
        )
        found.update({value: int(customer_id) for value, customer_id in rows})
    return found


def _friends(session: Session, workspace_id: int, customer_ids: list[int]) -> set[int]:
    """Customers with an open relationship with any staff member."""
    friends: set[int] = set()
    for start in range(0, len(customer_ids), CHUNK):
        friends.update(
            session.scalars(
                select(Relationship.customer_id)
                .where(
                    Relationship.workspace_id == workspace_id,
                    Relationship.customer_id.in_(customer_ids[start : start + CHUNK]),
                    Relationship.removed_at.is_(None),
                )
                .distinct()
            )
        )
    return friends


def import_list(
    session: Session, *, actor: Actor, path: Path, spec: NewList, clock: Clock, phone_region: str = "CN"
) -> ImportReport:
    """Read a phone file and create the list and its tasks, or raise 422 and write nothing.

    Rows with a bad phone are counted and reported with their row number; repeats within the file
    and phones of customers who are already someone's friend are dropped as duplicates; phones of
    pool customers without a relationship are kept and linked to the customer.
    """
    actor.require(Scope.ACQUISITION_WRITE)
    name, staff_ids, greeting = _check_spec(session, actor, spec)
    parsed = read_phone_file(path, region=phone_region)
    if not parsed.rows:
        raise InvalidInput(
            "no row has a valid phone number",
            details={"field": "file", "rows": parsed.invalid[:20]},
        )
    return _create(session, actor, spec, name, staff_ids, greeting, parsed, clock)


def _create(
    session: Session,
    actor: Actor,
    spec: NewList,
    name: str,
    staff_ids: list[int],
    greeting: str,
    parsed: PhoneFile,
    clock: Clock,
) -> ImportReport:
    unique: dict[str, PhoneRow] = {}
    for row in parsed.rows:
        first = unique.setdefault(row.phone, row)
        if first.name is None and row.name is not None:  # keep the first row, but a later name helps
            unique[row.phone] = PhoneRow(row=first.row, phone=first.phone, name=row.name)
    in_list = len(parsed.rows) - len(unique)
    customers = _pool_customers(session, actor.workspace_id, list(unique))
    friends = _friends(session, actor.workspace_id, sorted(set(customers.values())))
    keep = [row for row in unique.values() if customers.get(row.phone) not in friends]
    already = len(unique) - len(keep)
    now = clock.now()
    task_list = AddTaskList(
        workspace_id=actor.workspace_id,
        name=name,
        source=(spec.source or "").strip() or None,
        channel_id=spec.channel_id,
        greeting=greeting,
        daily_limit=spec.daily_limit,
        starts_on=spec.starts_on,
        total_rows=parsed.total_rows,
        duplicate_rows=in_list + already,
        invalid_rows=parsed.invalid_count,
        created_by=actor.label,
        created_at=now,
    )
    session.add(task_list)
    session.flush()
    plan = split_days(len(keep), staff_ids=staff_ids, daily_limit=spec.daily_limit, starts_on=spec.starts_on)
    rows: list[dict[str, Any]] = [
        {
            "workspace_id": actor.workspace_id,
            "list_id": task_list.id,
            "staff_id": staff_id,
            "phone": row.phone,
            "name": row.name,
            "customer_id": customers.get(row.phone),
            "due_on": due_on,
            "status": AddTaskStatus.PENDING,
            "updated_at": now,
        }
        for row, (staff_id, due_on) in zip(keep, plan, strict=True)
    ]
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(AddTask), rows[start : start + CHUNK])
    per_staff: dict[int, int] = {}
    for staff_id, _due in plan:
        per_staff[staff_id] = per_staff.get(staff_id, 0) + 1
    report = ImportReport(
        task_list=task_list,
        total_rows=parsed.total_rows,
        assigned=len(keep),
        duplicates_in_list=in_list,
        already_friends=already,
        linked_customers=sum(1 for row in keep if row.phone in customers),
        invalid_rows=parsed.invalid_count,
        invalid=parsed.invalid,
        per_staff=per_staff,
        last_due_on=max((due for _s, due in plan), default=None),
    )
    record(
        session,
        actor,
        action="create",
        entity_type="add_task_list",
        entity_id=task_list.id,
        after={
            "name": name,
            "staff_ids": staff_ids,
            "daily_limit": spec.daily_limit,
            "starts_on": spec.starts_on.isoformat(),
            "assigned": report.assigned,
            "duplicates": task_list.duplicate_rows,
            "invalid": report.invalid_rows,
        },
        clock=clock,
    )
    return report


def get_list(session: Session, *, workspace_id: int, list_id: int) -> AddTaskList:
    task_list = session.scalar(
        select(AddTaskList).where(AddTaskList.id == list_id, AddTaskList.workspace_id == workspace_id)
    )
    if task_list is None:
        raise AddTaskListNotFound(f"add-by-phone list {list_id} not found")
    return task_list


def list_lists(session: Session, *, workspace_id: int, cursor: str | None = None, limit: int = 50) -> Page[AddTaskList]:
    """Lists, newest first."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(AddTaskList).where(AddTaskList.workspace_id == workspace_id)
    if cursor:
        query = query.where(AddTaskList.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(AddTaskList.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


def due_until(session: Session, *, workspace_id: int, list_id: int) -> date | None:
    """The last day any task of the list is due."""
    return session.scalar(
        select(func.max(AddTask.due_on)).where(AddTask.workspace_id == workspace_id, AddTask.list_id == list_id)
    )


def staff_names(session: Session, *, workspace_id: int) -> dict[int, str]:
    return {
        s.id: s.name
        for s in session.scalars(select(Staff).where(Staff.workspace_id == workspace_id).order_by(Staff.name))
    }


def staff_choices(session: Session, *, workspace_id: int) -> list[Staff]:
    """Active staff, by name (the new-list form)."""
    return list(
        session.scalars(
            select(Staff).where(Staff.workspace_id == workspace_id, Staff.is_active.is_(True)).order_by(Staff.name)
        )
    )


def list_tasks(
    session: Session,
    *,
    workspace_id: int,
    list_id: int,
    staff_id: int | None = None,
    status: str | None = None,
    due_on: date | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[AddTask]:
    """A list's tasks in id order, optionally one staff member's, one status or one day."""
    get_list(session, workspace_id=workspace_id, list_id=list_id)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(AddTask).where(AddTask.workspace_id == workspace_id, AddTask.list_id == list_id)
    if staff_id is not None:
        query = query.where(AddTask.staff_id == staff_id)
    if status:
        try:
            query = query.where(AddTask.status == AddTaskStatus(status))
        except ValueError as exc:
            raise InvalidInput("unknown status", details={"field": "status"}) from exc
    if due_on is not None:
        query = query.where(AddTask.due_on == due_on)
    if cursor:
        query = query.where(AddTask.id > decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(AddTask.id).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


def channel_choices(session: Session, *, workspace_id: int) -> list[Channel]:
    """Channels a list may be attributed to (not archived), by name."""
    return list(
        session.scalars(
            select(Channel)
            .where(Channel.workspace_id == workspace_id, Channel.is_archived.is_(False))
            .order_by(Channel.name)
        )
    )
