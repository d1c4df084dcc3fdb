"""The customer timeline (events), staff relationships and channel consent."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.customers import repository
from siyu.customers.activity import customer_activity, relationship_added
from siyu.customers.errors import CustomerNotFound
from siyu.customers.identities import normalize_identity
from siyu.kit.clock import Clock, as_utc
from siyu.kit.errors import Conflict, DomainError, InvalidInput, NotFound
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor
from siyu.models import (
    Consent,
    ConsentChannel,
    ConsentStatus,
    Customer,
    CustomerEvent,
    Relationship,
    RemovedBy,
    Staff,
)

_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
MAX_BATCH = 1000


@dataclass
class EventInput:
    """An event to record; the customer is named by id or by one identity."""

    type: str
    occurred_at: datetime
    idempotency_key: str
    source: str = "api"
    properties: dict[str, Any] | None = None
    customer_id: int | None = None
    identity_type: str | None = None
    identity_value: str | None = None


@dataclass
class EventOutcome:
    index: int
    status: str  # "created", "duplicate" or "rejected"
    event_id: int | None = None
    error: dict[str, Any] | None = None


def _resolve_customer(session: Session, actor: Actor, item: EventInput) -> Customer:
    if item.customer_id is not None:
        return repository.get_visible(session, actor, item.customer_id)
    if item.identity_type and item.identity_value:
        value = normalize_identity(item.identity_type, item.identity_value)
        customer = repository.find_by_identity(session, actor.workspace_id, item.identity_type, value)
        if customer is None:
            raise CustomerNotFound("no customer with this identity", details={"field": "identity"})
        while customer.merged_into_id is not None:  # events follow merges
            customer = repository.get_visible(session, actor, customer.merged_into_id)
        return repository.get_visible(session, actor, customer.id)
    raise InvalidInput("customer_id or identity is required", details={"field": "customer_id"})


def record_event(session: Session, *, actor: Actor, item: EventInput, clock: Clock) -> tuple[CustomerEvent, bool]:
    """Append an event; a retry with the same idempotency key returns the first one (created=False)."""
    actor.require(Scope.EVENTS_WRITE)
    if not _EVENT_TYPE.match(item.type) or len(item.type) > 60:
        raise InvalidInput("type must be dotted lower-case words, e.g. page.view", details={"field": "type"})
    if not item.idempotency_key or len(item.idempotency_key) > 200:
        raise InvalidInput("idempotency_key is required (≤200 characters)", details={"field": "idempotency_key"})
    existing = session.scalar(
        select(CustomerEvent).where(
            CustomerEvent.workspace_id == actor.workspace_id, CustomerEvent.idempotency_key == item.idempotency_key
        )
    )
    if existing is not None:
        return existing, False
    customer = _resolve_customer(session, actor, item)
    event = CustomerEvent(
        workspace_id=actor.workspace_id,
        customer_id=customer.id,
        type=item.type,
        occurred_at=as_utc(item.occurred_at),
        properties=item.properties or {},
        source=item.source,
        idempotency_key=item.idempotency_key,
        recorded_at=clock.now(),
    )
    try:
        with session.begin_nested():
            session.add(event)
            session.flush()
    except IntegrityError:
        # A concurrent request with the same key won the race; return its row.
        winner = session.scalar(
            select(CustomerEvent).where(
                CustomerEvent.workspace_id == actor.workspace_id, CustomerEvent.idempotency_key == item.idempotency_key
            )
        )
        if winner is None:
            raise
        return winner, False
    customer_activity(session, actor.workspace_id, customer.id)
    return event, True


def record_events(session: Session, *, actor: Actor, items: Sequence[EventInput], clock: Clock) -> list[EventOutcome]:
    """Record a batch; each item succeeds, is a duplicate, or is rejected on its own."""
    actor.require(Scope.EVENTS_WRITE)
    if len(items) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} events per batch", details={"field": "events"})
    outcomes: list[EventOutcome] = []
    for index, item in enumerate(items):
        try:
            with session.begin_nested():
                event, created = record_event(session, actor=actor, item=item, clock=clock)
            outcomes.append(EventOutcome(index, "created" if created else "duplicate", event.id))
        except DomainError as exc:
            outcomes.append(
                EventOutcome(
                    index, "rejected", None, {"code": exc.code, "message": exc.message, "details": exc.details}
                )
            )
    return outcomes


def _timeline_cursor(cursor: str) -> tuple[datetime, int]:
    value = decode_cursor(cursor)
    try:
        occurred, event_id = value
        occurred_at = datetime.fromisoformat(occurred)
        if occurred_at.tzinfo is None or not isinstance(event_id, int) or isinstance(event_id, bool):
            raise ValueError(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("invalid cursor", details={"field": "cursor"}) from exc
    return occurred_at, event_id


def timeline(
    session: Session, *, actor: Actor, customer_id: int, cursor: str | None = None, limit: int = 50
) -> Page[CustomerEvent]:
    """A customer's events, newest first."""
    customer = repository.get_visible(session, actor, customer_id)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(CustomerEvent).where(CustomerEvent.customer_id == customer.id)
    if cursor:
        occurred_at, event_id = _timeline_cursor(cursor)
        query = query.where(
            (CustomerEvent.occurred_at < occurred_at)
            | ((CustomerEvent.occurred_at == occurred_at) & (CustomerEvent.id < event_id))
        )
    rows = list(
        session.scalars(query.order_by(CustomerEvent.occurred_at.desc(), CustomerEvent.id.desc()).limit(limit + 1))
    )
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor([last.occurred_at.isoformat(), last.id])
    return Page(items=rows[:limit], next_cursor=next_cursor)


def system_event(
    session: Session, customer: Customer, type_: str, key: str, at: datetime, clock: Clock, properties: dict[str, Any]
) -> None:
    """Add an event siyu itself observed (an add, a welcome message, a click) to a customer's timeline."""
    session.add(
        CustomerEvent(
            workspace_id=customer.workspace_id,
            customer_id=customer.id,
            type=type_,
            occurred_at=at,
            properties=properties,
            source="siyu",
            idempotency_key=key,
            recorded_at=clock.now(),
        )
    )
    customer_activity(session, customer.workspace_id, customer.id)


def add_relationship(
    session: Session,
    *,
    actor: Actor,
    customer_id: int,
    staff_id: int,
    added_at: datetime,
    clock: Clock,
    channel: str | None = None,
    live_code_state: str | None = None,
    channel_id: int | None = None,
    live_code_id: int | None = None,
    variant: str | None = None,
) -> Relationship:
    """Record that a staff member and a customer became friends (one open edge per pair).

    `channel` is a free-text label (imports); `channel_id`, `live_code_id` and `variant` attribute
    the add to an acquisition channel, live code and experiment arm (see `siyu.livecodes.adds`).
    """
    actor.require(Scope.CUSTOMERS_WRITE)
    # Lock the customer: two concurrent adds for one pair must not both see no open edge.
    customer = repository.get_visible(session, actor, customer_id, for_update=True)
    staff = session.scalar(select(Staff).where(Staff.id == staff_id, Staff.workspace_id == actor.workspace_id))
    if staff is None:
        raise InvalidInput("unknown staff member", details={"field": "staff_id"})
    if live_code_state is not None and len(live_code_state) > 30:
        raise InvalidInput("live code state is at most 30 characters", details={"field": "live_code_state"})
    open_edge = session.scalar(
        select(Relationship).where(
            Relationship.customer_id == customer.id,
            Relationship.staff_id == staff.id,
            Relationship.removed_at.is_(None),
        )
    )
    if open_edge is not None:
        raise Conflict("already friends", details={"relationship_id": open_edge.id})
    edge = Relationship(
        workspace_id=actor.workspace_id,
        customer_id=customer.id,
        staff_id=staff.id,
        added_at=added_at,
        channel=channel,
        live_code_state=live_code_state,
        channel_id=channel_id,
        live_code_id=live_code_id,
        variant=variant,
    )
    session.add(edge)
    session.flush()
    if customer.owner_staff_id is None:
        customer.owner_staff_id = staff.id
    system_event(
        session,
        customer,
        "relationship.added",
        f"rel:{edge.id}:added",
        added_at,
        clock,
        {"staff_id": staff.id, "channel": channel, "channel_id": channel_id, "live_code_id": live_code_id},
    )
    record(
        session,
        actor,
        action="create",
        entity_type="relationship",
        entity_id=edge.id,
        after={"customer_id": customer.id, "staff_id": staff.id},
        clock=clock,
    )
    relationship_added(session, actor.workspace_id, customer.id, clock)
    return edge


def end_relationship(
    session: Session, *, actor: Actor, relationship_id: int, removed_by: RemovedBy, removed_at: datetime, clock: Clock
) -> Relationship:
    """Close a friend edge: the customer deleted the staff member, or the other way round."""
    actor.require(Scope.CUSTOMERS_WRITE)
    edge = session.scalar(
        select(Relationship).where(Relationship.id == relationship_id, Relationship.workspace_id == actor.workspace_id)
    )
    if edge is None:
        raise NotFound("relationship not found")
    customer = repository.get_visible(session, actor, edge.customer_id)
    if edge.removed_at is not None:
        return edge
    edge.removed_at, edge.removed_by = removed_at, removed_by
    system_event(
        session,
        customer,
        "relationship.removed",
        f"rel:{edge.id}:removed",
        removed_at,
        clock,
        {"staff_id": edge.staff_id, "removed_by": str(removed_by)},
    )
    record(
        session,
        actor,
        action="update",
        entity_type="relationship",
        entity_id=edge.id,
        before={"removed_at": None},
        after={"removed_at": removed_at.isoformat(), "removed_by": str(removed_by)},
        clock=clock,
    )
    session.flush()
    return edge


def relationships_of(session: Session, customer_id: int) -> list[tuple[Relationship, Staff]]:
    rows = session.execute(
        select(Relationship, Staff)
        .join(Staff, Staff.id == Relationship.staff_id)
        .where(Relationship.customer_id == customer_id)
        .order_by(Relationship.added_at.desc())
    ).all()
    return [(r, s) for r, s in rows]


def set_consent(
    session: Session,
    *,
    actor: Actor,
    customer_id: int,
    channel: str,
    status: str,
    source: str,
    clock: Clock,
    changed_at: datetime | None = None,
) -> Consent:
    """Record a customer's marketing consent on one channel (and the change on the timeline)."""
    actor.require(Scope.CUSTOMERS_WRITE)
    try:
        channel_ = ConsentChannel(channel)
    except ValueError as exc:
        raise InvalidInput(f"unknown channel {channel!r}", details={"field": "channel"}) from exc
    try:
        status_ = ConsentStatus(status)
    except ValueError as exc:
        raise InvalidInput(f"unknown status {status!r}", details={"field": "status"}) from exc
    customer = repository.get_visible(session, actor, customer_id, for_update=True)
    at = changed_at or clock.now()
    consent = session.scalar(select(Consent).where(Consent.customer_id == customer.id, Consent.channel == channel_))
    before = None if consent is None else {"status": str(consent.status), "source": consent.source}
    if consent is None:
        consent = Consent(
            workspace_id=actor.workspace_id,
            customer_id=customer.id,
            channel=channel_,
            status=status_,
            source=source,
            changed_at=at,
        )
        session.add(consent)
    else:
        consent.status, consent.source, consent.changed_at = status_, source, at
    session.flush()
    system_event(
        session,
        customer,
        "consent.changed",
        f"consent:{consent.id}:{uuid.uuid4().hex}",
        at,
        clock,
        {"channel": str(channel_), "status": str(status_), "source": source},
    )
    record(
        session,
        actor,
        action="update",
        entity_type="consent",
        entity_id=consent.id,
        before=before,
        after={"customer_id": customer.id, "channel": str(channel_), "status": str(status_), "source": source},
        clock=clock,
    )
    return consent


def consents_of(session: Session, customer_id: int) -> Sequence[Consent]:
    return session.scalars(select(Consent).where(Consent.customer_id == customer_id).order_by(Consent.channel)).all()
