"""Customer groups that group live codes route to, and how full they are."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.community.groups import service as community
from siyu.community.groups.membership import group_in
from siyu.community.groups.schemas import GroupCreate, GroupPatch
from siyu.kit.clock import Clock
from siyu.livecodes.schemas import GroupIn
from siyu.models import CommunityGroup, LiveCode, LiveCodeRoute


def _as_group_editor(actor: Actor) -> Actor:
    """The actor, once it holds acquisition:write, allowed to edit groups for this call.

    The live codes' group form and `PUT /api/v1/groups/{id}` have always needed acquisition:write
    (console roles holding it hold community:write too, but API tokens may be scoped to
    acquisition alone); the community service checks community:write, also when it seats the owner."""
    actor.require(Scope.ACQUISITION_WRITE)
    if actor.can(Scope.COMMUNITY_WRITE):
        return actor
    return replace(actor, scopes=actor.scopes | {str(Scope.COMMUNITY_WRITE)})


def create_group(session: Session, *, actor: Actor, data: GroupIn, clock: Clock) -> CommunityGroup:
    """Create a long-term group through `siyu.community.groups.service` (acquisition:write).

    Seats start at 0 (the owner, if named, takes the first); they are never set by hand."""
    editor = _as_group_editor(actor)
    return community.create_group(
        session,
        actor=editor,
        data=GroupCreate(
            name=data.name,
            join_url=data.join_url,
            member_limit=data.member_limit,
            owner_staff_id=data.owner_staff_id,
            wecom_chat_id=data.wecom_chat_id,
        ),
        clock=clock,
    )


def update_group(session: Session, *, actor: Actor, group_id: int, data: GroupIn, clock: Clock) -> CommunityGroup:
    """Replace the group's name, link, limit, owner and chat id through the community service
    (acquisition:write); kind, end, description, tags and `is_active` stay.

    An unchanged owner is left alone (not re-seated), so the PUT stays idempotent on a full group."""
    editor = _as_group_editor(actor)
    group = group_in(session, actor.workspace_id, group_id)
    fields = data.model_dump(include={"name", "join_url", "member_limit", "owner_staff_id", "wecom_chat_id"})
    if fields["owner_staff_id"] == group.owner_staff_id:
        del fields["owner_staff_id"]
    return community.update_group(session, actor=editor, group_id=group.id, data=GroupPatch(**fields), clock=clock)


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
