"""Unsubscribe links: every message carries a signed link that withdraws the customer's consent
for the channel it came on, records which delivery it came from, and can be used any number of times."""

from __future__ import annotations

from functools import lru_cache

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers.service.timeline import set_consent
from siyu.kit.clock import Clock
from siyu.kit.errors import NotFound
from siyu.kit.sql import insert_or_ignore
from siyu.messaging.adapters import consent_channel_of
from siyu.models import AdapterKind, ChannelAccount, ConsentChannel, ConsentStatus, Delivery, Unsubscribe

_SALT = "siyu-unsubscribe"


@lru_cache(maxsize=8)
def _serializer(secret: str) -> URLSafeSerializer:
    # Built once per secret: a send signs a token for every message.
    return URLSafeSerializer(secret, salt=_SALT)


def unsubscribe_token(delivery_id: int, secret: str) -> str:
    """The signed, unguessable token of one delivery's unsubscribe link."""
    return str(_serializer(secret).dumps(delivery_id))


def read_token(token: str, secret: str) -> int:
    """The delivery id inside a token; a forged or damaged token is a 404."""
    try:
        value = _serializer(secret).loads(token)
    except BadSignature as exc:
        raise NotFound("unknown unsubscribe link") from exc
    if not isinstance(value, int) or isinstance(value, bool):
        raise NotFound("unknown unsubscribe link")
    return value


def channel_of(session: Session, delivery: Delivery) -> ConsentChannel | None:
    """The consent type the delivery's channel answers to (None: nothing to withdraw)."""
    if delivery.channel_account_id is None:
        return None
    account = session.get(ChannelAccount, delivery.channel_account_id)
    if account is None:
        return None
    return consent_channel_of(AdapterKind(account.kind), dict(account.settings or {}))


def unsubscribe(session: Session, *, delivery_id: int, clock: Clock) -> ConsentChannel | None:
    """Withdraw consent for the delivery's channel; idempotent. Returns the channel withdrawn."""
    delivery = session.scalar(
        select(Delivery).where(Delivery.id == delivery_id).with_for_update().execution_options(siyu_unscoped=True)
    )
    if delivery is None:
        raise NotFound("unknown unsubscribe link")
    channel = channel_of(session, delivery)
    if channel is None:
        return None
    actor = Actor.system(delivery.workspace_id, label="unsubscribe link")
    inserted = insert_or_ignore(
        session,
        Unsubscribe,
        {
            "workspace_id": delivery.workspace_id,
            "delivery_id": delivery.id,
            "customer_id": delivery.customer_id,
            "channel": str(channel),
            "created_at": clock.now(),
        },
        ["delivery_id"],
    )
    if inserted:
        delivery.unsubscribed_at = clock.now()
        set_consent(
            session,
            actor=actor,
            customer_id=delivery.customer_id,
            channel=str(channel),
            status=str(ConsentStatus.UNSUBSCRIBED),
            source="unsubscribe_link",
            clock=clock,
        )
    return channel
