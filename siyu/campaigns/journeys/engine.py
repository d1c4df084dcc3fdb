"""The journey engine: enrol from triggers, then advance due enrolments step by step.

`run_journeys(database, clock)` is one sweep; the periodic job, the CLI and the tests call it,
and it is safe to run in several processes at once and to kill at any point:

- Enrolment happens per journey in batches, each in one transaction that locks the journey row,
  inserts enrolments (insert-or-ignore on the entry key) and moves the watermark over rows old
  enough that no lower id can still commit (see `triggers`).
- Each due enrolment advances in its own transaction: the enrolment row is locked (SKIP LOCKED
  on PostgreSQL, so two workers share the queue), and for every step the `JourneyStepRun` row is
  inserted first — its unique (enrolment, step) key is the guard — then the action runs, then the
  enrolment's step index and next run time move, all committed together. A crash before the
  commit leaves nothing; a crash after it leaves a finished step. Either way no step acts twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.kit.clock import Clock, as_utc
from siyu.kit.errors import DomainError
from siyu.kit.sql import insert_or_ignore
from siyu.models import Customer, EnrolmentStatus, Journey, JourneyEnrolment, JourneyStatus, JourneyStepRun
from siyu.workspaces.scope import bind_workspace

from . import steps as step_actions
from .definition import DAILY_TRIGGERS
from .triggers import enrol_daily, enrol_from_source

logger = logging.getLogger(__name__)
BATCH_SIZE = 500
MAX_ENROL_BATCHES = 200
"""Per journey and sweep: a backlog larger than this many batches continues on the next tick."""
MAX_STEPS_PER_RUN = 60
"""More than a journey can hold (50 steps), so one pass always reaches a wait or the end."""


class StepAlreadyRan(Exception):
    """Another worker committed this step first; this transaction is abandoned."""


def run_journeys(database: Database, clock: Clock, *, batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """One sweep over every active journey: enrol new entries, advance what is due.

    Returns counts: enrolled, advanced (enrolments processed), steps (step runs), and what the
    processed enrolments became: waiting, completed, exited, failed; skipped (taken by another
    worker), errors (rolled back, retried on the next sweep).
    """
    totals: Counter[str] = Counter()
    with database.transaction(read_only=True) as session:
        journeys = session.execute(
            select(Journey.id, Journey.workspace_id)
            .where(Journey.status == JourneyStatus.ACTIVE)
            .order_by(Journey.id)
            .execution_options(siyu_unscoped=True)
        ).all()
    for journey_id, workspace_id in journeys:
        totals["enrolled"] += enrol_journey(database, workspace_id, journey_id, clock, batch_size=batch_size)
    totals.update(advance_due(database, clock, batch_size=batch_size))
    keys = ("enrolled", "advanced", "steps", "waiting", "completed", "exited", "failed", "skipped", "errors")
    return {key: totals[key] for key in keys}


def enrol_journey(database: Database, workspace_id: int, journey_id: int, clock: Clock, *, batch_size: int) -> int:
    """Enrol from one journey's trigger until its source is drained (or the batch budget is spent)."""
    enrolled = 0
    after: int | None = None  # this sweep's read position; the stored watermark trails behind it
    for _ in range(MAX_ENROL_BATCHES):
        with database.transaction() as session:
            bind_workspace(session, workspace_id)
            journey = session.scalar(select(Journey).where(Journey.id == journey_id).with_for_update())
            if journey is None or journey.status != JourneyStatus.ACTIVE:
                return enrolled
            if journey.trigger["type"] in DAILY_TRIGGERS:
                return enrolled + enrol_daily(session, journey, clock)
            read, added, after = enrol_from_source(session, journey, clock, batch_size=batch_size, after=after)
            enrolled += added
        if read < batch_size:
            return enrolled
    return enrolled


def advance_due(database: Database, clock: Clock, *, batch_size: int = BATCH_SIZE) -> Counter[str]:
    """Advance every enrolment due now, once each, in id order."""
    totals: Counter[str] = Counter()
    after = 0
    now = clock.now()
    while True:
        with database.transaction(read_only=True) as session:
            due = session.execute(
                select(JourneyEnrolment.id, JourneyEnrolment.workspace_id)
                .join(Journey, Journey.id == JourneyEnrolment.journey_id)
                .where(
                    JourneyEnrolment.status == EnrolmentStatus.ACTIVE,
                    JourneyEnrolment.next_run_at <= now,
                    JourneyEnrolment.id > after,
                    Journey.status == JourneyStatus.ACTIVE,
                )
                .order_by(JourneyEnrolment.id)
                .limit(batch_size)
                .execution_options(siyu_unscoped=True)
            ).all()
        for enrolment_id, workspace_id in due:
            outcome, steps_run = advance_one(database, workspace_id, enrolment_id, clock)
            totals[outcome] += 1
            totals["steps"] += steps_run
            if outcome not in ("skipped", "errors"):
                totals["advanced"] += 1
        if len(due) < batch_size:
            return totals
        after = due[-1][0]


def advance_one(database: Database, workspace_id: int, enrolment_id: int, clock: Clock) -> tuple[str, int]:
    """Run one enrolment's due steps in one transaction; returns what happened to it and how
    many steps ran.

    "waiting", "completed", "exited", "failed", "skipped" (locked or already
    done by another worker) or "errors" (an unexpected error: rolled back, retried next sweep).
    """
    steps_run: Counter[str] = Counter()
    try:
        with database.transaction() as session:
            bind_workspace(session, workspace_id)
            result = _advance(session, enrolment_id, clock, steps_run)
    except StepAlreadyRan:
        return "skipped", 0
    except DomainError as exc:
        # A reference went away (tag deleted, customer erased…): the entry cannot go on.
        with database.transaction() as session:
            bind_workspace(session, workspace_id)
            _fail(session, enrolment_id, f"{exc.code}: {exc.message}", clock)
        return "failed", 0
    except Exception:
        logger.exception("journey enrolment %s failed; retrying on the next sweep", enrolment_id)
        return "errors", 0
    return result, steps_run["steps"]


def _fail(session: Session, enrolment_id: int, reason: str, clock: Clock) -> None:
    session.execute(
        update(JourneyEnrolment)
        .where(JourneyEnrolment.id == enrolment_id, JourneyEnrolment.status == EnrolmentStatus.ACTIVE)
        .values(status=EnrolmentStatus.FAILED, exit_reason=reason[:40], finished_at=clock.now(), next_run_at=None)
    )


def _lock(session: Session, enrolment_id: int) -> JourneyEnrolment | None:
    query = select(JourneyEnrolment).where(JourneyEnrolment.id == enrolment_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalar(query)


def _advance(session: Session, enrolment_id: int, clock: Clock, steps_run: Counter[str]) -> str:
    now = clock.now()
    enrolment = _lock(session, enrolment_id)
    if enrolment is None or enrolment.status != EnrolmentStatus.ACTIVE:
        return "skipped"
    if enrolment.next_run_at is None or as_utc(enrolment.next_run_at) > now:
        return "skipped"
    journey = session.get(Journey, enrolment.journey_id)
    if journey is None or journey.status != JourneyStatus.ACTIVE:
        return "skipped"
    customer = session.get(Customer, enrolment.customer_id)
    if customer is None or customer.erased_at is not None or customer.merged_into_id is not None:
        # Erased (PIPL) or merged into another profile: this entry has no one left to act on.
        gone = "merged" if customer is not None and customer.merged_into_id is not None else "erased"
        return _finish(enrolment, EnrolmentStatus.EXITED, gone, now)
    for _ in range(MAX_STEPS_PER_RUN):
        if step_actions.goal_met(session, journey, enrolment, now):
            return _finish(enrolment, EnrolmentStatus.EXITED, "goal_met", now)
        index = enrolment.step_index
        if index >= len(journey.steps):
            return _finish(enrolment, EnrolmentStatus.COMPLETED, None, now)
        step = journey.steps[index]
        # The step run first: if another worker (or an earlier life of this one) committed this
        # step, the unique key refuses the row and nothing below runs.
        fresh = insert_or_ignore(
            session,
            JourneyStepRun,
            {
                "workspace_id": enrolment.workspace_id,
                "enrolment_id": enrolment.id,
                "journey_id": journey.id,
                "step_index": index,
                "step_id": step["id"],
                "outcome": "running",
                "ran_at": now,
            },
            ["enrolment_id", "step_index"],
        )
        if not fresh:
            raise StepAlreadyRan(enrolment.id)
        result = step_actions.run_step(session, journey, enrolment, index, clock)
        session.execute(
            update(JourneyStepRun)
            .where(JourneyStepRun.enrolment_id == enrolment.id, JourneyStepRun.step_index == index)
            .values(outcome=result.outcome[:40])
        )
        steps_run["steps"] += 1
        enrolment.step_index = result.goto if result.goto is not None else index + 1
        if result.exit_reason is not None:
            return _finish(enrolment, EnrolmentStatus.EXITED, result.exit_reason, now)
        if result.wait_until is not None and result.wait_until > now:
            enrolment.next_run_at = result.wait_until
            return "waiting"
    enrolment.next_run_at = now  # unreachable with validated (forward-only) steps; resume next sweep
    return "waiting"


def _finish(enrolment: JourneyEnrolment, status: EnrolmentStatus, reason: str | None, now: Any) -> str:
    enrolment.status, enrolment.exit_reason = status, reason
    enrolment.finished_at, enrolment.next_run_at = now, None
    return "completed" if status == EnrolmentStatus.COMPLETED else "exited"
