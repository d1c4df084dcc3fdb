"""REST API of the WeCom configuration and status (`/api/v1/integrations/wecom`).

Secrets go in (PUT) and never come out: responses carry `secrets_set` (which ones are saved) only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from siyu.auth.permissions import Scope
from siyu.integrations.wecom.settings.service import (
    SettingsIn,
    check_connection,
    integration_view,
    list_events,
    save_settings,
)
from siyu.models import IntegrationEvent
from siyu.web.deps import Ctx, require

router = APIRouter(prefix="/api/v1/integrations/wecom", tags=["integrations"])
Reader = Annotated[Ctx, Depends(require(Scope.INTEGRATIONS_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.INTEGRATIONS_WRITE))]
Manager = Annotated[Ctx, Depends(require(Scope.INTEGRATIONS_MANAGE))]


class EventRead(BaseModel):
    id: int
    source: str
    event: str
    change_type: str | None
    status: str
    error: str | None
    attempts: int
    duplicates: int
    received_at: datetime
    processed_at: datetime | None


class SyncRead(BaseModel):
    id: int
    scope: str
    status: str
    step: str | None
    counts: dict[str, Any]
    error: str | None
    started_at: datetime
    finished_at: datetime | None


class IntegrationRead(BaseModel):
    configured: bool
    corp_id: str | None = None
    agent_id: str | None = None
    api_base_url: str | None = None
    is_fake: bool = False
    is_active: bool = False
    secrets_set: dict[str, bool]
    callback_url: str
    callback_verified_at: datetime | None = None
    last_event_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_checked_at: datetime | None = None
    event_counts: dict[str, int] = {}
    sync: SyncRead | None = None


class CheckRead(BaseModel):
    step: str
    field: str
    ok: bool
    message: str


class TestRead(BaseModel):
    ok: bool
    checks: list[CheckRead]


def _event(row: IntegrationEvent) -> EventRead:
    return EventRead(
        id=row.id,
        source=str(row.source),
        event=row.event,
        change_type=row.change_type,
        status=str(row.status),
        error=row.error,
        attempts=row.attempts,
        duplicates=row.duplicates,
        received_at=row.received_at,
        processed_at=row.processed_at,
    )


def _read(ctx: Ctx) -> IntegrationRead:
    view = integration_view(ctx.session, ctx.actor, ctx.settings)
    row = view.integration
    base = IntegrationRead(
        configured=row is not None, secrets_set=view.secrets_set, callback_url=view.callback_url or ""
    )
    if row is None:
        return base
    run = view.sync_run
    return base.model_copy(
        update={
            "corp_id": row.corp_id,
            "agent_id": row.agent_id,
            "api_base_url": row.api_base_url,
            "is_fake": row.is_fake,
            "is_active": row.is_active,
            "callback_verified_at": row.callback_verified_at,
            "last_event_at": row.last_event_at,
            "last_error": row.last_error,
            "last_error_at": row.last_error_at,
            "last_checked_at": row.last_checked_at,
            "event_counts": view.event_counts,
            "sync": SyncRead(
                id=run.id,
                scope=run.scope,
                status=str(run.status),
                step=run.step,
                counts=dict(run.counts or {}),
                error=run.error,
                started_at=run.started_at,
                finished_at=run.finished_at,
            )
            if run is not None
            else None,
        }
    )


@router.get("", response_model=IntegrationRead)
def get_integration(ctx: Reader) -> IntegrationRead:
    """The configuration (secrets only as set/unset), health and latest sync run."""
    return _read(ctx)


@router.put("", response_model=IntegrationRead)
def put_integration(body: SettingsIn, ctx: Manager) -> IntegrationRead:
    """Create or replace the configuration; omitted or empty secrets keep the saved ones."""
    save_settings(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock, settings=ctx.settings)
    return _read(ctx)


@router.post("/test", response_model=TestRead)
def post_test(ctx: Writer) -> TestRead:
    """The connection test: a token per secret and one read call each; failures name their field."""
    checks = check_connection(ctx.session, actor=ctx.actor, clock=ctx.clock, settings=ctx.settings)
    return TestRead(
        ok=all(c.ok for c in checks),
        checks=[CheckRead(step=c.step, field=c.field, ok=c.ok, message=c.message) for c in checks],
    )


@router.get("/events", response_model=list[EventRead])
def get_events(
    ctx: Reader,
    status: Annotated[str | None, Query(max_length=12)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[EventRead]:
    """The latest callback events, newest first; `status=failed` for the failed ones."""
    ctx.actor.require(Scope.INTEGRATIONS_READ)
    return [_event(e) for e in list_events(ctx.session, ctx.actor.workspace_id, status=status, limit=limit)]
