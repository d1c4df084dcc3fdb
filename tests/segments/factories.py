"""Factories for segment tests: rows written directly (no ingestion rules), so a test can store
exactly the edge it needs — an empty string, an attribute of the wrong JSON type, an event at a
boundary instant. Keyword-only, flushed not committed."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.models import (
    AttributeDefinition,
    Consent,
    Customer,
    CustomerEvent,
    CustomerTag,
    Identity,
    IdentityTypeDefinition,
    Order,
    OrderItem,
    Segment,
    SegmentMember,
    Tag,
    Workspace,
)

_seq = itertools.count(1)


def make_attribute(db: Session, *, workspace: Workspace, key: str, type: str, label: str | None = None) -> None:
    """A custom attribute definition (`type` is an AttributeType value)."""
    db.add(AttributeDefinition(workspace_id=workspace.id, key=key, label=label or key, type=type))
    db.flush()


def make_identity_type(db: Session, *, workspace: Workspace, key: str) -> None:
    db.add(IdentityTypeDefinition(workspace_id=workspace.id, key=key, label=key))
    db.flush()


def make_person(db: Session, *, workspace: Workspace, created_at: datetime, **values: Any) -> Customer:
    """A customer row exactly as given: no normalisation, no survivorship, no identities."""
    values.setdefault("lifecycle_stage", "new")
    values.setdefault("attributes", {})
    customer = Customer(workspace_id=workspace.id, created_at=created_at, updated_at=created_at, **values)
    db.add(customer)
    db.flush()
    return customer


def tag_customer(db: Session, *, customer: Customer, tag: Tag, at: datetime) -> None:
    db.add(
        CustomerTag(
            workspace_id=customer.workspace_id, customer_id=customer.id, tag_id=tag.id, source="manual", assigned_at=at
        )
    )
    db.flush()


def make_identity(db: Session, *, customer: Customer, type: str, at: datetime, value: str | None = None) -> None:
    db.add(
        Identity(
            workspace_id=customer.workspace_id,
            customer_id=customer.id,
            type=type,
            value=value or f"{type}-{next(_seq)}",
            created_at=at,
        )
    )
    db.flush()


def make_consent(db: Session, *, customer: Customer, channel: str, status: str, at: datetime) -> None:
    db.add(
        Consent(
            workspace_id=customer.workspace_id,
            customer_id=customer.id,
            channel=channel,
            status=status,
            source="test",
            changed_at=at,
        )
    )
    db.flush()


def make_event(
    db: Session, *, customer: Customer, type: str, occurred_at: datetime, properties: dict[str, Any] | None = None
) -> CustomerEvent:
    event = CustomerEvent(
        workspace_id=customer.workspace_id,
        customer_id=customer.id,
        type=type,
        occurred_at=occurred_at,
        properties=properties or {},
        source="test",
        idempotency_key=f"evt-{next(_seq)}",
        recorded_at=occurred_at,
    )
    db.add(event)
    db.flush()
    return event


def make_sale(
    db: Session,
    *,
    customer: Customer,
    paid_at: datetime,
    total_fen: int = 19_900,
    refunded_fen: int = 0,
    status: str | None = None,
    platform: str = "taobao",
    items: list[tuple[str, str | None]] | None = None,
) -> Order:
    """An order in any status (`status` defaults from `refunded_fen`), with items as (sku, category)."""
    if status is None:
        status = "paid" if refunded_fen == 0 else "refunded" if refunded_fen >= total_fen else "partially_refunded"
    order = Order(
        workspace_id=customer.workspace_id,
        customer_id=customer.id,
        platform=platform,
        external_id=f"O{next(_seq)}",
        status=status,
        total_fen=total_fen,
        refunded_fen=refunded_fen,
        paid_at=paid_at,
        created_at=paid_at,
    )
    db.add(order)
    db.flush()
    for sku, category in items or []:
        make_order_item(db, order=order, sku=sku, category=category)
    return order


def make_order_item(db: Session, *, order: Order, sku: str, category: str | None = None, amount_fen: int = 100) -> None:
    db.add(
        OrderItem(
            workspace_id=order.workspace_id,
            order_id=order.id,
            customer_id=order.customer_id,
            sku=sku,
            product_name=f"商品 {sku}",
            category=category,
            amount_fen=amount_fen,
        )
    )
    db.flush()


def make_segment(
    db: Session,
    *,
    workspace: Workspace | int,
    clock: Clock,
    definition: dict[str, Any] | None = None,
    members: list[int] | None = None,
    name: str | None = None,
) -> Segment:
    """A dynamic segment (given a definition) or a static one (given members); stored as is."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.id
    segment = Segment(
        workspace_id=workspace_id,
        name=name or f"人群{next(_seq)}",
        kind="dynamic" if definition is not None else "static",
        definition=definition,
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    db.add(segment)
    db.flush()
    for customer_id in members or []:
        db.add(
            SegmentMember(
                workspace_id=workspace_id, segment_id=segment.id, customer_id=customer_id, added_at=clock.now()
            )
        )
    db.flush()
    return segment
