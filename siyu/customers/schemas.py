"""API shapes of the customer pool."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from siyu.auth.permissions import Actor
from siyu.customers.masking import sees_pii, shown_email, shown_identity, shown_phone
from siyu.kit.ids import DbId
from siyu.kit.schemas import Input
from siyu.models import Customer, CustomerEvent, CustomerMerge, Identity


class IdentityIn(Input):
    type: str = Field(min_length=1, max_length=40, examples=["phone"])
    value: str = Field(min_length=1, max_length=200, examples=["+86 138-0013-8000"])


class ProfileFields(Input):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)
    gender: str | None = None
    birthday: date | None = None
    province: str | None = Field(default=None, max_length=50)
    city: str | None = Field(default=None, max_length=50)
    phone: str | None = None
    email: str | None = None
    lifecycle_stage: str | None = None
    owner_staff_id: DbId | None = None
    first_channel: str | None = Field(default=None, max_length=100)
    attributes: dict[str, Any] = Field(default_factory=dict)


class CustomerIngest(ProfileFields):
    """A record about a person: resolved to one customer by its identities (created, updated or merged)."""

    identities: list[IdentityIn] = Field(default_factory=list, max_length=50)
    source: str = Field(default="api", max_length=40)
    observed_at: AwareDatetime | None = None
    """When the source observed these values (survivorship); defaults to now."""


class CustomerUpdate(ProfileFields):
    clear: list[str] = Field(default_factory=list, description="Profile fields to empty.")


class IdentityRead(BaseModel):
    id: int
    type: str
    value: str
    source: str | None
    created_at: datetime


class CustomerRead(BaseModel):
    id: int
    name: str | None
    gender: str | None
    birthday: date | None
    province: str | None
    city: str | None
    phone: str | None
    """E.164 for roles that may see it whole, masked ("138****8000") for the others."""
    email: str | None
    lifecycle_stage: str
    owner_staff_id: int | None
    first_channel: str | None
    attributes: dict[str, Any]
    merged_into_id: int | None
    erased_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CustomerDetail(CustomerRead):
    identities: list[IdentityRead]
    tags: list[dict[str, Any]]


class IngestResponse(BaseModel):
    outcome: str
    merged_ids: list[int]
    customer: CustomerRead


class CustomerPage(BaseModel):
    items: list[CustomerRead]
    next_cursor: str | None


class MergeRequest(Input):
    survivor_id: DbId
    merged_id: DbId


class MergeRead(BaseModel):
    id: int
    survivor_id: DbId
    merged_id: DbId
    reason: str
    merged_at: datetime
    merged_by: str | None
    undone_at: datetime | None
    undone_by: str | None


class EventIn(Input):
    type: str = Field(min_length=1, max_length=60, examples=["page.view"])
    occurred_at: AwareDatetime
    idempotency_key: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)
    source: str = Field(default="api", max_length=40)
    customer_id: DbId | None = None
    identity: IdentityIn | None = None


class EventBatch(Input):
    events: list[EventIn] = Field(max_length=1000)


class EventRead(BaseModel):
    id: int
    customer_id: int
    type: str
    occurred_at: datetime
    properties: dict[str, Any]
    source: str
    idempotency_key: str


class EventPage(BaseModel):
    items: list[EventRead]
    next_cursor: str | None


class ConsentIn(Input):
    channel: str
    status: str
    source: str = Field(default="api", max_length=100)


class RelationshipIn(Input):
    staff_id: DbId
    added_at: AwareDatetime
    channel: str | None = Field(default=None, max_length=100)
    live_code_state: str | None = Field(default=None, max_length=30)


class RelationshipEnd(Input):
    removed_by: str
    removed_at: AwareDatetime


class TagRef(Input):
    tag_id: DbId


class CustomerFilterIn(Input):
    q: str | None = None
    tag_ids: list[DbId] = Field(default_factory=list, max_length=20)
    lifecycle_stage: str | None = None
    owner_staff_id: DbId | None = None


def customer_read(customer: Customer, actor: Actor) -> CustomerRead:
    pii = sees_pii(actor)
    return CustomerRead(
        id=customer.id,
        name=customer.name,
        gender=customer.gender,
        birthday=customer.birthday,
        province=customer.province,
        city=customer.city,
        phone=shown_phone(customer.phone, whole=pii),
        email=shown_email(customer.email, whole=pii),
        lifecycle_stage=customer.lifecycle_stage,
        owner_staff_id=customer.owner_staff_id,
        first_channel=customer.first_channel,
        attributes=customer.attributes or {},
        merged_into_id=customer.merged_into_id,
        erased_at=customer.erased_at,
        created_at=customer.created_at,
        updated_at=customer.updated_at,
    )


def identity_read(identity: Identity, actor: Actor) -> IdentityRead:
    value = shown_identity(identity.type, identity.value, whole=sees_pii(actor))
    return IdentityRead(
        id=identity.id, type=identity.type, value=value, source=identity.source, created_at=identity.created_at
    )


def event_read(event: CustomerEvent) -> EventRead:
    return EventRead(
        id=event.id,
        customer_id=event.customer_id,
        type=event.type,
        occurred_at=event.occurred_at,
        properties=event.properties or {},
        source=event.source,
        idempotency_key=event.idempotency_key,
    )


def merge_read(merge: CustomerMerge) -> MergeRead:
    return MergeRead(
        id=merge.id,
        survivor_id=merge.survivor_id,
        merged_id=merge.merged_id,
        reason=merge.reason,
        merged_at=merge.merged_at,
        merged_by=merge.merged_by,
        undone_at=merge.undone_at,
        undone_by=merge.undone_by,
    )
