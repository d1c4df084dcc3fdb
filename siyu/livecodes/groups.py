"""Customer groups that group live codes route to, and how full they are."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput
from siyu.livecodes.schemas import GroupIn
from siyu.livecodes.service import in_workspace
from siyu.models import CommunityGroup, LiveCode, LiveCodeRoute, Staff
from siyu.models.group import MAX_GROUP_LIMIT


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_GROUP_LIMIT:
        raise InvalidInput(f"group limit must be between 1 and {MAX_GROUP_LIMIT}", details={"field": "member_limit"})


def create_group(session: Session, *, actor: Actor, data: GroupIn, clock: Clock) -> CommunityGroup:
    actor.require(Scope.ACQUISITION_WRITE)
    _check_limit(data.member_limit)
    in_workspace(session, Staff, data.owner_staff_id, actor.workspace_id, "owner_staff_id")
    if data.wecom_chat_id and session.scalar(
        select(CommunityGroup.id).where(
            CommunityGroup.workspace_id == actor.workspace_id, CommunityGroup.wecom_chat_id == data.wecom_chat_id
        )
    ):
        raise Conflict("a group with this WeCom chat id exists", details={"field": "wecom_chat_id"})
    group = CommunityGroup(workspace_id=actor.workspace_id, created_at=clock.now(), **data.model_dump())
    session.add(group)
    session.flush()
    record(
        session,
        actor,
        action="create",
        entity_type="community_group",
        entity_id=group.id,
        after={"name": group.name, "member_limit": group.member_limit},
        clock=clock,
    )
    return group


def update_group(session: Session, *, actor: Actor, group_id: int, data: GroupIn, clock: Clock) -> CommunityGroup:
    actor.require(Scope.ACQUISITION_WRITE)
    _check_limit(data.member_limit)
    group = in_workspace(session, CommunityGroup, group_id, actor.workspace_id, "group_id")
    in_workspace(session, Staff, data.owner_staff_id, actor.workspace_id, "owner_staff_id")
    before = {"name": group.name, "member_limit": group.member_limit, "member_count": group.member_count}
    for key, value in data.model_dump().items():
        setattr(group, key, value)
    session.flush()
    record(
        session,
        actor,
        action="update",
        entity_type="community_group",
        entity_id=group.id,
        before=before,
        after={"name": group.name, "member_limit": group.member_limit, "member_count": group.member_count},
        clock=clock,
    )
    assert isinstance(group, CommunityGroup)
    return group


def list_groups(session: Session, workspace_id: int) -> list[CommunityGroup]:
    return list(
        session.scalars(
            select(CommunityGroup).where(CommunityGroup.workspace_id == workspace_id).order_by(CommunityGroup.id)
        )
    )


def group_capacity(session: Session, code: LiveCode) -> dict[str, Any]:
    """Seats taken and left over a group code's active groups, and whether to warn the operator."""
    row = session.execute(
        select(
            func.coalesce(func.sum(CommunityGroup.member_count), 0),
            func.coalesce(func.sum(CommunityGroup.member_limit), 0),
            func.count(),
            func.count().filter(CommunityGroup.member_count < CommunityGroup.member_limit),
        )
        .join(LiveCodeRoute, LiveCodeRoute.group_id == CommunityGroup.id)
        .where(
            LiveCodeRoute.live_code_id == code.id, LiveCodeRoute.is_active.is_(True), CommunityGroup.is_active.is_(True)
        )
    ).one()
    members, capacity, groups, with_room = (int(v) for v in row)
    percent = round(members * 100 / capacity) if capacity else 100
    return {
        "members": members,
        "capacity": capacity,
        "groups": groups,
        "groups_with_room": with_room,
        "percent_full": percent,
        # Warn while there is still time to open a new group: past the threshold or down to the last group.
        "warn": with_room <= 1 or percent >= code.group_warn_percent,
        "all_full": with_room == 0,
    }
