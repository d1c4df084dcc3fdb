"""Transactional messages (order shipped, verification, appointment): one customer, highest priority.

They pass the same delivery machinery — one row per idempotency key, the same adapters and
retries — but skip marketing caps, quiet hours, deduplication and unsubscribes, and are claimed
before anything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.customers import repository as customers
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.messaging import content as templates
from siyu.messaging.planning import PlanSpec, Variant, plan_batch
from siyu.models import ChannelAccount, ContentItem, Delivery, Priority


def send_transactional(
    session: Session,
    *,
    actor: Actor,
    customer_id: int,
    content_id: int,
    channel_account_ids: Sequence[int],
    idempotency_key: str,
    variables: Mapping[str, Any],
    clock: Clock,
) -> Delivery:
    """Queue one transactional message; the same idempotency key returns the same delivery."""
    actor.require(Scope.TOUCH_WRITE)
    key = idempotency_key.strip()
    if not key or len(key) > 80:
        raise InvalidInput("idempotency_key must be 1-80 characters", details={"field": "idempotency_key"})
    customer = customers.get_visible(session, actor, customer_id)
    item = session.scalar(
        select(ContentItem).where(ContentItem.id == content_id, ContentItem.workspace_id == actor.workspace_id)
    )
    if item is None or item.archived_at is not None:
        raise InvalidInput("unknown or archived content", details={"field": "content_id"})
    if item.is_marketing:
        # Transactional sends skip caps, quiet hours and unsubscribes: marketing must not ride them.
        raise InvalidInput(
            "marketing content cannot be sent as a transactional message", details={"field": "content_id"}
        )
    templates.check_content(item)
    unknown = sorted(set(variables) - templates.known_variables())
    if unknown:
        raise InvalidInput(f"unknown variable {unknown[0]!r}", details={"field": f"variables.{unknown[0]}"})
    accounts = {
        a.id: a
        for a in session.scalars(
            select(ChannelAccount).where(
                ChannelAccount.workspace_id == actor.workspace_id,
                ChannelAccount.id.in_(list(channel_account_ids)),
                ChannelAccount.is_active.is_(True),
            )
        )
    }
    for index, account_id in enumerate(channel_account_ids):
        if account_id not in accounts:
            raise InvalidInput("unknown or inactive channel account", details={"field": f"channel_account_ids.{index}"})
    if not channel_account_ids:
        raise InvalidInput("give at least one channel account", details={"field": "channel_account_ids"})
    spec = PlanSpec(
        source="transactional",
        source_id=0,  # the key alone identifies a transactional message to a customer
        step=key,
        accounts=[accounts[i] for i in channel_account_ids],
        variants=[Variant("T", item.id, templates.content_hash(item))],
        send_at=clock.now(),
        priority=int(Priority.TRANSACTIONAL),
        variables={k: str(v) for k, v in variables.items()},
    )
    plan_batch(session, actor.workspace_id, spec, [customer.id], clock)
    delivery = session.scalar(
        select(Delivery).where(
            Delivery.workspace_id == actor.workspace_id,
            Delivery.source == "transactional",
            Delivery.source_id == 0,
            Delivery.step == key,
            Delivery.customer_id == customer.id,
        )
    )
    assert delivery is not None
    return delivery
