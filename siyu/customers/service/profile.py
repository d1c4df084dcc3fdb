"""Creating, ingesting and editing customer profiles (OneID resolution lives here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.customers import repository
from siyu.customers.errors import CustomerErased, InvalidIdentity
from siyu.customers.identities import normalize_identity
from siyu.customers.service import survivorship
from siyu.customers.service.definitions import attribute_definitions, coerce_attribute, identity_types
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput
from siyu.models import (
    Customer,
    Gender,
    Identity,
    IdentityType,
    LifecycleStage,
    Staff,
    Workspace,
)
from siyu.models.customer import PROFILE_FIELDS

INGEST_ATTEMPTS = 3


class IngestOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    MERGED = "merged"


@dataclass
class ProfileInput:
    """Profile values from any source; None means "not given", never "clear it"."""

    values: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class IngestResult:
    customer: Customer
    outcome: IngestOutcome
    merged_ids: list[int] = field(default_factory=list)


def validate_profile(
    session: Session, workspace_id: int, profile: ProfileInput, *, phone_region: str = "CN"
) -> dict[str, Any]:
    """Check profile values and return them normalised, keyed by field (`attr.<key>` for attributes)."""
    out: dict[str, Any] = {}
    for name, value in profile.values.items():
        if name not in PROFILE_FIELDS:
            raise InvalidInput(f"unknown field {name!r}", details={"field": name})
        if survivorship.is_empty(value):
            continue
        out[name] = _validate_field(session, workspace_id, name, value, phone_region)
    if profile.attributes:
        definitions = attribute_definitions(session, workspace_id)
        for key, value in profile.attributes.items():
            if key not in definitions:
                raise InvalidInput(f"unknown attribute {key!r}", details={"field": f"attributes.{key}"})
            if not survivorship.is_empty(value):
                out[survivorship.ATTRIBUTE_PREFIX + key] = coerce_attribute(definitions[key], value)
    return out


def _validate_field(session: Session, workspace_id: int, name: str, value: Any, phone_region: str) -> Any:
    try:
        match name:
            case "gender":
                return Gender(value)
            case "lifecycle_stage":
                return LifecycleStage(value)
            case "birthday":
                return value if isinstance(value, date) else date.fromisoformat(str(value))
            case "phone":
                return normalize_identity(IdentityType.PHONE, value, phone_region=phone_region)
            case "email":
                return normalize_identity(IdentityType.EMAIL, value)
            case "owner_staff_id":
                staff_id = int(value)
                if (
                    session.scalar(select(Staff.id).where(Staff.id == staff_id, Staff.workspace_id == workspace_id))
                    is None
                ):
                    raise InvalidInput("unknown staff member", details={"field": name})
                return staff_id
            case _:
                text = str(value).strip()
                if len(text) > 100:
                    raise InvalidInput(f"{name} is too long", details={"field": name})
                return text
    except InvalidIdentity:
        raise
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"invalid {name}: {value!r}", details={"field": name}) from exc


def normalize_identities(
    session: Session, workspace_id: int, pairs: Iterable[tuple[str, str]], *, phone_region: str = "CN"
) -> list[tuple[str, str]]:
    """Validate identity types and normalise values; duplicates collapse."""
    known = identity_types(session, workspace_id)
    out: list[tuple[str, str]] = []
    for type_, value in pairs:
        if type_ not in known:
            raise InvalidIdentity(f"unknown identity type {type_!r}", details={"field": "identities"})
        pair = (type_, normalize_identity(type_, value, phone_region=phone_region))
        if pair not in out:
            out.append(pair)
    return out


def apply_profile(
    customer: Customer, values: Mapping[str, Any], observed_at: datetime, overrides: Mapping[str, Any]
) -> list[str]:
    """Apply validated values under survivorship; returns the fields whose value changed.

    A value equal to the current one still moves the field's timestamp when it wins, so a later
    observation of the same value keeps beating an earlier observation of another.
    """
    changed = []
    for name, value in values.items():
        current = survivorship.current_value(customer, name)
        if survivorship.wins(customer, name, observed_at, dict(overrides)):
            survivorship.set_field(customer, name, value, observed_at)
            if current != value:
                changed.append(name)
    return changed


def _add_identities(
    session: Session, customer: Customer, pairs: Iterable[tuple[str, str]], source: str, clock: Clock
) -> int:
    existing = {(i.type, i.value) for i in repository.identities_of(session, customer.id)}
    added = 0
    for type_, value in pairs:
        if (type_, value) not in existing:
            session.add(
                Identity(
                    workspace_id=customer.workspace_id,
                    customer_id=customer.id,
                    type=type_,
                    value=value,
                    source=source,
                    created_at=clock.now(),
                )
            )
            added += 1
    return added


def ingest_customer(
    session: Session,
    *,
    actor: Actor,
    identities: Iterable[tuple[str, str]],
    profile: ProfileInput | None = None,
    source: str,
    clock: Clock,
    observed_at: datetime | None = None,
    phone_region: str = "CN",
) -> IngestResult:
    """Resolve a record about a person to one customer: create, update, or merge several.

    Identities that point at two or more customers merge them into the oldest (lowest id);
    profile values then apply under survivorship, and missing identities are added. When a
    concurrent writer claims one of the identities first (the unique key on identities
    fires), the record is resolved again against what that writer committed.
    """
    actor.require(Scope.CUSTOMERS_WRITE)
    pairs = list(identities)
    for attempt in range(INGEST_ATTEMPTS):
        try:
            with session.begin_nested():
                return _ingest_once(
                    session,
                    actor=actor,
                    identities=pairs,
                    profile=profile,
                    source=source,
                    clock=clock,
                    observed_at=observed_at,
                    phone_region=phone_region,
                )
        except IntegrityError:
            if attempt == INGEST_ATTEMPTS - 1:
                raise Conflict("identity claimed concurrently; retry the request") from None
    raise AssertionError("unreachable")


def _ingest_once(
    session: Session,
    *,
    actor: Actor,
    identities: list[tuple[str, str]],
    profile: ProfileInput | None,
    source: str,
    clock: Clock,
    observed_at: datetime | None,
    phone_region: str,
) -> IngestResult:
    from siyu.customers.service.merge import merge_customers  # merge imports this module

    profile = profile or ProfileInput()
    observed_at = observed_at or clock.now()
    values = validate_profile(session, actor.workspace_id, profile, phone_region=phone_region)
    pairs = list(identities)
    if "phone" in values:
        pairs.append((IdentityType.PHONE, values["phone"]))
    if "email" in values:
        pairs.append((IdentityType.EMAIL, values["email"]))
    pairs = normalize_identities(session, actor.workspace_id, pairs, phone_region=phone_region)
    if not pairs:
        raise InvalidIdentity(
            "at least one identity (phone, e-mail, platform id…) is required", details={"field": "identities"}
        )
    owners = repository.customer_ids_for_identities(session, actor.workspace_id, pairs)
    customer_ids = sorted(set(owners.values()))
    workspace = session.get(Workspace, actor.workspace_id)
    overrides = workspace.survivorship if workspace else {}
    merged_ids: list[int] = []
    if not customer_ids:
        now = clock.now()
        customer = Customer(
            workspace_id=actor.workspace_id,
            created_at=now,
            updated_at=now,
            lifecycle_stage=LifecycleStage.NEW,
            attributes={},
            field_updated_at={},
        )
        session.add(customer)
        apply_profile(customer, values, observed_at, overrides)
        session.flush()
        _add_identities(session, customer, pairs, source, clock)
        session.flush()
        record(
            session,
            actor,
            action="create",
            entity_type="customer",
            entity_id=customer.id,
            after=survivorship.snapshot(customer),
            clock=clock,
        )
        return IngestResult(customer=customer, outcome=IngestOutcome.CREATED)
    locked = repository.lock_customers(session, actor.workspace_id, customer_ids)
    customer = locked[0]
    if customer.erased_at is not None:
        raise CustomerErased(f"customer {customer.id} was erased on request", details={"field": "identities"})
    for other in locked[1:]:
        merge_customers(
            session, actor=actor, survivor_id=customer.id, merged_id=other.id, reason=f"ingest:{source}", clock=clock
        )
        merged_ids.append(other.id)
    before = survivorship.snapshot(customer)
    changed = apply_profile(customer, values, observed_at, overrides)
    added = _add_identities(session, customer, pairs, source, clock)
    if changed or added:
        customer.updated_at = clock.now()
        record(
            session,
            actor,
            action="update",
            entity_type="customer",
            entity_id=customer.id,
            before={k: before.get(k) for k in changed},
            after={k: survivorship.snapshot(customer).get(k) for k in changed} | {"identities_added": added},
            clock=clock,
        )
    session.flush()
    outcome = IngestOutcome.MERGED if merged_ids or added else IngestOutcome.UPDATED
    return IngestResult(customer=customer, outcome=outcome, merged_ids=merged_ids)


def update_customer(
    session: Session,
    *,
    actor: Actor,
    customer_id: int,
    profile: ProfileInput,
    clock: Clock,
    clear: Iterable[str] = (),
    phone_region: str = "CN",
) -> Customer:
    """An explicit edit by a person: values given replace the current ones (and win later merges)."""
    actor.require(Scope.CUSTOMERS_WRITE)
    customer = repository.get_visible(session, actor, customer_id, for_update=True)
    if customer.merged_into_id is not None or customer.erased_at is not None:
        raise Conflict("this profile was merged or erased and cannot be edited")
    values = validate_profile(session, actor.workspace_id, profile, phone_region=phone_region)
    before = survivorship.snapshot(customer)
    now = clock.now()
    for name, value in values.items():
        survivorship.set_field(customer, name, value, now)
    for name in clear:
        if name not in PROFILE_FIELDS or name == "lifecycle_stage":
            raise InvalidInput(f"cannot clear {name!r}", details={"field": name})
        survivorship.set_field(customer, name, None, now)
    if "phone" in values:
        _claim_identity(session, customer, IdentityType.PHONE, values["phone"], clock)
    if "email" in values:
        _claim_identity(session, customer, IdentityType.EMAIL, values["email"], clock)
    customer.updated_at = now
    session.flush()
    after = survivorship.snapshot(customer)
    diff = [k for k in after if after[k] != before.get(k)]
    record(
        session,
        actor,
        action="update",
        entity_type="customer",
        entity_id=customer.id,
        before={k: before.get(k) for k in diff},
        after={k: after[k] for k in diff},
        clock=clock,
    )
    return customer


def _claim_identity(session: Session, customer: Customer, type_: str, value: str, clock: Clock) -> None:
    owner = repository.find_by_identity(session, customer.workspace_id, type_, value)
    if owner is not None and owner.id != customer.id:
        raise Conflict(
            f"{type_} {value} belongs to customer {owner.id}; merge them instead",
            details={"field": type_, "customer_id": owner.id},
        )
    if owner is None:
        _add_identities(session, customer, [(type_, value)], "console", clock)


def add_identity(
    session: Session,
    *,
    actor: Actor,
    customer_id: int,
    type_: str,
    value: str,
    clock: Clock,
    source: str = "manual",
    phone_region: str = "CN",
) -> Identity:
    """Attach an identity to a customer; 409 if another customer holds it."""
    actor.require(Scope.CUSTOMERS_WRITE)
    customer = repository.get_visible(session, actor, customer_id, for_update=True)
    [(type_, value)] = normalize_identities(session, actor.workspace_id, [(type_, value)], phone_region=phone_region)
    _claim_identity(session, customer, type_, value, clock)
    session.flush()
    identity = session.scalar(
        select(Identity).where(
            Identity.workspace_id == actor.workspace_id, Identity.type == type_, Identity.value == value
        )
    )
    assert identity is not None
    record(
        session,
        actor,
        action="create",
        entity_type="identity",
        entity_id=identity.id,
        after={"customer_id": customer.id, "type": type_},
        clock=clock,
    )
    return identity
