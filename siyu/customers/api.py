"""HTTP API of the customer pool: thin handlers over the services."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from siyu.auth.permissions import Scope
from siyu.customers import repository
from siyu.customers.errors import CustomerNotFound
from siyu.customers.identities import normalize_identity
from siyu.customers.repository import CustomerFilter
from siyu.customers.schemas import (
    ConsentIn,
    CustomerDetail,
    CustomerFilterIn,
    CustomerIngest,
    CustomerPage,
    CustomerRead,
    CustomerUpdate,
    EventBatch,
    EventIn,
    EventPage,
    EventRead,
    IdentityIn,
    IdentityRead,
    IngestResponse,
    MergeRead,
    MergeRequest,
    RelationshipEnd,
    RelationshipIn,
    TagRef,
    customer_read,
    event_read,
    identity_read,
    merge_read,
)
from siyu.customers.service import merge, privacy, profile, tags, timeline
from siyu.kit.errors import InvalidInput
from siyu.kit.ids import MAX_ID, DbId
from siyu.models import RemovedBy
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["customers"])

Reader = Annotated[Ctx, Depends(require(Scope.CUSTOMERS_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.CUSTOMERS_WRITE))]
EventWriter = Annotated[Ctx, Depends(require(Scope.EVENTS_WRITE))]
Eraser = Annotated[Ctx, Depends(require(Scope.CUSTOMERS_ERASE))]
Merger = Annotated[Ctx, Depends(require(Scope.CUSTOMERS_MERGE))]
Tagger = Annotated[Ctx, Depends(require(Scope.TAGS_WRITE))]


def _profile(body: Any) -> profile.ProfileInput:
    values = body.model_dump(exclude={"attributes", "identities", "source", "observed_at", "clear"}, exclude_none=True)
    return profile.ProfileInput(values=values, attributes=body.attributes)


def _detail(ctx: Ctx, customer_id: IdPath) -> CustomerDetail:
    customer = repository.get_visible(ctx.session, ctx.actor, customer_id)
    base = customer_read(customer, ctx.actor).model_dump()
    return CustomerDetail(
        **base,
        identities=[identity_read(i, ctx.actor) for i in repository.identities_of(ctx.session, customer.id)],
        tags=[
            {"id": t.id, "name": t.name, "source": ct.source, "assigned_at": ct.assigned_at}
            for ct, t in tags.tags_of(ctx.session, customer.id)
        ],
    )


@router.get("/customers", response_model=CustomerPage)
def list_customers(
    ctx: Reader,
    q: str | None = None,
    tag_id: Annotated[list[DbId], Query(max_length=20)] = [],  # noqa: B006 - FastAPI query list
    lifecycle_stage: str | None = None,
    owner_staff_id: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CustomerPage:
    flt = CustomerFilter(q=q, tag_ids=tag_id, lifecycle_stage=lifecycle_stage, owner_staff_id=owner_staff_id)
    page = repository.list_customers(ctx.session, ctx.actor, flt, cursor=cursor, limit=limit)
    return CustomerPage(items=[customer_read(c, ctx.actor) for c in page.items], next_cursor=page.next_cursor)


@router.get("/customers/count")
def count_customers(
    ctx: Reader,
    q: str | None = None,
    tag_id: Annotated[list[DbId], Query(max_length=20)] = [],  # noqa: B006
    lifecycle_stage: str | None = None,
    owner_staff_id: Annotated[int | None, Query(gt=0, le=MAX_ID)] = None,
) -> dict[str, int]:
    flt = CustomerFilter(q=q, tag_ids=tag_id, lifecycle_stage=lifecycle_stage, owner_staff_id=owner_staff_id)
    return {"count": repository.count_customers(ctx.session, ctx.actor, flt)}


@router.get("/customers/lookup", response_model=CustomerDetail)
def lookup_customer(ctx: Reader, type: str, value: str) -> CustomerDetail:
    """Resolve a customer by any identity (`type=phone&value=13800138000`)."""
    customer = repository.find_by_identity(ctx.session, ctx.actor.workspace_id, type, normalize_identity(type, value))
    if customer is None:
        raise CustomerNotFound("no customer with this identity")
    return _detail(ctx, customer.id)


@router.post("/customers", response_model=IngestResponse, status_code=201)
def ingest_customer(body: CustomerIngest, ctx: Writer, response: Response) -> IngestResponse:
    """Create a customer, or update/merge the ones its identities point at (OneID)."""
    result = profile.ingest_customer(
        ctx.session,
        actor=ctx.actor,
        identities=[(i.type, i.value) for i in body.identities],
        profile=_profile(body),
        source=body.source,
        clock=ctx.clock,
        observed_at=body.observed_at,
        phone_region=ctx.settings.phone_region,
    )
    if result.outcome != profile.IngestOutcome.CREATED:
        response.status_code = 200
    return IngestResponse(
        outcome=result.outcome, merged_ids=result.merged_ids, customer=customer_read(result.customer, ctx.actor)
    )


@router.get("/customers/{customer_id}", response_model=CustomerDetail)
def get_customer(customer_id: IdPath, ctx: Reader) -> CustomerDetail:
    return _detail(ctx, customer_id)


@router.patch("/customers/{customer_id}", response_model=CustomerRead)
def update_customer(customer_id: IdPath, body: CustomerUpdate, ctx: Writer) -> CustomerRead:
    customer = profile.update_customer(
        ctx.session,
        actor=ctx.actor,
        customer_id=customer_id,
        profile=_profile(body),
        clear=body.clear,
        clock=ctx.clock,
        phone_region=ctx.settings.phone_region,
    )
    return customer_read(customer, ctx.actor)


@router.post("/customers/{customer_id}/identities", response_model=IdentityRead, status_code=201)
def add_identity(customer_id: IdPath, body: IdentityIn, ctx: Writer) -> IdentityRead:
    identity = profile.add_identity(
        ctx.session,
        actor=ctx.actor,
        customer_id=customer_id,
        type_=body.type,
        value=body.value,
        clock=ctx.clock,
        phone_region=ctx.settings.phone_region,
    )
    return identity_read(identity, ctx.actor)


@router.get("/customers/{customer_id}/events", response_model=EventPage)
def customer_events(
    customer_id: IdPath, ctx: Reader, cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> EventPage:
    page = timeline.timeline(ctx.session, actor=ctx.actor, customer_id=customer_id, cursor=cursor, limit=limit)
    return EventPage(items=[event_read(e) for e in page.items], next_cursor=page.next_cursor)


@router.post("/customers/{customer_id}/tags", status_code=201)
def tag_customer(customer_id: IdPath, body: TagRef, ctx: Writer) -> dict[str, bool]:
    return {
        "added": tags.assign_tag(
            ctx.session, actor=ctx.actor, customer_id=customer_id, tag_id=body.tag_id, clock=ctx.clock
        )
    }


@router.delete("/customers/{customer_id}/tags/{tag_id}")
def untag_customer(customer_id: IdPath, tag_id: IdPath, ctx: Writer) -> dict[str, bool]:
    return {
        "removed": tags.remove_tag(
            ctx.session, actor=ctx.actor, customer_id=customer_id, tag_id=tag_id, clock=ctx.clock
        )
    }


@router.post("/customers/{customer_id}/consents")
def set_consent(customer_id: IdPath, body: ConsentIn, ctx: Writer) -> dict[str, Any]:
    consent = timeline.set_consent(
        ctx.session,
        actor=ctx.actor,
        customer_id=customer_id,
        channel=body.channel,
        status=body.status,
        source=body.source,
        clock=ctx.clock,
    )
    return {
        "channel": consent.channel,
        "status": consent.status,
        "source": consent.source,
        "changed_at": consent.changed_at,
    }


@router.post("/customers/{customer_id}/relationships", status_code=201)
def add_relationship(customer_id: IdPath, body: RelationshipIn, ctx: Writer) -> dict[str, Any]:
    edge = timeline.add_relationship(
        ctx.session,
        actor=ctx.actor,
        customer_id=customer_id,
        staff_id=body.staff_id,
        added_at=body.added_at,
        channel=body.channel,
        live_code_state=body.live_code_state,
        clock=ctx.clock,
    )
    return {"id": edge.id, "staff_id": edge.staff_id, "added_at": edge.added_at}


@router.post("/relationships/{relationship_id}/end")
def end_relationship(relationship_id: IdPath, body: RelationshipEnd, ctx: Writer) -> dict[str, Any]:
    try:
        removed_by = RemovedBy(body.removed_by)
    except ValueError as exc:
        raise InvalidInput("removed_by must be customer or staff", details={"field": "removed_by"}) from exc
    edge = timeline.end_relationship(
        ctx.session,
        actor=ctx.actor,
        relationship_id=relationship_id,
        removed_by=removed_by,
        removed_at=body.removed_at,
        clock=ctx.clock,
    )
    return {"id": edge.id, "removed_at": edge.removed_at, "removed_by": edge.removed_by}


@router.post("/customers/merge", response_model=MergeRead, status_code=201)
def merge_customers(body: MergeRequest, ctx: Merger) -> MergeRead:
    return merge_read(
        merge.merge_by_request(
            ctx.session, actor=ctx.actor, survivor_id=body.survivor_id, merged_id=body.merged_id, clock=ctx.clock
        )
    )


@router.get("/customers/{customer_id}/merges", response_model=list[MergeRead])
def customer_merges(customer_id: IdPath, ctx: Reader) -> list[MergeRead]:
    return [merge_read(m) for m in merge.merges_of(ctx.session, actor=ctx.actor, customer_id=customer_id)]


@router.post("/merges/{merge_id}/undo", response_model=MergeRead)
def undo_merge(merge_id: IdPath, ctx: Merger) -> MergeRead:
    return merge_read(merge.undo_merge(ctx.session, actor=ctx.actor, merge_id=merge_id, clock=ctx.clock))


@router.get("/customers/{customer_id}/export")
def export_customer(customer_id: IdPath, ctx: Eraser) -> dict[str, Any]:
    """Everything held about one person (PIPL access request)."""
    return privacy.export_customer(ctx.session, actor=ctx.actor, customer_id=customer_id, clock=ctx.clock)


@router.post("/customers/{customer_id}/erase", status_code=204)
def erase_customer(customer_id: IdPath, ctx: Eraser) -> Response:
    """Erase one person's personal data (PIPL deletion request); aggregates stay."""
    privacy.erase_customer(ctx.session, actor=ctx.actor, customer_id=customer_id, clock=ctx.clock)
    return Response(status_code=204)


def _event_input(body: EventIn) -> timeline.EventInput:
    return timeline.EventInput(
        type=body.type,
        occurred_at=body.occurred_at,
        idempotency_key=body.idempotency_key,
        source=body.source,
        properties=body.properties,
        customer_id=body.customer_id,
        identity_type=body.identity.type if body.identity else None,
        identity_value=body.identity.value if body.identity else None,
    )


@router.post("/events", response_model=EventRead, status_code=201)
def ingest_event(body: EventIn, ctx: EventWriter, response: Response) -> EventRead:
    """Append one timeline event; a retry with the same idempotency key answers 200 with the first."""
    event, created = timeline.record_event(ctx.session, actor=ctx.actor, item=_event_input(body), clock=ctx.clock)
    if not created:
        response.status_code = 200
    return event_read(event)


@router.post("/events/batch")
def ingest_events(body: EventBatch, ctx: EventWriter) -> dict[str, Any]:
    """Append up to 1,000 events; each is created, a duplicate, or rejected with its index and reason."""
    outcomes = timeline.record_events(
        ctx.session, actor=ctx.actor, items=[_event_input(e) for e in body.events], clock=ctx.clock
    )
    return {
        "created": sum(o.status == "created" for o in outcomes),
        "duplicates": sum(o.status == "duplicate" for o in outcomes),
        "rejected": sum(o.status == "rejected" for o in outcomes),
        "results": [o.__dict__ for o in outcomes],
    }


@router.post("/tags/{tag_id}/bulk-assign")
def bulk_assign(tag_id: IdPath, body: CustomerFilterIn, ctx: Tagger) -> dict[str, int]:
    """Tag every customer the filter selects."""
    flt = CustomerFilter(**body.model_dump())
    return {"tagged": tags.bulk_tag(ctx.session, actor=ctx.actor, flt=flt, tag_id=tag_id, clock=ctx.clock)}


@router.post("/tags/{tag_id}/bulk-remove")
def bulk_remove(tag_id: IdPath, body: CustomerFilterIn, ctx: Tagger) -> dict[str, int]:
    flt = CustomerFilter(**body.model_dump())
    return {"untagged": tags.bulk_untag(ctx.session, actor=ctx.actor, flt=flt, tag_id=tag_id, clock=ctx.clock)}
