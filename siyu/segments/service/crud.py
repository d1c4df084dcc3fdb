"""Creating, changing, listing and archiving segments; every definition change is a new version."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.models import Segment, SegmentKind, SegmentVersion
from siyu.segments.errors import NotDynamic, SegmentNameTaken, SegmentNotFound
from siyu.segments.service.tracking import stop_tracking
from siyu.segments.validation import refuse_pii_conditions, validate_definition

MAX_NAME = 100
MAX_DESCRIPTION = 500


@dataclass(frozen=True)
class SegmentInput:
    """What an operator gives for a dynamic segment."""

    name: str
    definition: dict[str, Any]
    description: str | None = None
    is_tracked: bool = False


@dataclass(frozen=True)
class SegmentChanges:
    """A partial change; None leaves a value as it is."""

    name: str | None = None
    description: str | None = None
    definition: dict[str, Any] | None = None
    is_tracked: bool | None = None


def get_segment(session: Session, actor: Actor, segment_id: int, *, for_update: bool = False) -> Segment:
    """A segment of the actor's workspace, or `SegmentNotFound`."""
    actor.require(Scope.SEGMENTS_READ)
    query = select(Segment).where(Segment.id == segment_id, Segment.workspace_id == actor.workspace_id)
    if for_update:
        query = query.with_for_update()
    segment = session.scalar(query)
    if segment is None:
        raise SegmentNotFound(f"segment {segment_id} not found")
    return segment


def list_segments(session: Session, actor: Actor, *, include_archived: bool = False) -> Sequence[Segment]:
    """The workspace's segments, newest first."""
    actor.require(Scope.SEGMENTS_READ)
    query = select(Segment).where(Segment.workspace_id == actor.workspace_id)
    if not include_archived:
        query = query.where(Segment.archived_at.is_(None))
    return session.scalars(query.order_by(Segment.id.desc())).all()


def clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"name must be 1–{MAX_NAME} characters", details={"field": "name"})
    return name


def clean_description(description: str | None) -> str | None:
    description = (description or "").strip() or None
    if description and len(description) > MAX_DESCRIPTION:
        message = f"description must be at most {MAX_DESCRIPTION} characters"
        raise InvalidInput(message, details={"field": "description"})
    return description


def ensure_name_free(session: Session, workspace_id: int, name: str, *, except_id: int | None = None) -> None:
    query = select(Segment.id).where(Segment.workspace_id == workspace_id, Segment.name == name)
    if except_id is not None:
        query = query.where(Segment.id != except_id)
    if session.scalar(query) is not None:
        raise SegmentNameTaken(f"a segment named {name!r} exists", details={"field": "name"})


def create_segment(session: Session, *, actor: Actor, data: SegmentInput, clock: Clock) -> Segment:
    """Save a dynamic segment (version 1) after checking its definition against the workspace."""
    actor.require(Scope.SEGMENTS_WRITE)
    name = clean_name(data.name)
    description = clean_description(data.description)
    node = validate_definition(session, workspace_id=actor.workspace_id, raw=data.definition)
    refuse_pii_conditions(node, actor)
    ensure_name_free(session, actor.workspace_id, name)
    now = clock.now()
    segment = Segment(
        workspace_id=actor.workspace_id,
        name=name,
        description=description,
        kind=SegmentKind.DYNAMIC,
        definition=data.definition,
        version=1,
        is_tracked=data.is_tracked,
        created_by=actor.label,
        created_at=now,
        updated_at=now,
    )
    session.add(segment)
    session.flush()
    _add_version(session, segment, actor, clock)
    record(
        session, actor, action="create", entity_type="segment", entity_id=segment.id, after=_audit(segment), clock=clock
    )
    if segment.is_tracked:
        _queue_refresh(session, actor, segment, clock)
    return segment


def update_segment(
    session: Session, *, actor: Actor, segment_id: int, changes: SegmentChanges, clock: Clock
) -> Segment:
    """Rename, describe, redefine (a new version) or start/stop tracking a segment."""
    actor.require(Scope.SEGMENTS_WRITE)
    segment = get_segment(session, actor, segment_id, for_update=True)
    before = _audit(segment)
    if changes.name is not None:
        name = clean_name(changes.name)
        ensure_name_free(session, actor.workspace_id, name, except_id=segment.id)
        segment.name = name
    if changes.description is not None:
        segment.description = clean_description(changes.description)
    redefined = changes.definition is not None and changes.definition != segment.definition
    if changes.definition is not None and segment.kind != SegmentKind.DYNAMIC:
        raise NotDynamic(
            "a static segment's members are fixed; snapshot a dynamic segment instead", details={"field": "definition"}
        )
    if redefined:
        assert changes.definition is not None
        node = validate_definition(
            session, workspace_id=actor.workspace_id, raw=changes.definition, segment_id=segment.id
        )
        refuse_pii_conditions(node, actor)
        segment.definition = changes.definition
        segment.version += 1
        _add_version(session, segment, actor, clock)
    start_tracking = changes.is_tracked is True and not segment.is_tracked
    if changes.is_tracked is not None:
        if changes.is_tracked and segment.kind != SegmentKind.DYNAMIC:
            raise NotDynamic("only dynamic segments can be tracked", details={"field": "is_tracked"})
        if changes.is_tracked and segment.archived_at is not None:
            raise InvalidInput("an archived segment cannot be tracked", details={"field": "is_tracked"})
        if not changes.is_tracked and segment.is_tracked:
            stop_tracking(session, segment)
        segment.is_tracked = changes.is_tracked
    segment.updated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action="update",
        entity_type="segment",
        entity_id=segment.id,
        before=before,
        after=_audit(segment),
        clock=clock,
    )
    if segment.is_tracked and (start_tracking or redefined):
        _queue_refresh(session, actor, segment, clock)
    return segment


def archive_segment(session: Session, *, actor: Actor, segment_id: int, clock: Clock) -> Segment:
    """Hide a segment from lists and pickers; references and history keep working. Tracking stops."""
    actor.require(Scope.SEGMENTS_WRITE)
    segment = get_segment(session, actor, segment_id, for_update=True)
    if segment.archived_at is None:
        if segment.is_tracked:
            stop_tracking(session, segment)
            segment.is_tracked = False
        segment.archived_at = clock.now()
        segment.updated_at = clock.now()
        record(session, actor, action="archive", entity_type="segment", entity_id=segment.id, clock=clock)
    return segment


def versions_of(session: Session, actor: Actor, segment_id: int) -> Sequence[SegmentVersion]:
    """Every saved definition of a segment, newest first."""
    get_segment(session, actor, segment_id)
    return session.scalars(
        select(SegmentVersion).where(SegmentVersion.segment_id == segment_id).order_by(SegmentVersion.version.desc())
    ).all()


def _add_version(session: Session, segment: Segment, actor: Actor, clock: Clock) -> None:
    assert segment.definition is not None
    session.add(
        SegmentVersion(
            workspace_id=segment.workspace_id,
            segment_id=segment.id,
            version=segment.version,
            definition=segment.definition,
            created_by=actor.label,
            created_at=clock.now(),
        )
    )


def _audit(segment: Segment) -> dict[str, Any]:
    return {
        "name": segment.name,
        "kind": str(segment.kind),
        "version": segment.version,
        "is_tracked": segment.is_tracked,
        "definition": segment.definition,
    }


def _queue_refresh(session: Session, actor: Actor, segment: Segment, clock: Clock) -> None:
    """Compute a newly tracked (or redefined) segment's members in the background, after commit."""
    from siyu.segments.tasks import queue_segment_refresh

    queue_segment_refresh(
        session, workspace_id=actor.workspace_id, segment_id=segment.id, clock=clock, created_by=actor.label
    )
