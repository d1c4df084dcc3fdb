"""Routes a stored callback event to the area that handles it.

Areas register handlers by (event, change_type) when their module loads:

    @on_event("change_external_contact", "add_external_contact")
    def added(ctx: EventContext) -> str | None: ...

A handler gets the event's payload (the decrypted XML fields), a session bound to the workspace,
the workspace's `WecomConfig` and the clock; it must be idempotent (a retried job runs it again).
It returns None when done, or a short note ("unknown staff U123") stored on the event. It raises
to fail the event (recorded, retried by the callback job's policy). Handlers run in the job, not
in the request: only the welcome message is sent in the request's fast path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from siyu.integrations.wecom.config import WecomConfig
from siyu.kit.clock import Clock
from siyu.kit.errors import DomainError
from siyu.models import EventStatus, IntegrationEvent

logger = logging.getLogger(__name__)


@dataclass
class EventContext:
    session: Session
    config: WecomConfig
    event: IntegrationEvent
    clock: Clock

    @property
    def payload(self) -> dict[str, Any]:
        return self.event.payload

    @property
    def workspace_id(self) -> int:
        return self.event.workspace_id


Handler = Callable[[EventContext], str | None]
_handlers: dict[tuple[str, str | None], Handler] = {}


def on_event(event: str, change_type: str | None = None) -> Callable[[Handler], Handler]:
    """Register the handler of `event` (and `change_type`; None: any change type without its own)."""

    def register(fn: Handler) -> Handler:
        _handlers[(event, change_type)] = fn
        return fn

    return register


def handler_for(event: str, change_type: str | None) -> Handler | None:
    """The handler for an event, or None for an event siyu ignores (stored as `ignored`)."""
    _load_handlers()
    return _handlers.get((event, change_type)) or _handlers.get((event, None))


def _load_handlers() -> None:
    # Importing the areas registers their handlers; done lazily so this module stays a leaf.
    import siyu.integrations.wecom.handlers  # noqa: F401


def process(session: Session, event: IntegrationEvent, config: WecomConfig, clock: Clock) -> EventStatus:
    """Run the handler of a stored event once and record the outcome on the row: processed (with
    the handler's note in `error`, if any), ignored (no handler), or failed (the handler raised;
    its writes are rolled back to a savepoint, the error kept). Returns the new status."""
    event.attempts += 1
    handler = handler_for(event.event, event.change_type)
    if handler is None:
        event.status, event.processed_at = EventStatus.IGNORED, clock.now()
        return event.status
    savepoint = session.begin_nested()
    try:
        note = handler(EventContext(session, config, event, clock))
        savepoint.commit()
    except Exception as exc:  # any failure is recorded on the event; the job decides on retries
        savepoint.rollback()
        logger.warning("wecom event %s failed: %s", event.id, exc, exc_info=not isinstance(exc, DomainError))
        event.status, event.error = EventStatus.FAILED, f"{type(exc).__name__}: {exc}"[:1000]
        return event.status
    event.status, event.error, event.processed_at = EventStatus.PROCESSED, note, clock.now()
    return event.status
