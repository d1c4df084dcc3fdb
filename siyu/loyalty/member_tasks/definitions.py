"""The operator's task list: create, change, list and retire member tasks (every change audited)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor
from siyu.kit.clock import Clock
from siyu.loyalty.errors import InvalidTask, TaskKeyTaken, TaskNotFound
from siyu.loyalty.member_tasks.schemas import MAX_TASK_POINTS, TaskIn
from siyu.models import LimitPeriod, LoyaltyTask, TaskKind

CHECK_IN_KEY = "check_in"
"""The one daily check-in task of a workspace has this key, so the unique (workspace, key) makes it one."""
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
PROFILE_FIELDS = ("name", "gender", "birthday", "province", "city", "email", "phone")
"""Customer columns a `profile` task may require; `attributes.<key>` names a custom attribute."""
DEFAULT_PROFILE_FIELDS = ["name", "gender", "birthday", "city"]
MAX_STREAK = 366


def _fail(message: str, field: str) -> InvalidTask:
    return InvalidTask(message, details={"field": field})


def validate_task(data: TaskIn) -> dict[str, Any]:
    """The column values of a valid task, or `InvalidTask` naming the field."""
    key = data.key.strip()
    if not _KEY.match(key):
        raise _fail("key must be lowercase letters, digits, '_' or '-' (at most 50)", "key")
    if (data.kind == TaskKind.CHECK_IN) != (key == CHECK_IN_KEY):
        raise _fail(f'the daily check-in task has the key "{CHECK_IN_KEY}", and only it', "key")
    name = data.name.strip()
    if not name:
        raise _fail("name is required", "name")
    bonuses: dict[str, int] = {}
    if data.streak_bonuses and data.kind != TaskKind.CHECK_IN:
        raise _fail("streak bonuses are for the daily check-in only", "streak_bonuses")
    for length, points in data.streak_bonuses.items():
        if not length.isdigit() or not 2 <= int(length) <= MAX_STREAK:
            raise _fail(
                f"streak length {length!r} must be a whole number of days from 2 to {MAX_STREAK}", "streak_bonuses"
            )
        if isinstance(points, bool) or not 1 <= points <= MAX_TASK_POINTS:
            raise _fail(f"the bonus for {length} days must be 1 to {MAX_TASK_POINTS} points", "streak_bonuses")
        bonuses[str(int(length))] = points
    limit_period, limit_count = data.limit_period, data.limit_count
    if data.kind == TaskKind.CHECK_IN and (limit_period != LimitPeriod.DAY or limit_count != 1):
        raise _fail("the check-in counts once a day", "limit_period")
    settings = dict(data.settings)
    if data.kind == TaskKind.PROFILE:
        settings["required_fields"] = _required_fields(settings.get("required_fields", DEFAULT_PROFILE_FIELDS))
    return {
        "key": key,
        "kind": data.kind,
        "name": name,
        "description": (data.description or "").strip() or None,
        "points": data.points,
        "limit_period": limit_period,
        "limit_count": limit_count,
        "streak_bonuses": bonuses,
        "settings": settings,
        "is_active": data.is_active,
        "sort_order": data.sort_order,
    }


def _required_fields(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw or not all(isinstance(f, str) for f in raw):
        raise _fail("settings.required_fields must be a non-empty list of profile fields", "settings.required_fields")
    for name in raw:
        attribute = name.removeprefix("attributes.")
        if name not in PROFILE_FIELDS and not (name.startswith("attributes.") and attribute):
            raise _fail(f"unknown profile field {name!r}", "settings.required_fields")
    return list(dict.fromkeys(raw))


def _snapshot(task: LoyaltyTask) -> dict[str, Any]:
    return {
        "key": task.key,
        "kind": str(task.kind),
        "name": task.name,
        "points": task.points,
        "limit_period": str(task.limit_period),
        "limit_count": task.limit_count,
        "streak_bonuses": dict(task.streak_bonuses or {}),
        "is_active": task.is_active,
    }


def list_tasks(session: Session, *, workspace_id: int, include_inactive: bool = True) -> Sequence[LoyaltyTask]:
    """The workspace's tasks in display order."""
    query = select(LoyaltyTask).where(LoyaltyTask.workspace_id == workspace_id)
    if not include_inactive:
        query = query.where(LoyaltyTask.is_active.is_(True))
    return session.scalars(query.order_by(LoyaltyTask.sort_order, LoyaltyTask.id)).all()


def get_task(session: Session, *, workspace_id: int, task_id: int, for_update: bool = False) -> LoyaltyTask:
    query = select(LoyaltyTask).where(LoyaltyTask.workspace_id == workspace_id, LoyaltyTask.id == task_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    task = session.scalar(query)
    if task is None:
        raise TaskNotFound(f"task {task_id} not found", details={"task_id": task_id})
    return task


def get_task_by_key(session: Session, *, workspace_id: int, key: str) -> LoyaltyTask:
    task = session.scalar(select(LoyaltyTask).where(LoyaltyTask.workspace_id == workspace_id, LoyaltyTask.key == key))
    if task is None:
        raise TaskNotFound(f"task {key!r} not found", details={"task_key": key})
    return task


def create_task(session: Session, *, actor: Actor, data: TaskIn, clock: Clock) -> LoyaltyTask:
    """Add a task; a key already used in the workspace is `TaskKeyTaken` (the unique key decides)."""
    values = validate_task(data)
    now = clock.now()
    task = LoyaltyTask(workspace_id=actor.workspace_id, created_at=now, updated_at=now, **values)
    try:
        with session.begin_nested():
            session.add(task)
            session.flush()
    except IntegrityError as exc:
        raise TaskKeyTaken(f"a task with key {values['key']!r} exists", details={"field": "key"}) from exc
    record(
        session,
        actor,
        action="create",
        entity_type="loyalty_task",
        entity_id=task.id,
        clock=clock,
        after=_snapshot(task),
    )
    return task


def update_task(session: Session, *, actor: Actor, task_id: int, data: TaskIn, clock: Clock) -> LoyaltyTask:
    """Change a task. The key and kind stay (completions and other areas name the task by them)."""
    task = get_task(session, workspace_id=actor.workspace_id, task_id=task_id, for_update=True)
    values = validate_task(data)
    if values["key"] != task.key:
        raise _fail("the key of a task cannot change", "key")
    if values["kind"] != task.kind:
        raise _fail("the kind of a task cannot change", "kind")
    before = _snapshot(task)
    for name, value in values.items():
        setattr(task, name, value)
    task.updated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action="update",
        entity_type="loyalty_task",
        entity_id=task.id,
        clock=clock,
        before=before,
        after=_snapshot(task),
    )
    return task


def deactivate_task(session: Session, *, actor: Actor, task_id: int, clock: Clock) -> LoyaltyTask:
    """Retire a task: members no longer see or complete it; its completions and points stay."""
    task = get_task(session, workspace_id=actor.workspace_id, task_id=task_id, for_update=True)
    if task.is_active:
        task.is_active = False
        task.updated_at = clock.now()
        session.flush()
        record(
            session,
            actor,
            action="deactivate",
            entity_type="loyalty_task",
            entity_id=task.id,
            clock=clock,
            before={"is_active": True},
            after={"is_active": False},
        )
    return task
