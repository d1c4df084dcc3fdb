"""Factory functions for journeys (through the service, so definitions are validated as in production)."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.campaigns.journeys.service import JourneyInput, activate_journey, create_journey
from siyu.kit.clock import Clock
from siyu.models import Journey, JourneyEnrolment, JourneyStepRun, Workspace
from tests.factories import actor_for

_seq = itertools.count(1)


def make_journey(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    trigger: dict[str, Any],
    steps: list[dict[str, Any]],
    goal: dict[str, Any] | None = None,
    channel_account_ids: list[int] | None = None,
    reentry: bool = False,
    active: bool = True,
) -> Journey:
    """A journey, activated unless `active=False` (activation starts after the newest trigger row)."""
    actor = actor_for(workspace)
    data = JourneyInput(
        name=f"旅程{next(_seq)}",
        trigger=trigger,
        steps=steps,
        goal=goal,
        channel_account_ids=channel_account_ids or [],
        reentry=reentry,
    )
    journey = create_journey(db, actor=actor, data=data, clock=clock)
    if active:
        activate_journey(db, actor=actor, journey_id=journey.id, clock=clock)
    db.commit()
    return journey


def enrolments_of(db: Session, journey: Journey) -> list[JourneyEnrolment]:
    db.expire_all()
    return list(
        db.scalars(
            select(JourneyEnrolment).where(JourneyEnrolment.journey_id == journey.id).order_by(JourneyEnrolment.id)
        )
    )


def runs_of(db: Session, enrolment: JourneyEnrolment) -> list[tuple[str, str]]:
    """(step id, outcome) of every step the enrolment ran, in order."""
    rows = db.scalars(
        select(JourneyStepRun).where(JourneyStepRun.enrolment_id == enrolment.id).order_by(JourneyStepRun.id)
    )
    return [(r.step_id, r.outcome) for r in rows]
