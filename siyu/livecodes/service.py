"""Live codes and the groups they route to: create, change, delete, list.

Routes keep their ids across edits (their daily cap counters live on them), so an edit that
re-lists a route keeps today's count and cannot be used to reset a cap.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.livecodes.errors import LiveCodeNotFound
from siyu.livecodes.scan import snapshots
from siyu.livecodes.schedule import validate_schedule
from siyu.livecodes.schemas import LiveCodeIn, RouteIn
from siyu.livecodes.state import VARIANT_KEY
from siyu.livecodes.welcome import check_template
from siyu.models import (
    Channel,
    CommunityGroup,
    Experiment,
    ExperimentVariant,
    LiveCode,
    LiveCodeKind,
    LiveCodeRoute,
    LiveCodeTag,
    Staff,
    Store,
    Tag,
)

SLUG_ALPHABET = string.ascii_letters + string.digits
SLUG_LENGTH = 8  # 62^8 ≈ 2·10^14: printed codes cannot be enumerated


def new_slug() -> str:
    return "".join(secrets.choice(SLUG_ALPHABET) for _ in range(SLUG_LENGTH))


def in_workspace(session: Session, model: Any, row_id: int | None, workspace_id: int, field: str) -> Any:
    if row_id is None:
        return None
    row = session.scalar(select(model).where(model.id == row_id, model.workspace_id == workspace_id))
    if row is None:
        raise InvalidInput(f"unknown {field.removesuffix('_id')} {row_id}", details={"field": field})
    return row


def get_live_code(session: Session, workspace_id: int, code_id: int, *, include_deleted: bool = False) -> LiveCode:
    code = session.scalar(select(LiveCode).where(LiveCode.id == code_id, LiveCode.workspace_id == workspace_id))
    if code is None or (code.deleted_at is not None and not include_deleted):
        raise LiveCodeNotFound("live code not found")
    return code


def routes_of(session: Session, code_id: int) -> list[LiveCodeRoute]:
    return list(
        session.scalars(
            select(LiveCodeRoute)
            .where(LiveCodeRoute.live_code_id == code_id)
            .order_by(LiveCodeRoute.position, LiveCodeRoute.id)
        )
    )


def tag_ids_of(session: Session, code_id: int) -> list[int]:
    return list(session.scalars(select(LiveCodeTag.tag_id).where(LiveCodeTag.live_code_id == code_id)))


def _validate(session: Session, actor: Actor, data: LiveCodeIn) -> list[dict[str, Any]]:
    ws = actor.workspace_id
    in_workspace(session, Channel, data.channel_id, ws, "channel_id")
    store = in_workspace(session, Store, data.store_id, ws, "store_id")
    if store is not None and data.kind != LiveCodeKind.STORE:
        raise InvalidInput("only store codes are bound to a store", details={"field": "store_id"})
    if data.experiment_id is not None:
        in_workspace(session, Experiment, data.experiment_id, ws, "experiment_id")
        keys = session.scalars(
            select(ExperimentVariant.key).where(ExperimentVariant.experiment_id == data.experiment_id)
        )
        if bad := [k for k in keys if not VARIANT_KEY.match(k)]:
            raise InvalidInput(
                f"variant keys {bad} cannot travel in a WeCom state (1-8 letters or digits)",
                details={"field": "experiment_id"},
            )
    for index, tag_id in enumerate(data.tag_ids):
        in_workspace(session, Tag, tag_id, ws, f"tag_ids[{index}]")
    check_template(data.welcome.text)
    schedule = validate_schedule(data.schedule)
    _validate_routes(session, actor, data, store)
    return schedule


def _validate_routes(session: Session, actor: Actor, data: LiveCodeIn, store: Store | None) -> None:
    if not data.routes:
        raise InvalidInput("a live code needs at least one route", details={"field": "routes"})
    seen: set[tuple[str, int]] = set()
    for index, route in enumerate(data.routes):
        field = f"routes[{index}]"
        if route.daily_cap is not None and route.daily_cap <= 0:
            raise InvalidInput(
                "daily cap must be at least 1 (leave it empty for no cap, or deactivate the route)",
                details={"field": f"{field}.daily_cap"},
            )
        if data.kind == LiveCodeKind.GROUP:
            if route.group_id is None or route.staff_id is not None:
                raise InvalidInput("group code routes point to a group", details={"field": f"{field}.group_id"})
            in_workspace(session, CommunityGroup, route.group_id, actor.workspace_id, f"{field}.group_id")
            key = ("group", route.group_id)
        else:
            if route.staff_id is None or route.group_id is not None:
                raise InvalidInput("routes point to a staff member", details={"field": f"{field}.staff_id"})
            staff = in_workspace(session, Staff, route.staff_id, actor.workspace_id, f"{field}.staff_id")
            if store is not None and staff.store_id != store.id:
                raise InvalidInput(
                    f"staff {staff.name} does not work at store {store.name}", details={"field": f"{field}.staff_id"}
                )
            key = ("staff", route.staff_id)
        if key in seen:
            raise InvalidInput("the same destination is listed twice", details={"field": field})
        seen.add(key)
    if not any(r.is_active and not r.is_backup for r in data.routes):
        raise InvalidInput("at least one active route must not be a backup", details={"field": "routes"})


def _apply(session: Session, actor: Actor, code: LiveCode, data: LiveCodeIn, schedule: list[dict[str, Any]]) -> None:
    code.name = data.name.strip()
    code.channel_id = data.channel_id
    code.store_id = data.store_id
    code.experiment_id = data.experiment_id
    code.rotation = data.rotation
    code.is_sticky = data.is_sticky
    code.schedule = schedule
    code.welcome = data.welcome.model_dump(exclude_none=True)
    code.group_warn_percent = data.group_warn_percent
    code.expires_at = data.expires_at
    session.flush()
    _replace_routes(session, actor, code, data.routes)
    session.execute(delete(LiveCodeTag).where(LiveCodeTag.live_code_id == code.id))
    for tag_id in dict.fromkeys(data.tag_ids):
        session.add(LiveCodeTag(workspace_id=actor.workspace_id, live_code_id=code.id, tag_id=tag_id))
    session.flush()


def _replace_routes(session: Session, actor: Actor, code: LiveCode, routes: Sequence[RouteIn]) -> None:
    existing = {route.id: route for route in routes_of(session, code.id)}
    kept: set[int] = set()
    for position, item in enumerate(routes):
        if item.id is not None:
            row = existing.get(item.id)
            if row is None:
                raise InvalidInput(
                    f"route {item.id} is not a route of this code", details={"field": f"routes[{position}].id"}
                )
            kept.add(row.id)
        else:
            row = LiveCodeRoute(workspace_id=actor.workspace_id, live_code_id=code.id)
            session.add(row)
        row.staff_id, row.group_id = item.staff_id, item.group_id
        row.position, row.weight, row.daily_cap = position, item.weight, item.daily_cap
        row.shift, row.is_backup, row.is_active = item.shift, item.is_backup, item.is_active
        row.contact_qr_url = item.contact_qr_url
    from siyu.integrations.wecom.contactways.service import retire_route_ways  # WeCom ways outlive routes

    retire_route_ways(session, workspace_id=code.workspace_id, route_ids=[r for r in existing if r not in kept])
    for route_id, row in existing.items():
        if route_id not in kept:
            session.delete(row)
    session.flush()


def _queue_wecom_push(session: Session, code: LiveCode, clock: Clock) -> None:
    """Push the code's WeCom contact ways once this transaction commits (a no-op without WeCom)."""
    from siyu.integrations.wecom.contactways.tasks import queue_code_push  # the integration depends on codes

    queue_code_push(session, workspace_id=code.workspace_id, live_code_id=code.id, clock=clock)


def _snapshot(session: Session, code: LiveCode) -> dict[str, Any]:
    return {
        "name": code.name,
        "kind": str(code.kind),
        "channel_id": code.channel_id,
        "rotation": str(code.rotation),
        "routes": [
            {
                "staff_id": r.staff_id,
                "group_id": r.group_id,
                "weight": r.weight,
                "daily_cap": r.daily_cap,
                "shift": str(r.shift),
                "is_backup": r.is_backup,
                "is_active": r.is_active,
            }
            for r in routes_of(session, code.id)
        ],
    }


def create_live_code(session: Session, *, actor: Actor, data: LiveCodeIn, clock: Clock) -> LiveCode:
    """A new live code with its routes, tags and welcome message; its URL is `/q/{slug}`."""
    actor.require(Scope.ACQUISITION_WRITE)
    schedule = _validate(session, actor, data)
    code = LiveCode(workspace_id=actor.workspace_id, slug=new_slug(), kind=data.kind, created_at=clock.now())
    session.add(code)
    _apply(session, actor, code, data, schedule)
    _queue_wecom_push(session, code, clock)
    record(
        session,
        actor,
        action="create",
        entity_type="live_code",
        entity_id=code.id,
        after=_snapshot(session, code),
        clock=clock,
    )
    return code


def update_live_code(session: Session, *, actor: Actor, code_id: int, data: LiveCodeIn, clock: Clock) -> LiveCode:
    """Change a code's settings and routes; its slug (the printed QR) never changes."""
    actor.require(Scope.ACQUISITION_WRITE)
    code = get_live_code(session, actor.workspace_id, code_id)
    if data.kind != code.kind:
        raise InvalidInput("a code's kind cannot change; create a new code", details={"field": "kind"})
    schedule = _validate(session, actor, data)
    before = _snapshot(session, code)
    _apply(session, actor, code, data, schedule)
    snapshots.clear()  # scans in this process route by the new settings at once
    _queue_wecom_push(session, code, clock)
    record(
        session,
        actor,
        action="update",
        entity_type="live_code",
        entity_id=code.id,
        before=before,
        after=_snapshot(session, code),
        clock=clock,
    )
    return code


def delete_live_code(session: Session, *, actor: Actor, code_id: int, clock: Clock) -> LiveCode:
    """Retire a code. Its row stays so printed QR codes answer a friendly page instead of an error."""
    actor.require(Scope.ACQUISITION_WRITE)
    code = get_live_code(session, actor.workspace_id, code_id)
    code.deleted_at = clock.now()
    session.flush()
    snapshots.clear()
    _queue_wecom_push(session, code, clock)
    record(
        session,
        actor,
        action="delete",
        entity_type="live_code",
        entity_id=code.id,
        before={"name": code.name},
        clock=clock,
    )
    return code


def set_logo(session: Session, *, actor: Actor, code_id: int, png: bytes | None, clock: Clock) -> None:
    """Set or clear the centre logo of a code's QR image (already checked to be a small image)."""
    actor.require(Scope.ACQUISITION_WRITE)
    code = get_live_code(session, actor.workspace_id, code_id)
    code.logo_png = png
    session.flush()
    record(
        session,
        actor,
        action="update",
        entity_type="live_code",
        entity_id=code.id,
        after={"logo": png is not None},
        clock=clock,
    )


def list_live_codes(session: Session, workspace_id: int) -> list[LiveCode]:
    return list(
        session.scalars(
            select(LiveCode)
            .where(LiveCode.workspace_id == workspace_id, LiveCode.deleted_at.is_(None))
            .order_by(LiveCode.id.desc())
        )
    )


def create_store_codes(
    session: Session,
    *,
    actor: Actor,
    store_ids: Sequence[int],
    channel_id: int | None,
    clock: Clock,
    daily_cap: int | None = None,
) -> list[LiveCode]:
    """One store code per store, routing to each store's active staff in rotation (for shop posters)."""
    codes = []
    for index, store_id in enumerate(store_ids):
        store = in_workspace(session, Store, store_id, actor.workspace_id, f"store_ids[{index}]")
        staff = session.scalars(
            select(Staff).where(Staff.store_id == store.id, Staff.is_active.is_(True)).order_by(Staff.id)
        ).all()
        if not staff:
            raise InvalidInput(f"store {store.name} has no active staff", details={"field": f"store_ids[{index}]"})
        data = LiveCodeIn(
            name=f"{store.name} 门店活码",
            kind=LiveCodeKind.STORE,
            store_id=store.id,
            channel_id=channel_id,
            routes=[RouteIn(staff_id=s.id, daily_cap=daily_cap) for s in staff],
        )
        codes.append(create_live_code(session, actor=actor, data=data, clock=clock))
    return codes
