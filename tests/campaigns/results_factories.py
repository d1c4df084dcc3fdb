"""Rows for results tests, written directly so each test fixes exactly who got what."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.models import (
    Broadcast,
    CustomerEvent,
    Delivery,
    DeliveryStatus,
    Order,
    OrderStatus,
    ShortLink,
    ShortLinkClick,
)

_seq = itertools.count(1)


def make_delivery(
    db: Session,
    *,
    broadcast: Broadcast | None = None,
    workspace_id: int | None = None,
    source: str = "broadcast",
    source_id: int | None = None,
    step: str = "",
    customer_id: int,
    status: DeliveryStatus,
    planned_at: datetime,
    variant: str | None = "A",
    content_id: int | None = None,
    **values: Any,
) -> Delivery:
    row = Delivery(
        workspace_id=broadcast.workspace_id if broadcast else workspace_id,
        source=source,
        source_id=broadcast.id if broadcast else source_id,
        step=step,
        customer_id=customer_id,
        status=status,
        variant=variant,
        content_id=content_id,
        planned_at=planned_at,
        not_before=planned_at,
        **values,
    )
    db.add(row)
    db.flush()
    return row


def make_order(
    db: Session,
    *,
    workspace_id: int,
    customer_id: int,
    total_fen: int,
    paid_at: datetime,
    refunded_fen: int = 0,
) -> Order:
    if refunded_fen == 0:
        status = OrderStatus.PAID
    elif refunded_fen >= total_fen:
        status = OrderStatus.REFUNDED
    else:
        status = OrderStatus.PARTIALLY_REFUNDED
    order = Order(
        workspace_id=workspace_id,
        customer_id=customer_id,
        platform="miniprogram",
        external_id=f"WX{next(_seq):08d}",
        status=status,
        total_fen=total_fen,
        refunded_fen=refunded_fen,
        paid_at=paid_at,
        created_at=paid_at,
    )
    db.add(order)
    db.flush()
    return order


def make_recipient_link(db: Session, *, workspace_id: int, customer_id: int, at: datetime) -> ShortLink:
    """A per-recipient link under a fresh campaign link."""
    parent = ShortLink(
        workspace_id=workspace_id, slug=f"camp{next(_seq)}", target_url="https://shop.example.com/", created_at=at
    )
    db.add(parent)
    db.flush()
    link = ShortLink(
        workspace_id=workspace_id,
        slug=f"rcpt{next(_seq)}",
        target_url=parent.target_url,
        parent_id=parent.id,
        customer_id=customer_id,
        created_at=at,
    )
    db.add(link)
    db.flush()
    return link


def make_click(db: Session, *, link: ShortLink, at: datetime) -> ShortLinkClick:
    click = ShortLinkClick(
        workspace_id=link.workspace_id,
        link_id=link.id,
        campaign_link_id=link.parent_id or link.id,
        customer_id=link.customer_id,
        visitor_id=f"c{link.customer_id}",
        clicked_at=at,
    )
    db.add(click)
    db.flush()
    return click


def make_timeline_event(db: Session, *, workspace_id: int, customer_id: int, type_: str, at: datetime) -> None:
    db.add(
        CustomerEvent(
            workspace_id=workspace_id,
            customer_id=customer_id,
            type=type_,
            occurred_at=at,
            properties={},
            source="test",
            idempotency_key=f"test-event-{next(_seq)}",
            recorded_at=at,
        )
    )
    db.flush()
