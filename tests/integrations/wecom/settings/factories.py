"""Rows the settings tests need: stored callback events and a sync run."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.models import EventSource, EventStatus, IntegrationEvent, SyncStatus, WecomSyncRun, Workspace


def make_event(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    key: str,
    status: EventStatus = EventStatus.PROCESSED,
    change_type: str = "add_external_contact",
    error: str | None = None,
    minutes_ago: int = 0,
    duplicates: int = 0,
) -> IntegrationEvent:
    event = IntegrationEvent(
        workspace_id=workspace.id,
        source=EventSource.WECOM,
        dedup_key=key,
        event="change_external_contact",
        change_type=change_type,
        payload={"Event": "change_external_contact", "ChangeType": change_type},
        status=status,
        error=error,
        attempts=1,
        duplicates=duplicates,
        received_at=clock.now() - timedelta(minutes=minutes_ago),
    )
    db.add(event)
    db.flush()
    return event


def make_sync_run(db: Session, *, workspace: Workspace, clock: Clock) -> WecomSyncRun:
    run = WecomSyncRun(
        workspace_id=workspace.id,
        scope="full",
        status=SyncStatus.FAILED,
        step="customers",
        cursor={"step": "customers"},
        counts={"staff": 12, "customers": 340},
        error="externalcontact/batch/get_by_user: api freq out of limit",
        started_at=clock.now() - timedelta(hours=1),
    )
    db.add(run)
    db.flush()
    return run
