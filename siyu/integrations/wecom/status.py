"""The integration's health as the integration page shows it: the latest error and event."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from siyu.integrations.wecom.client import redact
from siyu.kit.clock import Clock
from siyu.models import WecomIntegration


def note_error(session: Session, workspace_id: int, error: BaseException | str, clock: Clock) -> None:
    """Record `error` (a `WecomError` or text) as the integration's latest error, secrets redacted."""
    text = redact(str(error))[:1000]
    session.execute(
        update(WecomIntegration)
        .where(WecomIntegration.workspace_id == workspace_id)
        .values(last_error=text, last_error_at=clock.now())
        .execution_options(synchronize_session=False)
    )


def note_event(session: Session, workspace_id: int, clock: Clock) -> None:
    """A callback from WeCom arrived (the page shows when the last one did)."""
    session.execute(
        update(WecomIntegration)
        .where(WecomIntegration.workspace_id == workspace_id)
        .values(last_event_at=clock.now())
        .execution_options(synchronize_session=False)
    )
