"""Run the fake's recorded pushes through siyu's dispatcher inside the test's transaction (no HTTP):
the payload is built as the callback inbox stores it (every value a string, nested items as
xmltodict gives them)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy.orm import Session

from siyu.integrations.wecom.config import WecomConfig
from siyu.integrations.wecom.dispatch import process
from siyu.integrations.wecom.fake.state import FakeCorp
from siyu.kit.clock import Clock
from siyu.models import EventSource, EventStatus, IntegrationEvent


def as_payload(fields: dict[str, Any]) -> dict[str, Any]:
    """The stored form of pushed fields: strings, nested dicts' values stringified too."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, dict):
            out[name] = {k: [str(i) for i in v] if isinstance(v, list) else str(v) for k, v in value.items()}
        else:
            out[name] = str(value)
    return out


def store(db: Session, workspace_id: int, fields: dict[str, Any], clock: Clock) -> IntegrationEvent:
    """An `IntegrationEvent` row for pushed fields."""
    payload = as_payload(fields)
    event = IntegrationEvent(
        workspace_id=workspace_id,
        source=EventSource.WECOM,
        dedup_key=hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest(),
        event=payload["Event"],
        change_type=payload.get("ChangeType"),
        payload=payload,
        received_at=clock.now(),
    )
    db.add(event)
    db.flush()
    return event


def run_pushed(db: Session, corp: FakeCorp, config: WecomConfig, clock: Clock) -> list[IntegrationEvent]:
    """Process (and forget) every push the fake recorded since the last call; returns the events."""
    events = []
    for record in list(corp.pushed):
        event = store(db, config.workspace_id, record["fields"], clock)
        status = process(db, event, config, clock)
        assert status in (EventStatus.PROCESSED, EventStatus.FAILED, EventStatus.IGNORED)
        events.append(event)
    corp.pushed.clear()
    return events
