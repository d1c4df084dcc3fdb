"""Working an add-by-phone list: a staff member's day, marking tasks, matching adds, conversion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, case, func, or_, select
from sqlalchemy.orm import Session

from siyu.addtasks.errors import AddTaskAlreadyAdded, AddTaskNotFound
from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.models import AddTask, AddTaskList, AddTaskStatus, Customer, Identity, IdentityType

MATCHABLE = (AddTaskStatus.PENDING, AddTaskStatus.REQUESTED, AddTaskStatus.FAILED)
"""Tasks an arriving add can complete: a "failed" mark is overruled by the add itself."""
MARKABLE = (AddTaskStatus.REQUESTED, AddTaskStatus.FAILED)


@dataclass
class Conversion:
    """Task counts by status; `assigned` is all of them."""

    pending: int = 0
    requested: int = 0
    added: int = 0
    failed: int = 0

    @property
    def assigned(self) -> int:
        return self.pending + self.requested + self.added + self.failed

    @property
    def add_rate(self) -> float | None:
        """Added / assigned (None for no tasks)."""
        return self.added / self.assigned if self.assigned else None

    def count(self, status: str, n: int) -> None:
        setattr(self, AddTaskStatus(status).value, getattr(self, AddTaskStatus(status).value) + n)


def lists_progress(session: Session, *, workspace_id: int, list_ids: Sequence[int]) -> dict[int, Conversion]:
    """Conversion of each list, in one query."""
    progress = {list_id: Conversion() for list_id in list_ids}
    if not list_ids:
        return progress
    rows = session.execute(
        select(AddTask.list_id, AddTask.status, func.count(AddTask.id))
        .where(AddTask.workspace_id == workspace_id, AddTask.list_id.in_(list_ids))
        .group_by(AddTask.list_id, AddTask.status)
    )
    for list_id, status, n in rows:
        progress[int(list_id)].count(status, int(n))
    return progress


def list_conversion(session: Session, *, workspace_id: int, list_id: int) -> tuple[Conversion, dict[int, Conversion]]:
    """A list's conversion overall and per assigned staff member."""
    total = Conversion()
    per_staff: dict[int, Conversion] = {}
    rows = session.execute(
        select(AddTask.staff_id, AddTask.status, func.count(AddTask.id))
        .where(AddTask.workspace_id == workspace_id, AddTask.list_id == list_id)
        .group_by(AddTask.staff_id, AddTask.status)
        .order_by(AddTask.staff_id)
    )
    for staff_id, status, n in rows:
        total.count(status, int(n))
        per_staff.setdefault(int(staff_id), Conversion()).count(status, int(n))
    return total, per_staff


def tasks_for_day(
    session: Session, *, workspace_id: int, staff_id: int, day: date
) -> list[tuple[AddTask, AddTaskList]]:
    """A staff member's tasks due on `day`, open ones first, with their list (for the greeting)."""
    order = case((AddTask.status == AddTaskStatus.PENDING, 0), (AddTask.status == AddTaskStatus.REQUESTED, 1), else_=2)
    rows = session.execute(
        select(AddTask, AddTaskList)
        .join(AddTaskList, AddTaskList.id == AddTask.list_id)
        .where(AddTask.workspace_id == workspace_id, AddTask.staff_id == staff_id, AddTask.due_on == day)
        .order_by(order, AddTask.id)
    ).all()
    return [(task, task_list) for task, task_list in rows]


def mark_task(session: Session, *, actor: Actor, task_id: int, status: str, clock: Clock) -> AddTask:
    """A staff member marks their task "requested" (friend request sent) or "failed" (not found, refused).

    Staff may mark only their own tasks (others' are a 404); operators may mark any.
    """
    try:
        wanted = AddTaskStatus(status)
    except ValueError:
        wanted = None
    if actor.staff_id is None:
        actor.require(Scope.ACQUISITION_WRITE)
    if wanted not in MARKABLE:
        raise InvalidInput("status must be requested or failed", details={"field": "status"})
    task = session.scalar(
        select(AddTask).where(AddTask.id == task_id, AddTask.workspace_id == actor.workspace_id).with_for_update()
    )
    if task is None or not (actor.can(Scope.ACQUISITION_WRITE) or task.staff_id == actor.staff_id):
        raise AddTaskNotFound(f"add task {task_id} not found")
    if task.status == AddTaskStatus.ADDED:
        raise AddTaskAlreadyAdded("the customer is already a friend", details={"field": "status"})
    if task.status == wanted:
        return task
    before = str(task.status)
    task.status = wanted
    task.updated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action="update",
        entity_type="add_task",
        entity_id=task.id,
        before={"status": before},
        after={"status": str(wanted)},
        clock=clock,
    )
    return task


def _phones_of(session: Session, workspace_id: int, customer_id: int) -> list[str]:
    phones = set(
        session.scalars(
            select(Identity.value).where(
                Identity.workspace_id == workspace_id,
                Identity.customer_id == customer_id,
                Identity.type == IdentityType.PHONE,
            )
        )
    )
    primary = session.scalar(
        select(Customer.phone).where(Customer.id == customer_id, Customer.workspace_id == workspace_id)
    )
    if primary:
        phones.add(primary)
    return sorted(phones)


def _of_customer(customer_id: int, phones: list[str]) -> ColumnElement[bool]:
    if not phones:
        return AddTask.customer_id == customer_id
    return or_(AddTask.customer_id == customer_id, AddTask.phone.in_(phones))


def match_add(session: Session, *, workspace_id: int, customer_id: int, staff_id: int, at: datetime) -> AddTask | None:
    """Mark the customer's open add task ADDED when their friend add arrives; None if there is none.

    The task is found by customer id or by any of the customer's phones; the task of `staff_id`
    wins, else any open task of that phone in the workspace (requested before pending, earliest
    due first). Idempotent: the same add (`at`) again returns the task it matched and changes nothing.
    Called by the live code / WeCom add flow inside its own transaction.
    """
    phones = _phones_of(session, workspace_id, customer_id)
    of_customer = _of_customer(customer_id, phones)
    done = select(AddTask).where(
        AddTask.workspace_id == workspace_id,
        of_customer,
        AddTask.status == AddTaskStatus.ADDED,
        AddTask.added_at == at,
    )
    if (already := session.scalar(done.order_by(AddTask.id).limit(1))) is not None:
        return already
    preference = (
        case((AddTask.staff_id == staff_id, 0), else_=1),
        case((AddTask.status == AddTaskStatus.REQUESTED, 0), (AddTask.status == AddTaskStatus.PENDING, 1), else_=2),
        AddTask.due_on,
        AddTask.id,
    )
    task = session.scalar(
        select(AddTask)
        .where(AddTask.workspace_id == workspace_id, of_customer, AddTask.status.in_(MATCHABLE))
        .order_by(*preference)
        .limit(1)
        .with_for_update()
    )
    if task is None:
        # A concurrent call may have matched the task while this one waited for its lock.
        return session.scalar(done.order_by(AddTask.id).limit(1))
    task.status = AddTaskStatus.ADDED
    task.added_at = at
    task.updated_at = at
    if task.customer_id is None:
        task.customer_id = customer_id
    session.flush()
    return task
