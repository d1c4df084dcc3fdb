"""Regions, stores and staff of a workspace."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput
from siyu.models import Region, Staff, Store


def _check_in_workspace(session: Session, model: Any, row_id: int | None, workspace_id: int, field: str) -> None:
    if (
        row_id is not None
        and session.scalar(select(model.id).where(model.id == row_id, model.workspace_id == workspace_id)) is None
    ):
        raise InvalidInput(f"unknown {field.removesuffix('_id')}", details={"field": field})


def create_region(session: Session, *, actor: Actor, name: str, clock: Clock) -> Region:
    actor.require(Scope.ORG_WRITE)
    if not name.strip():
        raise InvalidInput("name is required", details={"field": "name"})
    if (
        session.scalar(select(Region.id).where(Region.workspace_id == actor.workspace_id, Region.name == name))
        is not None
    ):
        raise Conflict("region exists", details={"field": "name"})
    region = Region(workspace_id=actor.workspace_id, name=name.strip())
    session.add(region)
    session.flush()
    record(
        session,
        actor,
        action="create",
        entity_type="region",
        entity_id=region.id,
        after={"name": region.name},
        clock=clock,
    )
    return region


def create_store(
    session: Session,
    *,
    actor: Actor,
    code: str,
    name: str,
    clock: Clock,
    region_id: int | None = None,
    city: str | None = None,
) -> Store:
    actor.require(Scope.ORG_WRITE)
    _check_in_workspace(session, Region, region_id, actor.workspace_id, "region_id")
    if not code.strip():
        raise InvalidInput("code is required", details={"field": "code"})
    if session.scalar(select(Store.id).where(Store.workspace_id == actor.workspace_id, Store.code == code)) is not None:
        raise Conflict("store code exists", details={"field": "code"})
    store = Store(workspace_id=actor.workspace_id, code=code.strip(), name=name.strip(), region_id=region_id, city=city)
    session.add(store)
    session.flush()
    record(
        session,
        actor,
        action="create",
        entity_type="store",
        entity_id=store.id,
        after={"code": store.code, "name": store.name},
        clock=clock,
    )
    return store


def create_staff(
    session: Session,
    *,
    actor: Actor,
    name: str,
    clock: Clock,
    store_id: int | None = None,
    wecom_user_id: str | None = None,
) -> Staff:
    actor.require(Scope.ORG_WRITE)
    _check_in_workspace(session, Store, store_id, actor.workspace_id, "store_id")
    if not name.strip():
        raise InvalidInput("name is required", details={"field": "name"})
    if (
        wecom_user_id
        and session.scalar(
            select(Staff.id).where(Staff.workspace_id == actor.workspace_id, Staff.wecom_user_id == wecom_user_id)
        )
        is not None
    ):
        raise Conflict("WeCom user id already used", details={"field": "wecom_user_id"})
    staff = Staff(
        workspace_id=actor.workspace_id,
        name=name.strip(),
        store_id=store_id,
        wecom_user_id=wecom_user_id,
        created_at=clock.now(),
    )
    session.add(staff)
    session.flush()
    record(
        session,
        actor,
        action="create",
        entity_type="staff",
        entity_id=staff.id,
        after={"name": staff.name, "store_id": store_id, "wecom_user_id": wecom_user_id},
        clock=clock,
    )
    return staff


def list_staff(session: Session, *, workspace_id: int) -> Sequence[Staff]:
    return session.scalars(select(Staff).where(Staff.workspace_id == workspace_id).order_by(Staff.name)).all()


def list_stores(session: Session, *, workspace_id: int) -> Sequence[Store]:
    return session.scalars(select(Store).where(Store.workspace_id == workspace_id).order_by(Store.code)).all()
