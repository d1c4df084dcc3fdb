"""HTTP API for regions, stores and staff."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import Field

from siyu.auth.permissions import Scope
from siyu.kit.ids import DbId
from siyu.kit.schemas import Input
from siyu.org import service
from siyu.web.deps import Ctx, require

router = APIRouter(prefix="/api/v1", tags=["organisation"])
Reader = Annotated[Ctx, Depends(require(Scope.CUSTOMERS_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.ORG_WRITE))]


class RegionIn(Input):
    name: str = Field(min_length=1, max_length=100)


class StoreIn(Input):
    code: str = Field(min_length=1, max_length=50)
    name: str = Field(min_length=1, max_length=200)
    region_id: DbId | None = None
    city: str | None = Field(default=None, max_length=50)


class StaffIn(Input):
    name: str = Field(min_length=1, max_length=100)
    store_id: DbId | None = None
    wecom_user_id: str | None = Field(default=None, max_length=64)


@router.post("/regions", status_code=201)
def create_region(body: RegionIn, ctx: Writer) -> dict[str, Any]:
    region = service.create_region(ctx.session, actor=ctx.actor, name=body.name, clock=ctx.clock)
    return {"id": region.id, "name": region.name}


@router.get("/stores")
def stores(ctx: Reader) -> list[dict[str, Any]]:
    return [
        {"id": s.id, "code": s.code, "name": s.name, "region_id": s.region_id, "city": s.city}
        for s in service.list_stores(ctx.session, workspace_id=ctx.actor.workspace_id)
    ]


@router.post("/stores", status_code=201)
def create_store(body: StoreIn, ctx: Writer) -> dict[str, Any]:
    store = service.create_store(
        ctx.session,
        actor=ctx.actor,
        code=body.code,
        name=body.name,
        region_id=body.region_id,
        city=body.city,
        clock=ctx.clock,
    )
    return {"id": store.id, "code": store.code, "name": store.name}


@router.get("/staff")
def staff(ctx: Reader) -> list[dict[str, Any]]:
    return [
        {"id": s.id, "name": s.name, "store_id": s.store_id, "wecom_user_id": s.wecom_user_id, "is_active": s.is_active}
        for s in service.list_staff(ctx.session, workspace_id=ctx.actor.workspace_id)
    ]


@router.post("/staff", status_code=201)
def create_staff(body: StaffIn, ctx: Writer) -> dict[str, Any]:
    member = service.create_staff(
        ctx.session,
        actor=ctx.actor,
        name=body.name,
        store_id=body.store_id,
        wecom_user_id=body.wecom_user_id,
        clock=ctx.clock,
    )
    return {"id": member.id, "name": member.name, "store_id": member.store_id}
