"""Requests under PIPL: export everything about one person, or erase it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.customers import repository
from siyu.customers.errors import CustomerErased
from siyu.customers.service.merge import merges_of
from siyu.customers.service.privacy_commerce import commerce_erase, commerce_export
from siyu.customers.service.tags import tags_of
from siyu.customers.service.timeline import consents_of, relationships_of
from siyu.kit.clock import Clock
from siyu.models import (
    AuditEntry,
    Consent,
    Customer,
    CustomerEvent,
    CustomerMerge,
    Delivery,
    DeliveryStatus,
    Identity,
    SandboxMessage,
    TouchState,
)


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def export_customer(session: Session, *, actor: Actor, customer_id: int, clock: Clock) -> dict[str, Any]:
    """Everything siyu holds about one person, as a JSON-ready document."""
    actor.require(Scope.CUSTOMERS_ERASE)
    customer = repository.get_visible(session, actor, customer_id)
    columns = [c.key for c in customer.__table__.columns if c.key not in {"workspace_id", "field_updated_at"}]
    events = session.scalars(
        select(CustomerEvent).where(CustomerEvent.customer_id == customer.id).order_by(CustomerEvent.occurred_at)
    ).all()
    document = {
        "customer": {name: _json(getattr(customer, name)) for name in columns},
        "identities": [
            {"type": i.type, "value": i.value, "source": i.source, "created_at": _json(i.created_at)}
            for i in repository.identities_of(session, customer.id)
        ],
        "tags": [
            {"tag": t.name, "source": ct.source, "assigned_at": _json(ct.assigned_at)}
            for ct, t in tags_of(session, customer.id)
        ],
        "relationships": [
            {
                "staff": s.name,
                "added_at": _json(r.added_at),
                "removed_at": _json(r.removed_at),
                "removed_by": r.removed_by,
                "channel": r.channel,
            }
            for r, s in relationships_of(session, customer.id)
        ],
        "consents": [
            {"channel": c.channel, "status": c.status, "source": c.source, "changed_at": _json(c.changed_at)}
            for c in consents_of(session, customer.id)
        ],
        "events": [
            {"type": e.type, "occurred_at": _json(e.occurred_at), "properties": e.properties, "source": e.source}
            for e in events
        ],
        "merges": [
            {
                "survivor_id": m.survivor_id,
                "merged_id": m.merged_id,
                "merged_at": _json(m.merged_at),
                "undone_at": _json(m.undone_at),
            }
            for m in merges_of(session, actor=actor, customer_id=customer.id)
        ],
        **commerce_export(session, customer.id),
        "exported_at": clock.now().isoformat(),
    }
    record(session, actor, action="export", entity_type="customer", entity_id=customer.id, clock=clock)
    return document


ERASED = "[erased]"
PERSONAL_FIELDS = ("name", "birthday", "province", "city", "phone", "email")


def erase_customer(session: Session, *, actor: Actor, customer_id: int, clock: Clock) -> None:
    """Remove personal fields, identities and event details; keep the row for aggregates.

    Relationships, tags and event types/times stay (they feed pool size, deletion rate and
    funnels), but nothing left identifies the person: profiles merged into this one are erased
    too, merge snapshots are dropped (those merges can no longer be undone), and the values in
    earlier audit entries about these profiles are replaced by "[erased]". The erase's own
    audit entry holds no personal data.
    """
    actor.require(Scope.CUSTOMERS_ERASE)
    customer = repository.get_visible(session, actor, customer_id, for_update=True)
    if customer.erased_at is not None:
        raise CustomerErased("already erased")
    now = clock.now()
    profile_ids = _merged_chain(session, customer)
    identity_count = len(repository.identities_of(session, customer.id))
    for row in session.scalars(select(Customer).where(Customer.id.in_(profile_ids))):
        for name in PERSONAL_FIELDS:
            setattr(row, name, None)
        row.attributes = {}
        row.field_updated_at = {}
        row.erased_at = now
        row.updated_at = now
    session.execute(delete(Identity).where(Identity.customer_id.in_(profile_ids)))
    session.execute(
        update(CustomerEvent).where(CustomerEvent.customer_id.in_(profile_ids)).values(properties={}),
        execution_options={"synchronize_session": False},
    )
    session.execute(delete(Consent).where(Consent.customer_id.in_(profile_ids)))
    # Messages carry names and addresses: keep the delivery rows (campaign counts) without them,
    # and never send what is still queued.
    session.execute(
        update(Delivery)
        .where(Delivery.customer_id.in_(profile_ids), Delivery.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.SUPPRESSED, reason="erased", slot_at=None),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        update(Delivery).where(Delivery.customer_id.in_(profile_ids)).values(message=None, address=None),
        execution_options={"synchronize_session": False},
    )
    session.execute(delete(SandboxMessage).where(SandboxMessage.customer_id.in_(profile_ids)))
    commerce_erase(session, profile_ids)
    # Their frequency counters go too: an erased profile is never planned again (see messaging.reach).
    session.execute(delete(TouchState).where(TouchState.customer_id.in_(profile_ids)))
    merges = session.scalars(
        select(CustomerMerge).where(
            CustomerMerge.workspace_id == actor.workspace_id,
            CustomerMerge.survivor_id.in_(profile_ids) | CustomerMerge.merged_id.in_(profile_ids),
        )
    )
    for merge in merges:
        merge.undo_data = {"erased": True}
    ids_as_text = [str(i) for i in profile_ids]
    for entry in session.scalars(
        select(AuditEntry).where(
            AuditEntry.workspace_id == actor.workspace_id,
            AuditEntry.entity_type == "customer",
            AuditEntry.entity_id.in_(ids_as_text),
        )
    ):
        entry.before = _scrub(entry.before)
        entry.after = _scrub(entry.after)
    session.flush()
    record(
        session,
        actor,
        action="erase",
        entity_type="customer",
        entity_id=customer.id,
        after={"identities_removed": identity_count, "profiles_erased": len(profile_ids)},
        clock=clock,
    )


def _merged_chain(session: Session, customer: Customer) -> list[int]:
    """The customer and every profile merged into it, directly or through others."""
    ids = [customer.id]
    frontier = [customer.id]
    while frontier:
        frontier = list(session.scalars(select(Customer.id).where(Customer.merged_into_id.in_(frontier))))
        ids.extend(frontier)
    return ids


def _scrub(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """Keep which fields an audit entry touched, not their values."""
    if values is None:
        return None
    return {key: ERASED for key in values}
