"""Request shapes of the resources library (API and console share them)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from siyu.kit.ids import DbId
from siyu.kit.schemas import Input
from siyu.models.resource import ResourceKind

MAX_BODY = 20_000


class ResourceIn(Input):
    """A resource as the operator writes it; references are checked by `service.validate_resource`."""

    kind: ResourceKind
    title: Annotated[str, Field(min_length=1, max_length=120)]
    summary: Annotated[str, Field(max_length=300)] = ""
    body: Annotated[str, Field(max_length=MAX_BODY)] = ""
    """Plain text; line breaks are kept, HTML is shown as text."""
    visible_tier_ids: Annotated[list[DbId], Field(max_length=50)] = Field(default_factory=list)
    visible_segment_id: DbId | None = None
    is_pinned: bool = False


class ResourcePatch(Input):
    """Only the fields sent change (the kind is fixed once created)."""

    title: Annotated[str | None, Field(min_length=1, max_length=120)] = None
    summary: Annotated[str | None, Field(max_length=300)] = None
    body: Annotated[str | None, Field(max_length=MAX_BODY)] = None
    visible_tier_ids: Annotated[list[DbId] | None, Field(max_length=50)] = None
    visible_segment_id: DbId | None = None
    is_pinned: bool | None = None
