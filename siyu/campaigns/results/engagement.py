"""Simulated engagement for the sandbox: what providers' callbacks and real people would report.

Demos and trials send through the sandbox adapter, which only records an outbox; without this
every results page would show "sent" and nothing after it. Only deliveries sent through a sandbox
channel account are touched — a real account's numbers come from its provider, never from here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock, FrozenClock
from siyu.messaging.planning import bucket
from siyu.models import AdapterKind, ChannelAccount, Delivery, DeliveryStatus, ShortLink
from siyu.shortlinks.clicks import Visit, follow
from siyu.shortlinks.recipients import recipient_visitor_id

DELIVERED_PER_10K = 9_200
"""Share of sandbox sends reported delivered (per 10,000)."""
READ_PER_10K = 6_000
"""Share of delivered messages then read."""
CLICKED_PER_10K = 2_500
"""Share of read messages with a link whose link is then clicked."""


def simulate_engagement(
    session: Session, *, workspace_id: int, source: str, source_id: int, clock: Clock, seed: int
) -> dict[str, int]:
    """Mark a stable share of a source's sandbox sends delivered and read, and click some links.

    Who engages is a hash of (seed, source, customer), so the same seed gives the same people and a
    second call changes nothing (only rows still `sent` are considered, and each is decided the
    same way again). Times fall between the send and `clock.now()`. Clicks go through the public
    click path (`siyu.shortlinks.clicks.follow`): a click row on the recipient's link and a
    `link.clicked` event on their timeline, as a real tap would leave. Returns the counts.
    """
    salt = f"{seed}:{source}:{source_id}"
    now = clock.now()
    rows = session.execute(
        select(Delivery.id, Delivery.customer_id, Delivery.sent_at, Delivery.short_link_id)
        .join(ChannelAccount, ChannelAccount.id == Delivery.channel_account_id)
        .where(
            Delivery.workspace_id == workspace_id,
            Delivery.source == source,
            Delivery.source_id == source_id,
            Delivery.status == DeliveryStatus.SENT,
            ChannelAccount.workspace_id == workspace_id,
            ChannelAccount.kind == AdapterKind.SANDBOX,
        )
        .order_by(Delivery.id)
    ).all()
    changes: list[dict[str, Any]] = []
    clicks: list[tuple[int, int, datetime]] = []
    read = 0
    for delivery_id, customer_id, sent_at, link_id in rows:
        if sent_at is None or bucket(salt + ":delivered", customer_id) >= DELIVERED_PER_10K:
            continue
        spread = bucket(salt + ":delay", customer_id)
        delivered_at = min(sent_at + timedelta(seconds=5 + spread % 120), now)
        change: dict[str, Any] = {"id": delivery_id, "status": DeliveryStatus.DELIVERED, "delivered_at": delivered_at}
        if bucket(salt + ":read", customer_id) < READ_PER_10K:
            read_at = min(delivered_at + timedelta(minutes=2 + spread % 360), now)
            change |= {"status": DeliveryStatus.READ, "read_at": read_at}
            read += 1
            if link_id is not None and bucket(salt + ":clicked", customer_id) < CLICKED_PER_10K:
                clicks.append((delivery_id, link_id, min(read_at + timedelta(seconds=20 + spread % 600), now)))
        changes.append(change)
    if changes:
        session.execute(update(Delivery), changes)
    slugs = _slugs(session, workspace_id, [link_id for _, link_id, _ in clicks])
    clicked = 0
    for _delivery_id, link_id, at in clicks:
        link = slugs.get(link_id)
        if link is None:
            continue
        slug, customer_id = link
        follow(session, slug=slug, visit=Visit(visitor_id=recipient_visitor_id(customer_id)), clock=FrozenClock(at))
        clicked += 1
    session.flush()
    return {"considered": len(rows), "delivered": len(changes), "read": read, "clicked": clicked}


def _slugs(session: Session, workspace_id: int, link_ids: list[int]) -> dict[int, tuple[str, int]]:
    found: dict[int, tuple[str, int]] = {}
    for start in range(0, len(link_ids), 500):
        chunk = link_ids[start : start + 500]
        for link_id, slug, customer_id in session.execute(
            select(ShortLink.id, ShortLink.slug, ShortLink.customer_id).where(
                ShortLink.workspace_id == workspace_id, ShortLink.id.in_(chunk), ShortLink.customer_id.is_not(None)
            )
        ):
            if customer_id is not None:
                found[link_id] = (slug, customer_id)
    return found
