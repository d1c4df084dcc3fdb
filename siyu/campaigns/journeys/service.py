"""Journey rules: drafting, editing, activation, pause and archive; enrolment lists; results.

Lifecycle: draft → active ⇄ paused → archived. Steps, trigger and goal can be changed while the
journey is a draft or paused, never while it runs; enrolments of a paused journey keep their step
index, so an edit that reorders steps moves waiting customers to whatever step now has that index.
Activation starts enrolling from triggers that happen after it (history is not replayed); the
same holds on resume: triggers while paused are not enrolled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.messaging import admission
from siyu.models import (
    Delivery,
    DeliveryStatus,
    EnrolmentStatus,
    Journey,
    JourneyEnrolment,
    JourneyStatus,
    JourneyStepRun,
    StaffTask,
    StaffTaskStatus,
)

from .definition import DAILY_TRIGGERS, validate_definition
from .triggers import high_water

EDITABLE = (JourneyStatus.DRAFT, JourneyStatus.PAUSED)


@dataclass
class JourneyInput:
    """What an operator writes: the raw definition parts are validated by `definition.py`."""

    name: str
    trigger: Any
    steps: Any
    goal: Any = None
    channel_account_ids: list[Any] = field(default_factory=list)
    reentry: bool = False


def get_journey(session: Session, actor: Actor, journey_id: int, *, for_update: bool = False) -> Journey:
    actor.require(Scope.TOUCH_READ)
    query = select(Journey).where(Journey.id == journey_id, Journey.workspace_id == actor.workspace_id)
    journey = session.scalar(query.with_for_update() if for_update else query)
    if journey is None:
        raise NotFound(f"journey {journey_id} not found")
    return journey


def list_journeys(session: Session, actor: Actor, *, include_archived: bool = False) -> Sequence[Journey]:
    actor.require(Scope.TOUCH_READ)
    query = select(Journey).where(Journey.workspace_id == actor.workspace_id)
    if not include_archived:
        query = query.where(Journey.status != JourneyStatus.ARCHIVED)
    return session.scalars(query.order_by(Journey.id.desc()).limit(500)).all()


def _apply(session: Session, actor: Actor, journey: Journey, data: JourneyInput) -> None:
    name = (data.name or "").strip()
    if not name or len(name) > 100 or "\x00" in name:
        raise InvalidInput("a name of 1–100 characters is required", details={"field": "name", "path": "$.name"})
    definition = validate_definition(
        session,
        actor.workspace_id,
        trigger=data.trigger,
        steps=data.steps,
        goal=data.goal,
        channel_account_ids=data.channel_account_ids,
    )
    if journey.trigger and journey.trigger != definition.trigger:
        journey.watermark = 0  # a new trigger reads another source; activation sets the start
    journey.name = name
    journey.trigger = definition.trigger
    journey.steps = definition.steps
    journey.goal = definition.goal
    journey.channel_account_ids = definition.channel_account_ids
    journey.reentry = bool(data.reentry)


def _audit(journey: Journey) -> dict[str, Any]:
    return {"name": journey.name, "status": str(journey.status), "trigger": journey.trigger, "steps": journey.steps}


def create_journey(session: Session, *, actor: Actor, data: JourneyInput, clock: Clock) -> Journey:
    """Save a draft journey; an unusable definition is a 422 naming the JSON path."""
    actor.require(Scope.TOUCH_WRITE)
    now = clock.now()
    journey = Journey(
        workspace_id=actor.workspace_id,
        status=JourneyStatus.DRAFT,
        trigger={},
        watermark=0,
        created_by=actor.label,
        created_at=now,
        updated_at=now,
    )
    _apply(session, actor, journey, data)
    session.add(journey)
    session.flush()
    record(
        session, actor, action="create", entity_type="journey", entity_id=journey.id, after=_audit(journey), clock=clock
    )
    return journey


def update_journey(session: Session, *, actor: Actor, journey_id: int, data: JourneyInput, clock: Clock) -> Journey:
    """Change a draft or paused journey (a running one must be paused first)."""
    actor.require(Scope.TOUCH_WRITE)
    journey = get_journey(session, actor, journey_id, for_update=True)
    if journey.status not in EDITABLE:
        raise Conflict("pause the journey before changing it", details={"field": "status"})
    before = _audit(journey)
    _apply(session, actor, journey, data)
    journey.updated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action="update",
        entity_type="journey",
        entity_id=journey.id,
        before=before,
        after=_audit(journey),
        clock=clock,
    )
    return journey


def _transition(
    session: Session, actor: Actor, journey_id: int, clock: Clock, allowed: Sequence[JourneyStatus], to: JourneyStatus
) -> Journey:
    actor.require(Scope.TOUCH_WRITE)
    journey = get_journey(session, actor, journey_id, for_update=True)
    if journey.status == to:
        return journey  # a repeated click changes nothing
    if journey.status not in allowed:
        raise Conflict(f"a {journey.status} journey cannot become {to}", details={"field": "status"})
    before = str(journey.status)
    journey.status, journey.updated_at = to, clock.now()
    record(
        session,
        actor,
        action=str(to),
        entity_type="journey",
        entity_id=journey.id,
        before={"status": before},
        after={"status": str(to)},
        clock=clock,
    )
    return journey


def activate_journey(session: Session, *, actor: Actor, journey_id: int, clock: Clock) -> Journey:
    """Start (or resume) enrolling and advancing; only triggers from now on enrol."""
    journey = get_journey(session, actor, journey_id)
    was = journey.status
    journey = _transition(
        session, actor, journey_id, clock, (JourneyStatus.DRAFT, JourneyStatus.PAUSED), JourneyStatus.ACTIVE
    )
    if was != JourneyStatus.ACTIVE:
        if journey.trigger["type"] not in DAILY_TRIGGERS:
            journey.watermark = high_water(session, journey)
        journey.activated_at = journey.activated_at or clock.now()
    session.flush()
    return journey


def pause_journey(session: Session, *, actor: Actor, journey_id: int, clock: Clock) -> Journey:
    """Stop enrolling and advancing; enrolments wait where they are."""
    journey = _transition(session, actor, journey_id, clock, (JourneyStatus.ACTIVE,), JourneyStatus.PAUSED)
    session.flush()
    return journey


def archive_journey(session: Session, *, actor: Actor, journey_id: int, clock: Clock) -> Journey:
    """End the journey for good: its active enrolments exit with reason "archived" and its queued
    deliveries are suppressed ("cancelled"), their cap slots given back."""
    journey = _transition(
        session,
        actor,
        journey_id,
        clock,
        (JourneyStatus.DRAFT, JourneyStatus.ACTIVE, JourneyStatus.PAUSED),
        JourneyStatus.ARCHIVED,
    )
    session.execute(
        update(JourneyEnrolment)
        .where(JourneyEnrolment.journey_id == journey.id, JourneyEnrolment.status == EnrolmentStatus.ACTIVE)
        .values(status=EnrolmentStatus.EXITED, exit_reason="archived", finished_at=clock.now(), next_run_at=None),
        execution_options={"synchronize_session": False},
    )
    _cancel_queued(session, journey, clock)
    session.flush()
    return journey


def _cancel_queued(session: Session, journey: Journey, clock: Clock) -> None:
    """Suppress the journey's deliveries not sent yet (e.g. held by quiet hours) and give their cap
    slots back: an archived journey sends nothing more.

    Customer id order, like every touch-state lock, so this never deadlocks with a planner."""
    queued = session.scalars(
        select(Delivery)
        .where(
            Delivery.workspace_id == journey.workspace_id,
            Delivery.source == "journey",
            Delivery.source_id == journey.id,
            Delivery.status == DeliveryStatus.QUEUED,
        )
        .order_by(Delivery.customer_id, Delivery.id)
        .with_for_update()
    ).all()
    if not queued:
        return
    for delivery in queued:
        delivery.status, delivery.reason = DeliveryStatus.SUPPRESSED, "cancelled"
    admission.release_slots(session, queued, clock)


# --- enrolments and results -----------------------------------------------------------------------


def enrolments_page(
    session: Session,
    actor: Actor,
    journey_id: int,
    *,
    status: EnrolmentStatus | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[JourneyEnrolment]:
    """Enrolments newest first, by id cursor."""
    journey = get_journey(session, actor, journey_id)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(JourneyEnrolment).where(JourneyEnrolment.journey_id == journey.id)
    if status is not None:
        query = query.where(JourneyEnrolment.status == status)
    if cursor:
        query = query.where(JourneyEnrolment.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(JourneyEnrolment.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1].id) if more and rows else None)


@dataclass
class StepStats:
    index: int
    step_id: str
    type: str
    ran: int = 0
    """Enrolments that ran this step."""
    here: int = 0
    """Active enrolments waiting in this step (a wait) or about to start (the first step)."""
    outcomes: dict[str, int] = field(default_factory=dict)
    sends: dict[str, int] = field(default_factory=dict)
    """Deliveries the step planned, by status ("suppressed:capped" for suppressed ones)."""


@dataclass
class JourneyStats:
    enrolled: int
    by_status: dict[str, int]
    goal_met: int
    steps: list[StepStats]


def journey_stats(session: Session, actor: Actor, journey_id: int) -> JourneyStats:
    """Per-journey and per-step counts for the detail page and the API."""
    journey = get_journey(session, actor, journey_id)
    by_status = {
        str(s): n
        for s, n in session.execute(
            select(JourneyEnrolment.status, func.count())
            .where(JourneyEnrolment.journey_id == journey.id)
            .group_by(JourneyEnrolment.status)
        )
    }
    goal_met = session.scalar(
        select(func.count()).where(
            JourneyEnrolment.journey_id == journey.id, JourneyEnrolment.exit_reason == "goal_met"
        )
    )
    steps = [StepStats(i, s["id"], s["type"]) for i, s in enumerate(journey.steps)]
    by_id = {s.step_id: s for s in steps}
    for index, step_id, outcome, n in session.execute(
        select(JourneyStepRun.step_index, JourneyStepRun.step_id, JourneyStepRun.outcome, func.count())
        .where(JourneyStepRun.journey_id == journey.id)
        .group_by(JourneyStepRun.step_index, JourneyStepRun.step_id, JourneyStepRun.outcome)
    ):
        target = by_id.get(step_id) or (steps[index] if index < len(steps) else None)
        if target is not None:
            target.ran += n
            target.outcomes[outcome] = target.outcomes.get(outcome, 0) + n
    for index, n in session.execute(
        select(JourneyEnrolment.step_index, func.count())
        .where(JourneyEnrolment.journey_id == journey.id, JourneyEnrolment.status == EnrolmentStatus.ACTIVE)
        .group_by(JourneyEnrolment.step_index)
    ):
        position = max(index - 1, 0)
        if position < len(steps):
            steps[position].here += n
    for step in steps:
        if step.type != "send":
            continue
        for status, reason, n in session.execute(
            select(Delivery.status, Delivery.reason, func.count())
            .where(
                Delivery.workspace_id == journey.workspace_id,
                Delivery.source == "journey",
                Delivery.source_id == journey.id,
                # "_" is a LIKE wildcard and may appear in step ids
                Delivery.step.like(step.step_id.replace("_", "\\_") + ":%", escape="\\"),
            )
            .group_by(Delivery.status, Delivery.reason)
        ):
            key = f"{status}:{reason}" if reason else str(status)
            step.sends[key] = step.sends.get(key, 0) + n
    return JourneyStats(sum(by_status.values()), by_status, int(goal_met or 0), steps)


# --- staff tasks ----------------------------------------------------------------------------------


def _task_scope(actor: Actor, staff_id: int | None) -> int | None:
    """The staff id a task query is limited to: any (operators) or the actor's own (staff)."""
    if actor.can(Scope.TOUCH_READ):
        return staff_id
    if actor.staff_id is None:
        raise PermissionDenied(f"missing permission {Scope.TOUCH_READ}", details={"scope": str(Scope.TOUCH_READ)})
    if staff_id is not None and staff_id != actor.staff_id:
        raise PermissionDenied("staff members see only their own tasks", details={"field": "staff_id"})
    return actor.staff_id


def list_tasks(
    session: Session,
    actor: Actor,
    *,
    staff_id: int | None = None,
    status: StaffTaskStatus | None = StaffTaskStatus.OPEN,
    limit: int = 200,
) -> Sequence[StaffTask]:
    """Staff tasks, oldest open first; staff members see only their own."""
    scope = _task_scope(actor, staff_id)
    query = select(StaffTask).where(StaffTask.workspace_id == actor.workspace_id)
    if scope is not None:
        query = query.where(StaffTask.staff_id == scope)
    if status is not None:
        query = query.where(StaffTask.status == status)
    return session.scalars(query.order_by(StaffTask.id).limit(max(1, min(limit, 500)))).all()


def complete_task(session: Session, *, actor: Actor, task_id: int, clock: Clock) -> StaffTask:
    """Mark a task done (staff: only their own); completing it twice changes nothing."""
    task = session.scalar(
        select(StaffTask).where(StaffTask.id == task_id, StaffTask.workspace_id == actor.workspace_id).with_for_update()
    )
    if task is None:
        raise NotFound(f"task {task_id} not found")
    if not actor.can(Scope.TOUCH_WRITE) and (actor.staff_id is None or task.staff_id != actor.staff_id):
        if actor.staff_id is None:
            raise PermissionDenied(f"missing permission {Scope.TOUCH_WRITE}", details={"scope": str(Scope.TOUCH_WRITE)})
        raise NotFound(f"task {task_id} not found")  # someone else's task: not even its existence
    if task.status == StaffTaskStatus.OPEN:
        task.status, task.done_at = StaffTaskStatus.DONE, clock.now()
        record(session, actor, action="done", entity_type="staff_task", entity_id=task.id, clock=clock)
    elif task.status != StaffTaskStatus.DONE:
        raise Conflict(f"the task is {task.status}", details={"field": "status"})
    session.flush()
    return task
