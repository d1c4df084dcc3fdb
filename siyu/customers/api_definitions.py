"""HTTP API for the pool's vocabulary: tag groups and tags, custom attributes, identity types."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import Field

from siyu.auth.permissions import Scope
from siyu.customers.identities import BUILTIN_TYPES
from siyu.customers.service import definitions, tags
from siyu.kit.ids import DbId
from siyu.kit.schemas import Input
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["tags & definitions"])

Reader = Annotated[Ctx, Depends(require(Scope.CUSTOMERS_READ))]
Tagger = Annotated[Ctx, Depends(require(Scope.TAGS_MANAGE))]
Writer = Annotated[Ctx, Depends(require(Scope.CUSTOMERS_WRITE))]


class TagGroupIn(Input):
    name: str = Field(min_length=1, max_length=100)
    sort_order: int = 0


class TagIn(Input):
    group_id: DbId
    name: str = Field(min_length=1, max_length=100)
    color: str | None = Field(default=None, max_length=20)


class AttributeIn(Input):
    key: str = Field(min_length=2, max_length=40)
    label: str = Field(default="", max_length=100)
    type: str


class IdentityTypeIn(Input):
    key: str = Field(min_length=2, max_length=40)
    label: str = Field(default="", max_length=100)


@router.get("/tag-groups")
def list_tag_groups(ctx: Reader) -> list[dict[str, Any]]:
    """Every tag group with its tags and how many customers carry each."""
    return [
        {
            "id": g.id,
            "name": g.name,
            "sort_order": g.sort_order,
            "tags": [{"id": t.id, "name": t.name, "color": t.color, "customers": n} for t, n in items],
        }
        for g, items in tags.list_groups(ctx.session, ctx.actor.workspace_id)
    ]


@router.post("/tag-groups", status_code=201)
def create_tag_group(body: TagGroupIn, ctx: Tagger) -> dict[str, Any]:
    group = tags.create_group(ctx.session, actor=ctx.actor, name=body.name, sort_order=body.sort_order, clock=ctx.clock)
    return {"id": group.id, "name": group.name}


@router.post("/tags", status_code=201)
def create_tag(body: TagIn, ctx: Tagger) -> dict[str, Any]:
    tag = tags.create_tag(
        ctx.session, actor=ctx.actor, group_id=body.group_id, name=body.name, color=body.color, clock=ctx.clock
    )
    return {"id": tag.id, "name": tag.name, "group_id": tag.group_id}


@router.delete("/tags/{tag_id}", status_code=204)
def delete_tag(tag_id: IdPath, ctx: Tagger) -> Response:
    tags.delete_tag(ctx.session, actor=ctx.actor, tag_id=tag_id, clock=ctx.clock)
    return Response(status_code=204)


@router.get("/attribute-definitions")
def list_attributes(ctx: Reader) -> list[dict[str, Any]]:
    return [
        {"key": d.key, "label": d.label, "type": d.type}
        for d in definitions.attribute_definitions(ctx.session, ctx.actor.workspace_id).values()
    ]


@router.post("/attribute-definitions", status_code=201)
def create_attribute(body: AttributeIn, ctx: Writer) -> dict[str, Any]:
    d = definitions.define_attribute(
        ctx.session, actor=ctx.actor, key=body.key, label=body.label, type_=body.type, clock=ctx.clock
    )
    return {"key": d.key, "label": d.label, "type": d.type}


@router.get("/identity-types")
def list_identity_types(ctx: Reader) -> list[dict[str, Any]]:
    known = definitions.identity_types(ctx.session, ctx.actor.workspace_id)
    return [{"key": key, "builtin": key in BUILTIN_TYPES} for key in sorted(known)]


@router.post("/identity-types", status_code=201)
def create_identity_type(body: IdentityTypeIn, ctx: Writer) -> dict[str, Any]:
    d = definitions.define_identity_type(ctx.session, actor=ctx.actor, key=body.key, label=body.label, clock=ctx.clock)
    return {"key": d.key, "label": d.label}
