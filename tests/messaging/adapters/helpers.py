"""Helpers for adapter tests: queue deliveries for a channel account, run the sender, read rows."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.messaging.adapters.base import Outgoing, SendContext
from siyu.messaging.sending import send_due
from siyu.models import ChannelAccount, ContentItem, Delivery, DeliveryStatus, Priority, Staff, Workspace
from tests.factories import actor_for, make_customer

_source = itertools.count(1000)


def context(account: ChannelAccount, clock: FrozenClock, credentials: dict[str, Any]) -> SendContext:
    """What the sender hands an external adapter (no session)."""
    return SendContext(session=None, clock=clock, account=account, credentials=credentials)  # type: ignore[arg-type]


def outgoing(
    delivery_id: int, address: str | None, text: str = "你好", staff_userid: str | None = None, **message: Any
) -> Outgoing:
    return Outgoing(
        delivery_id=delivery_id,
        customer_id=delivery_id,
        address=address,
        message={"kind": "text", "text": text, **message},
        staff_userid=staff_userid,
    )


def queue(
    db: Session,
    *,
    workspace: Workspace,
    clock: FrozenClock,
    account: ChannelAccount,
    content: ContentItem,
    recipients: list[tuple[str, str]],
    staff: Staff | None = None,
) -> list[Delivery]:
    """One queued delivery per (customer name, address), due now, as planning writes them."""
    actor = actor_for(workspace)
    source_id = next(_source)
    rows = []
    for name, address in recipients:
        customer = make_customer(db, actor=actor, clock=clock, name=name).customer
        rows.append(
            Delivery(
                workspace_id=workspace.id,
                source="test",
                source_id=source_id,
                step="",
                customer_id=customer.id,
                channel_account_id=account.id,
                channel=str(account.kind),
                address=address,
                staff_id=staff.id if staff else None,
                content_id=content.id,
                content_hash="test",
                priority=int(Priority.MARKETING),
                status=DeliveryStatus.QUEUED,
                not_before=clock.now(),
                planned_at=clock.now(),
                attempts=0,
            )
        )
    db.add_all(rows)
    db.commit()
    return rows


@dataclass(frozen=True)
class Attempt:
    status: str
    reason: str | None
    attempts: int
    wait: timedelta | None
    """How long until the next try (None once it stopped)."""


def send_until_done(db: Session, database: Database, clock: FrozenClock, delivery_id: int) -> list[Attempt]:
    """Run the sender, then move the clock to the next try, until the delivery leaves the queue."""
    history: list[Attempt] = []
    for _ in range(10):
        send_due(database, clock)
        db.expire_all()
        row = db.get(Delivery, delivery_id)
        assert row is not None
        if row.status != DeliveryStatus.QUEUED:
            history.append(Attempt(row.status, row.reason, row.attempts, None))
            return history
        wait = row.not_before.replace(tzinfo=clock.now().tzinfo) - clock.now()
        history.append(Attempt(row.status, row.reason, row.attempts, wait))
        clock.advance(wait)
    raise AssertionError("the delivery never left the queue")


BACKOFF = [timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=8), timedelta(minutes=32)]
"""The sender's waits before tries 2–5 (settings.send_max_attempts = 5)."""
