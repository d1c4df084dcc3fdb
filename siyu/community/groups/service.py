"""Community groups: create/edit, tags, listing.

The one service that writes groups: the live codes' group form and `PUT /api/v1/groups/{id}`
(`siyu.livecodes.groups`) and the demo delegate here. Seats (`member_count`) are never set here:
they are taken and freed by `membership.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.community.groups.membership import group_in
from siyu.community.groups.schemas import GroupCreate, GroupPatch
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput
from siyu.livecodes.service import in_workspace
from siyu.models import CommunityGroup, GroupMember, GroupTag, Staff, Tag
from siyu.models.group import MAX_GROUP_LIMIT, GroupKind, GroupMemberRole


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _check_limit(limit: int) -> None:
    """A group's member limit: 1..500 (WeCom's ceiling), else InvalidInput naming `member_limit`."""
    if not 1 <= limit <= MAX_GROUP_LIMIT:
        raise InvalidInput(f"group limit must be between 1 and {MAX_GROUP_LIMIT}", details={"field": "member_limit"})


def _check_kind(kind: GroupKind, ends_at: datetime | None, *, now: datetime, changed: bool) -> None:
    if kind == GroupKind.FLASH:
        if ends_at is None:
            raise InvalidInput("a flash group needs an end time", details={"field": "ends_at"})
        if changed and ends_at <= now:
            raise InvalidInput("the end time must be in the future", details={"field": "ends_at"})
    elif ends_at is not None:
        raise InvalidInput("only flash groups end", details={"field": "ends_at"})


def _check_chat_id(session: Session, workspace_id: int, chat_id: str | None, group_id: int | None) -> None:
    if not chat_id:
        return
    query = select(CommunityGroup.id).where(
        CommunityGroup.workspace_id == workspace_id, CommunityGroup.wecom_chat_id == chat_id
    )
    if group_id is not None:
        query = query.where(CommunityGroup.id != group_id)
    if session.scalar(query) is not None:
        raise Conflict("a group with this WeCom chat id exists", details={"field": "wecom_chat_id"})


def _set_tags(session: Session, group: CommunityGroup, tag_ids: list[int]) -> None:
    wanted = list(dict.fromkeys(tag_ids))
    found = set(session.scalars(select(Tag.id).where(Tag.id.in_(wanted), Tag.workspace_id == group.workspace_id)))
    if missing := [t for t in wanted if t not in found]:
        raise InvalidInput(f"unknown tag {missing[0]}", details={"field": "tag_ids"})
    session.execute(delete(GroupTag).where(GroupTag.group_id == group.id, GroupTag.tag_id.not_in(wanted)))
    have = set(session.scalars(select(GroupTag.tag_id).where(GroupTag.group_id == group.id)))
    for tag_id in wanted:
        if tag_id not in have:
            session.add(GroupTag(workspace_id=group.workspace_id, group_id=group.id, tag_id=tag_id))
    session.flush()


def _snapshot(session: Session, group: CommunityGroup) -> dict[str, Any]:
    return {
        "name": group.name,
        "kind": str(group.kind),
        "ends_at": group.ends_at.isoformat() if group.ends_at else None,
        "member_limit": group.member_limit,
        "owner_staff_id": group.owner_staff_id,
        "is_active": group.is_active,
        "tag_ids": tag_ids_of(session, group.id),
    }


def tag_ids_of(session: Session, group_id: int) -> list[int]:
    """The group's tag ids, in id order."""
    return list(session.scalars(select(GroupTag.tag_id).where(GroupTag.group_id == group_id).order_by(GroupTag.tag_id)))


def create_group(session: Session, *, actor: Actor, data: GroupCreate, clock: Clock) -> CommunityGroup:
    """Create a group (community:write): limit 1..500, owner in the workspace, flash groups end later."""
    actor.require(Scope.COMMUNITY_WRITE)
    _check_limit(data.member_limit)
    ends_at = _utc(data.ends_at)
    _check_kind(data.kind, ends_at, now=clock.now(), changed=True)
    in_workspace(session, Staff, data.owner_staff_id, actor.workspace_id, "owner_staff_id")
    _check_chat_id(session, actor.workspace_id, data.wecom_chat_id, None)
    group = CommunityGroup(
        workspace_id=actor.workspace_id,
        name=data.name.strip(),
        kind=data.kind,
        ends_at=ends_at,
        description=data.description,
        join_url=data.join_url,
        member_limit=data.member_limit,
        member_count=0,
        owner_staff_id=data.owner_staff_id,
        wecom_chat_id=data.wecom_chat_id or None,
        created_at=clock.now(),
    )
    session.add(group)
    session.flush()
    _set_tags(session, group, list(data.tag_ids))
    if data.owner_staff_id is not None:
        from siyu.community.groups.membership import add_staff

        add_staff(
            session,
            actor=actor,
            group_id=group.id,
            staff_id=data.owner_staff_id,
            clock=clock,
            role=GroupMemberRole.OWNER,
        )
    record(
        session,
        actor,
        action="create",
        entity_type="community_group",
        entity_id=group.id,
        after=_snapshot(session, group),
        clock=clock,
    )
    return group


def update_group(session: Session, *, actor: Actor, group_id: int, data: GroupPatch, clock: Clock) -> CommunityGroup:
    """Change a group (community:write); the limit can't go under the seats taken."""
    actor.require(Scope.COMMUNITY_WRITE)
    group = group_in(session, actor.workspace_id, group_id, lock=True)
    before = _snapshot(session, group)
    given = data.model_fields_set
    if "name" in given and data.name is None:
        raise InvalidInput("name is required", details={"field": "name"})
    if data.member_limit is not None:
        _check_limit(data.member_limit)
        if data.member_limit < group.member_count:
            raise InvalidInput(
                f"the group has {group.member_count} members; the limit can't be lower",
                details={"field": "member_limit"},
            )
    kind = data.kind if data.kind is not None else group.kind
    ends_at = _utc(data.ends_at) if "ends_at" in given else _utc(group.ends_at)
    if kind == GroupKind.LONG_TERM and "ends_at" not in given:
        ends_at = None
    _check_kind(kind, ends_at, now=clock.now(), changed="ends_at" in given or data.kind is not None)
    if "owner_staff_id" in given:
        in_workspace(session, Staff, data.owner_staff_id, actor.workspace_id, "owner_staff_id")
    if "wecom_chat_id" in given:
        _check_chat_id(session, actor.workspace_id, data.wecom_chat_id, group.id)
    group.kind, group.ends_at = kind, ends_at
    for key in ("name", "description", "join_url", "member_limit", "owner_staff_id", "wecom_chat_id", "is_active"):
        if key in given and (key not in ("name", "member_limit", "is_active") or getattr(data, key) is not None):
            value = getattr(data, key)
            setattr(group, key, value.strip() if key == "name" else value)
    if data.tag_ids is not None:
        _set_tags(session, group, list(data.tag_ids))
    session.flush()
    if "owner_staff_id" in given and data.owner_staff_id is not None:
        from siyu.community.groups.membership import add_staff, set_role

        add_staff(session, actor=actor, group_id=group.id, staff_id=data.owner_staff_id, clock=clock)
        set_role(
            session,
            actor=actor,
            group_id=group.id,
            customer_id=None,
            staff_id=data.owner_staff_id,
            role=GroupMemberRole.OWNER,
            clock=clock,
        )
    after = _snapshot(session, group)
    if after != before:
        record(
            session,
            actor,
            action="update",
            entity_type="community_group",
            entity_id=group.id,
            before=before,
            after=after,
            clock=clock,
        )
    return group


def assign_tag(session: Session, *, actor: Actor, group_id: int, tag_id: int, clock: Clock) -> list[int]:
    """Add one existing tag to the group (idempotent); returns the group's tag ids."""
    actor.require(Scope.COMMUNITY_WRITE)
    group = group_in(session, actor.workspace_id, group_id)
    current = tag_ids_of(session, group.id)
    if tag_id not in current:
        _set_tags(session, group, [*current, tag_id])
        record(
            session,
            actor,
            action="tag",
            entity_type="community_group",
            entity_id=group.id,
            after={"tag_id": tag_id},
            clock=clock,
        )
    return tag_ids_of(session, group.id)


def remove_tag(session: Session, *, actor: Actor, group_id: int, tag_id: int, clock: Clock) -> list[int]:
    """Remove a tag from the group (idempotent); returns the group's tag ids."""
    actor.require(Scope.COMMUNITY_WRITE)
    group = group_in(session, actor.workspace_id, group_id)
    current = tag_ids_of(session, group.id)
    if tag_id in current:
        _set_tags(session, group, [t for t in current if t != tag_id])
        record(
            session,
            actor,
            action="untag",
            entity_type="community_group",
            entity_id=group.id,
            before={"tag_id": tag_id},
            clock=clock,
        )
    return tag_ids_of(session, group.id)


@dataclass
class GroupRow:
    group: CommunityGroup
    owner_name: str | None
    tags: list[Tag] = field(default_factory=list)


def list_groups(
    session: Session,
    *,
    actor: Actor,
    kind: GroupKind | None = None,
    tag_id: int | None = None,
    active: bool | None = None,
    q: str | None = None,
) -> list[GroupRow]:
    """The workspace's groups (community:read) with owner name and tags, newest first."""
    actor.require(Scope.COMMUNITY_READ)
    query = select(CommunityGroup).where(CommunityGroup.workspace_id == actor.workspace_id)
    if kind is not None:
        query = query.where(CommunityGroup.kind == kind)
    if active is not None:
        query = query.where(CommunityGroup.is_active.is_(active))
    if tag_id is not None:
        query = query.where(CommunityGroup.id.in_(select(GroupTag.group_id).where(GroupTag.tag_id == tag_id)))
    if q:
        query = query.where(CommunityGroup.name.contains(q.strip(), autoescape=True))
    groups = list(session.scalars(query.order_by(CommunityGroup.id.desc())))
    ids = [g.id for g in groups]
    owners = dict(
        session.execute(
            select(Staff.id, Staff.name).where(Staff.id.in_({g.owner_staff_id for g in groups if g.owner_staff_id}))
        ).all()
    )
    tags: dict[int, list[Tag]] = {}
    for group_id, tag in session.execute(
        select(GroupTag.group_id, Tag)
        .join(Tag, Tag.id == GroupTag.tag_id)
        .where(GroupTag.group_id.in_(ids))
        .order_by(Tag.id)
    ).all():
        tags.setdefault(group_id, []).append(tag)
    return [GroupRow(g, owners.get(g.owner_staff_id) if g.owner_staff_id else None, tags.get(g.id, [])) for g in groups]


def get_group(session: Session, *, actor: Actor, group_id: int) -> CommunityGroup:
    """One group of the workspace (community:read)."""
    actor.require(Scope.COMMUNITY_READ)
    return group_in(session, actor.workspace_id, group_id)


def open_counts(session: Session, group_id: int) -> dict[str, int]:
    """Open stays by role (for the detail page)."""
    rows = session.execute(
        select(GroupMember.role, func.count())
        .where(GroupMember.group_id == group_id, GroupMember.left_at.is_(None))
        .group_by(GroupMember.role)
    ).all()
    return {str(role): int(n) for role, n in rows}
