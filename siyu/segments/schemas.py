"""API shapes of the segments area."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from siyu.kit.ids import MAX_ID
from siyu.kit.schemas import Input
from siyu.models import Segment


class SegmentIn(Input):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    definition: Any = Field(description="The definition tree; see GET /api/v1/segments/schema.")
    is_tracked: bool = False


class SegmentPatch(Input):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    definition: Any = None
    is_tracked: bool | None = None


class PreviewIn(Input):
    model_config = ConfigDict(extra="forbid")

    definition: Any
    segment_id: int | None = Field(
        default=None, gt=0, le=MAX_ID, description="The segment being edited (for the cycle check)."
    )


class SnapshotIn(Input):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=2000)


class SegmentRead(BaseModel):
    id: int
    name: str
    description: str | None
    kind: str
    definition: dict[str, Any] | None
    version: int
    is_tracked: bool
    member_count: int | None
    counted_at: datetime | None
    refreshed_at: datetime | None
    source: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


class SegmentVersionRead(BaseModel):
    version: int
    definition: dict[str, Any]
    created_by: str | None
    created_at: datetime


class SampleMember(BaseModel):
    id: int
    name: str | None


class PreviewRead(BaseModel):
    count: int
    node_counts: dict[str, int]
    sample: list[SampleMember]
    sql: str
    elapsed_ms: float


class CountRead(BaseModel):
    segment_id: int
    count: int


class MembershipEventRead(BaseModel):
    customer_id: int
    change: str
    trigger: str
    occurred_at: datetime


class MembershipEventPage(BaseModel):
    items: list[MembershipEventRead]
    next_cursor: str | None


class SizePointRead(BaseModel):
    day: str
    size: int


class UploadRead(BaseModel):
    segment: SegmentRead
    report: dict[str, Any]


def segment_read(segment: Segment) -> SegmentRead:
    return SegmentRead(
        id=segment.id,
        name=segment.name,
        description=segment.description,
        kind=str(segment.kind),
        definition=segment.definition,
        version=segment.version,
        is_tracked=segment.is_tracked,
        member_count=segment.member_count,
        counted_at=segment.counted_at,
        refreshed_at=segment.refreshed_at,
        source=segment.source,
        created_by=segment.created_by,
        created_at=segment.created_at,
        updated_at=segment.updated_at,
        archived_at=segment.archived_at,
    )
