"""The results of a journey (SOP), step by step."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.campaigns.results.counts import StatusCounts, conversions, normalise_goal, status_groups
from siyu.kit.clock import Clock
from siyu.kit.errors import NotFound
from siyu.models import Delivery, Journey, JourneyStepRun


@dataclass(frozen=True)
class StepResults:
    """One step of a journey: how often it ran, and for send steps what its messages did.

    Journeys keep no holdout, so conversions are the goal met within the goal's window after each
    message (enrolments that passed the step), not an uplift.
    """

    step_id: str
    type: str
    content_id: int | None
    runs: dict[str, int] = field(default_factory=dict)
    """Outcome → count of the step's runs ("sent", "waited", "branch:yes", "exited"…)."""
    planned: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    suppressed_by_reason: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    conversions: int = 0
    gmv_fen: int = 0


def _like_prefix(step_id: str) -> str:
    escaped = step_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}:%"


def journey_step_results(session: Session, *, actor: Actor, journey_id: int, clock: Clock) -> list[StepResults]:
    """Per step of the journey, in its order (touch:read). Read-only."""
    actor.require(Scope.TOUCH_READ)
    journey = session.scalar(
        select(Journey).where(Journey.id == journey_id, Journey.workspace_id == actor.workspace_id)
    )
    if journey is None:
        raise NotFound(f"journey {journey_id} not found")
    goal = normalise_goal(journey.goal if (journey.goal or {}).get("type") in ("order", "click", "event") else None)
    runs: dict[str, Counter[str]] = {}
    for step_id, outcome, n in session.execute(
        select(JourneyStepRun.step_id, JourneyStepRun.outcome, func.count())
        .where(JourneyStepRun.workspace_id == actor.workspace_id, JourneyStepRun.journey_id == journey.id)
        .group_by(JourneyStepRun.step_id, JourneyStepRun.outcome)
    ):
        runs.setdefault(step_id, Counter())[outcome] += int(n)
    results = []
    for step in journey.steps or []:
        step_id, kind = str(step.get("id", "")), str(step.get("type", ""))
        values: dict[str, Any] = {"runs": dict(runs.get(step_id, {}))}
        if kind == "send" and step_id:
            values |= _send_step(session, journey, step_id, goal)
        content = step.get("content_id")
        results.append(StepResults(step_id=step_id, type=kind, content_id=int(content) if content else None, **values))
    return results


def _send_step(session: Session, journey: Journey, step_id: str, goal: dict[str, Any]) -> dict[str, Any]:
    where: list[ColumnElement[bool]] = [
        Delivery.workspace_id == journey.workspace_id,
        Delivery.source == "journey",
        Delivery.source_id == journey.id,
        Delivery.step.like(_like_prefix(step_id), escape="\\"),
    ]
    counts = StatusCounts()
    for row in status_groups(session, where):
        counts.add_group(row.status, row.reason, row)
    outcome = conversions(
        session,
        workspace_id=journey.workspace_id,
        where=where,
        goal=goal,
        fallback_anchor=Delivery.planned_at,
        group=[],
    ).get(())
    return {
        "planned": counts.planned,
        "by_status": dict(counts.by_status),
        "suppressed_by_reason": dict(counts.suppressed_by_reason),
        "sent": counts.sent,
        "delivered": counts.delivered,
        "read": counts.read,
        "failed": counts.failed,
        "clicked": counts.clicked,
        "unsubscribed": counts.unsubscribed,
        "conversions": outcome.conversions if outcome else 0,
        "gmv_fen": outcome.gmv_fen if outcome else 0,
    }
