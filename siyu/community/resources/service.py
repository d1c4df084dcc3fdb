"""The resources library's rules: write, publish and archive resources; what a member sees; reads
and downloads counted once per member per brand-local day."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, defer

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.community.resources.errors import InvalidResource, ResourceNotFound, ResourceStateConflict
from siyu.community.resources.files import CheckedFile
from siyu.community.resources.schemas import ResourceIn, ResourcePatch
from siyu.kit.clock import Clock
from siyu.kit.sql import insert_or_ignore
from siyu.loyalty.member_tasks.periods import local_day
from siyu.loyalty.members import get_member
from siyu.loyalty.program import brand_zone
from siyu.loyalty.rewards.catalog import check_audience
from siyu.loyalty.rewards.service import audience_allows
from siyu.models.resource import Resource, ResourceKind, ResourceStatus, ResourceView

READ = "read"
DOWNLOAD = "download"
ACTIONS = (READ, DOWNLOAD)


def _fail(message: str, field: str) -> InvalidResource:
    return InvalidResource(message, details={"field": field})


def _title(text: str) -> str:
    title = text.strip()
    if not title:
        raise _fail("title is required", "title")
    return title


def snapshot(resource: Resource) -> dict[str, Any]:
    """What the audit log keeps of a resource (not the file's bytes)."""
    return {
        "kind": str(resource.kind),
        "title": resource.title,
        "summary": resource.summary,
        "body_chars": len(resource.body or ""),
        "file_name": resource.file_name,
        "file_type": resource.file_type,
        "file_size": resource.file_size,
        "visible_tier_ids": list(resource.visible_tier_ids or []),
        "visible_segment_id": resource.visible_segment_id,
        "status": str(resource.status),
        "is_pinned": resource.is_pinned,
    }


def _put_file(resource: Resource, file: CheckedFile) -> None:
    resource.file_name = file.name
    resource.file_type = file.content_type
    resource.file_data = file.data
    resource.file_size = file.size


def create_resource(
    session: Session, *, actor: Actor, data: ResourceIn, clock: Clock, file: CheckedFile | None = None
) -> Resource:
    """A new draft. A file resource may carry its upload now or later (`attach_file`)."""
    actor.require(Scope.COMMUNITY_WRITE)
    ws = actor.workspace_id
    tier_ids = check_audience(
        session, workspace_id=ws, tier_ids=data.visible_tier_ids, segment_id=data.visible_segment_id, fail=_fail
    )
    if file is not None and data.kind != ResourceKind.FILE:
        raise _fail("only a file resource carries a file", "file")
    now = clock.now()
    resource = Resource(
        workspace_id=ws,
        kind=data.kind,
        title=_title(data.title),
        summary=data.summary.strip(),
        body=data.body,
        visible_tier_ids=tier_ids,
        visible_segment_id=data.visible_segment_id,
        status=ResourceStatus.DRAFT,
        is_pinned=data.is_pinned,
        reads_count=0,
        downloads_count=0,
        created_at=now,
        updated_at=now,
    )
    if file is not None:
        _put_file(resource, file)
    session.add(resource)
    session.flush()
    record(
        session, actor, action="resource.create", entity_type="resource", entity_id=resource.id, clock=clock,
        after=snapshot(resource),
    )  # fmt: skip
    return resource


def get_resource(session: Session, *, workspace_id: int, resource_id: int, lock: bool = False) -> Resource:
    """One resource of the workspace, or `ResourceNotFound`."""
    statement = select(Resource).where(Resource.workspace_id == workspace_id, Resource.id == resource_id)
    resource = session.scalar(statement.with_for_update() if lock else statement)
    if resource is None:
        raise ResourceNotFound(f"resource {resource_id} not found", details={"resource_id": resource_id})
    return resource


def update_resource(
    session: Session,
    *,
    actor: Actor,
    resource_id: int,
    data: ResourcePatch,
    clock: Clock,
    file: CheckedFile | None = None,
) -> Resource:
    """Change the fields sent (and replace the file if one is given); any status may be edited."""
    actor.require(Scope.COMMUNITY_WRITE)
    resource = get_resource(session, workspace_id=actor.workspace_id, resource_id=resource_id, lock=True)
    before = snapshot(resource)
    sent = data.model_dump(exclude_unset=True)
    tier_ids = sent.get("visible_tier_ids", resource.visible_tier_ids) or []
    segment_id = sent.get("visible_segment_id", resource.visible_segment_id)
    resource.visible_tier_ids = check_audience(
        session, workspace_id=actor.workspace_id, tier_ids=[int(t) for t in tier_ids], segment_id=segment_id, fail=_fail
    )
    resource.visible_segment_id = segment_id
    if data.title is not None:
        resource.title = _title(data.title)
    if data.summary is not None:
        resource.summary = data.summary.strip()
    if data.body is not None:
        resource.body = data.body
    if data.is_pinned is not None:
        resource.is_pinned = data.is_pinned
    if file is not None:
        if resource.kind != ResourceKind.FILE:
            raise _fail("only a file resource carries a file", "file")
        _put_file(resource, file)
    resource.updated_at = clock.now()
    session.flush()
    record(
        session, actor, action="resource.update", entity_type="resource", entity_id=resource.id, clock=clock,
        before=before, after=snapshot(resource),
    )  # fmt: skip
    return resource


def attach_file(session: Session, *, actor: Actor, resource_id: int, file: CheckedFile, clock: Clock) -> Resource:
    """Put (or replace) the upload of a file resource."""
    return update_resource(session, actor=actor, resource_id=resource_id, data=ResourcePatch(), clock=clock, file=file)


def _set_status(session: Session, *, actor: Actor, resource_id: int, status: ResourceStatus, clock: Clock) -> Resource:
    actor.require(Scope.COMMUNITY_WRITE)
    resource = get_resource(session, workspace_id=actor.workspace_id, resource_id=resource_id, lock=True)
    if resource.status == status:
        return resource
    if status == ResourceStatus.PUBLISHED and resource.kind == ResourceKind.FILE and resource.file_data is None:
        raise ResourceStateConflict("upload the file before publishing", details={"field": "file"})
    before = snapshot(resource)
    now = clock.now()
    resource.status = status
    if status == ResourceStatus.PUBLISHED and resource.published_at is None:
        resource.published_at = now
    resource.updated_at = now
    session.flush()
    record(
        session, actor, action=f"resource.{status}", entity_type="resource", entity_id=resource.id, clock=clock,
        before=before, after=snapshot(resource),
    )  # fmt: skip
    return resource


def publish(session: Session, *, actor: Actor, resource_id: int, clock: Clock) -> Resource:
    """Draft (or archived) → published: members allowed to see it find it. Publishing twice changes nothing."""
    return _set_status(session, actor=actor, resource_id=resource_id, status=ResourceStatus.PUBLISHED, clock=clock)


def archive(session: Session, *, actor: Actor, resource_id: int, clock: Clock) -> Resource:
    """→ archived: gone from the members' library (its counts stay)."""
    return _set_status(session, actor=actor, resource_id=resource_id, status=ResourceStatus.ARCHIVED, clock=clock)


@dataclass(frozen=True)
class ResourceStats:
    """A resource as the console lists it, with its unique readers."""

    resource: Resource
    unique_readers: int


def list_resources(
    session: Session, *, workspace_id: int, status: ResourceStatus | None = None, kind: ResourceKind | None = None
) -> list[ResourceStats]:
    """The workspace's resources, pinned then newest first, with reads, downloads and unique readers."""
    # Lists never hold the files' bytes (up to 10 MB each) in memory.
    statement = select(Resource).options(defer(Resource.file_data)).where(Resource.workspace_id == workspace_id)
    if status is not None:
        statement = statement.where(Resource.status == status)
    if kind is not None:
        statement = statement.where(Resource.kind == kind)
    rows = list(
        session.scalars(statement.order_by(Resource.is_pinned.desc(), Resource.updated_at.desc(), Resource.id.desc()))
    )
    readers = _unique_readers(session, workspace_id, [r.id for r in rows])
    return [ResourceStats(resource=r, unique_readers=readers.get(r.id, 0)) for r in rows]


def _unique_readers(session: Session, workspace_id: int, resource_ids: list[int]) -> dict[int, int]:
    if not resource_ids:
        return {}
    rows = session.execute(
        select(ResourceView.resource_id, func.count(func.distinct(ResourceView.customer_id)))
        .where(
            ResourceView.workspace_id == workspace_id,
            ResourceView.resource_id.in_(resource_ids),
            ResourceView.action == READ,
        )
        .group_by(ResourceView.resource_id)
    ).all()
    return {resource_id: int(count) for resource_id, count in rows}


def unique_readers(session: Session, *, workspace_id: int, resource_id: int) -> int:
    """How many different members read the resource (any day)."""
    return _unique_readers(session, workspace_id, [resource_id]).get(resource_id, 0)


# --- members ---------------------------------------------------------------------------------


def can_see(session: Session, *, resource: Resource, customer_id: int, clock: Clock) -> bool:
    """Published, and the member passes its tier/segment visibility — the rewards mall's rule
    (`siyu.loyalty.rewards.service.audience_allows`), reused so both read the same."""
    if resource.status != ResourceStatus.PUBLISHED:
        return False
    return audience_allows(
        session,
        workspace_id=resource.workspace_id,
        tier_ids=resource.visible_tier_ids,
        segment_id=resource.visible_segment_id,
        customer_id=customer_id,
        member=get_member(session, resource.workspace_id, customer_id),
        clock=clock,
    )


def visible_resources(
    session: Session, *, workspace_id: int, customer_id: int, clock: Clock, kind: ResourceKind | None = None
) -> list[Resource]:
    """What the member's library shows: published and visible to them, pinned first, then newest.
    The member is read once and each segment asked once."""
    statement = (
        select(Resource)
        .options(defer(Resource.file_data))
        .where(Resource.workspace_id == workspace_id, Resource.status == ResourceStatus.PUBLISHED)
    )
    if kind is not None:
        statement = statement.where(Resource.kind == kind)
    statement = statement.order_by(Resource.is_pinned.desc(), Resource.published_at.desc(), Resource.id.desc())
    member = get_member(session, workspace_id, customer_id)
    in_segment: dict[int, bool] = {}

    def allowed(tier_ids: list[Any] | None, segment_id: int | None) -> bool:
        return audience_allows(
            session,
            workspace_id=workspace_id,
            tier_ids=tier_ids,
            segment_id=segment_id,
            customer_id=customer_id,
            member=member,
            clock=clock,
        )

    visible = []
    for resource in session.scalars(statement):
        if not allowed(resource.visible_tier_ids, None):
            continue
        if (segment_id := resource.visible_segment_id) is not None:
            if segment_id not in in_segment:
                in_segment[segment_id] = allowed(None, segment_id)
            if not in_segment[segment_id]:
                continue
        visible.append(resource)
    return visible


def member_resource(
    session: Session, *, workspace_id: int, customer_id: int, resource_id: int, clock: Clock
) -> Resource:
    """One resource the member may see; anything else (draft, archived, not for their tier or
    segment, another brand's) is the same `ResourceNotFound`, so nothing about it leaks."""
    statement = select(Resource).options(defer(Resource.file_data))  # loaded on access (downloads)
    resource = session.scalar(statement.where(Resource.workspace_id == workspace_id, Resource.id == resource_id))
    if resource is None or not can_see(session, resource=resource, customer_id=customer_id, clock=clock):
        raise ResourceNotFound(f"resource {resource_id} not found", details={"resource_id": resource_id})
    return resource


def record_view(session: Session, *, resource: Resource, customer_id: int, action: str, clock: Clock) -> bool:
    """Count a read or a download once per member per brand-local day; True if this one counted.

    The unique (resource, customer, action, day) row decides, so two taps at once count once.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    now = clock.now()
    day_key = local_day(now, brand_zone(session, resource.workspace_id)).isoformat()
    values = {
        "workspace_id": resource.workspace_id,
        "resource_id": resource.id,
        "customer_id": customer_id,
        "action": action,
        "day_key": day_key,
        "occurred_at": now,
    }
    if not insert_or_ignore(session, ResourceView, values, ("resource_id", "customer_id", "action", "day_key")):
        return False
    column = Resource.reads_count if action == READ else Resource.downloads_count
    session.execute(
        update(Resource).where(Resource.id == resource.id).values({column: column + 1}),
        execution_options={"synchronize_session": False},
    )
    session.expire(resource, ["reads_count", "downloads_count"])
    return True
