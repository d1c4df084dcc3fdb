"""Background jobs of WeCom callbacks.

`wecom_process_event` runs one stored event's handler (as `dispatch.process` does, also keeping
whether the failure may pass: `payload["_retryable"]`); the periodic `wecom_sweep_events` runs
again every event of a workspace with an active integration that failed retryably (a WeCom error
marked retryable, a database hiccup, WeCom not configured at the time), or that was stored but whose
job never ran (a crash between the commit and the broker), up to `MAX_ATTEMPTS` tries. An event that
still fails after that, or failed for good (a non-retryable WeCom error, bad data), stays FAILED
with its error, on the integration page.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from siyu.db import Database, get_database
from siyu.integrations.wecom.callbacks.service import PROCESS_KIND
from siyu.integrations.wecom.config import WecomConfig, load_config
from siyu.integrations.wecom.dispatch import EventContext, handler_for
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.integrations.wecom.status import note_error
from siyu.jobs.scheduler import periodic
from siyu.jobs.service import JobContext, job_actor
from siyu.kit.clock import Clock, system_clock
from siyu.kit.errors import DomainError
from siyu.models import EventSource, EventStatus, IntegrationEvent, WecomIntegration
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)
SWEEP_KIND = "wecom_sweep_events"
MAX_ATTEMPTS = 5
STUCK_AFTER = timedelta(minutes=5)
"""A RECEIVED event this old whose job never ran is picked up by the sweep."""
SWEEP_BATCH = 200
RETRYABLE_KEY = "_retryable"
"""Payload flag of a FAILED event: may a later run succeed (the sweep only retries those)."""
NOT_CONFIGURED = "WeCom not configured"


def is_retryable(exc: BaseException) -> bool:
    """A WeCom error says so itself; a domain error (bad data) will fail again; anything else
    (database, network) may pass."""
    if isinstance(exc, WecomError):
        return exc.retryable
    return not isinstance(exc, DomainError)


def _fail(event: IntegrationEvent, error: str, *, retryable: bool) -> EventStatus:
    event.status, event.error = EventStatus.FAILED, error[:1000]
    event.payload = {**event.payload, RETRYABLE_KEY: retryable}
    return event.status


def run_handler(session: Session, event: IntegrationEvent, config: WecomConfig, clock: Clock) -> EventStatus:
    """`dispatch.process`, also recording whether a failure is retryable (`payload["_retryable"]`)."""
    event.attempts += 1
    handler = handler_for(event.event, event.change_type)
    if handler is None:
        event.status, event.processed_at = EventStatus.IGNORED, clock.now()
        return event.status
    savepoint = session.begin_nested()
    try:
        note = handler(EventContext(session, config, event, clock))
        savepoint.commit()
    except Exception as exc:  # recorded on the event; the sweep decides on retries
        savepoint.rollback()
        logger.warning("wecom event %s failed: %s", event.id, exc, exc_info=not isinstance(exc, DomainError))
        return _fail(event, f"{type(exc).__name__}: {exc}", retryable=is_retryable(exc))
    event.status, event.error, event.processed_at = EventStatus.PROCESSED, note, clock.now()
    if RETRYABLE_KEY in event.payload:
        event.payload = {k: v for k, v in event.payload.items() if k != RETRYABLE_KEY}
    return event.status


def process_event(database: Database, clock: Clock, workspace_id: int, event_id: int) -> dict[str, Any]:
    """Run one event's handler in its own transaction (row locked: a job and the sweep never run it
    together). Done events are left alone; a failure is noted on the integration."""
    with database.transaction() as session:
        bind_workspace(session, workspace_id)
        event = session.scalar(select(IntegrationEvent).where(IntegrationEvent.id == event_id).with_for_update())
        if event is None:
            return {"skipped": "event not found"}
        if event.status in (EventStatus.PROCESSED, EventStatus.IGNORED):
            return {"skipped": f"already {event.status}"}
        try:
            config = load_config(session, workspace_id)
        except NotConfigured:
            # Counted, so the sweep gives up after MAX_ATTEMPTS; retried only once WeCom is active again.
            event.attempts += 1
            _fail(event, NOT_CONFIGURED, retryable=True)
            return {"skipped": "not configured", "attempts": event.attempts}
        status = run_handler(session, event, config, clock)
        if status == EventStatus.FAILED:
            note_error(session, workspace_id, f"event {event.event}/{event.change_type}: {event.error}", clock)
        return {"status": str(status), "attempts": event.attempts}


@job_actor(PROCESS_KIND)
def process_event_job(job: JobContext) -> dict[str, Any]:
    """Process one stored callback event (args: event_id)."""
    if job.workspace_id is None:
        return {"skipped": "no workspace"}
    return process_event(get_database(), system_clock, job.workspace_id, int(job.args["event_id"]))


def sweep(database: Database, clock: Clock, *, max_attempts: int = MAX_ATTEMPTS) -> dict[str, int]:
    """Retry retryably FAILED events and RECEIVED ones stuck past `STUCK_AFTER`, each below
    `max_attempts`, of workspaces whose integration is active."""
    with database.transaction(read_only=True) as session:
        rows = session.execute(
            select(IntegrationEvent.workspace_id, IntegrationEvent.id)
            .join(
                WecomIntegration,
                and_(
                    WecomIntegration.workspace_id == IntegrationEvent.workspace_id,
                    WecomIntegration.is_active.is_(True),
                ),
            )
            .where(
                IntegrationEvent.source == EventSource.WECOM,
                IntegrationEvent.attempts < max_attempts,
                or_(
                    and_(
                        IntegrationEvent.status == EventStatus.FAILED,
                        IntegrationEvent.payload[RETRYABLE_KEY].as_boolean().is_(True),
                    ),
                    and_(
                        IntegrationEvent.status == EventStatus.RECEIVED,
                        IntegrationEvent.received_at < clock.now() - STUCK_AFTER,
                    ),
                ),
            )
            .order_by(IntegrationEvent.id)
            .limit(SWEEP_BATCH)
            .execution_options(siyu_unscoped=True)
        ).all()
    totals = {"retried": 0, "processed": 0, "failed": 0}
    for workspace_id, event_id in rows:
        totals["retried"] += 1
        try:
            result = process_event(database, clock, workspace_id, event_id)
        except Exception:  # one broken event must not stop the sweep
            logger.exception("wecom event sweep failed", extra={"event_id": event_id})
            totals["failed"] += 1
            continue
        if result.get("status") == str(EventStatus.FAILED):
            totals["failed"] += 1
        elif "status" in result:
            totals["processed"] += 1
    return totals


@job_actor(SWEEP_KIND)
def sweep_job(job: JobContext) -> dict[str, Any]:
    """The periodic sweep over every workspace's failed or stuck callback events."""
    return dict(sweep(get_database(), system_clock))


periodic(SWEEP_KIND, kind=SWEEP_KIND, every=lambda: timedelta(minutes=5))
