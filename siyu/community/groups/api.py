"""JSON API of community groups: groups, members (add/remove/role/import), daily counts, tags."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, UploadFile
from pydantic import BaseModel

from siyu.auth.permissions import Scope
from siyu.community.groups import days, importer, membership, queries, service
from siyu.community.groups.schemas import GroupCreate, GroupPatch, MemberAdd, RoleIn
from siyu.customers.repository import get_visible
from siyu.kit.errors import InvalidInput
from siyu.loyalty.member_tasks.periods import local_day
from siyu.loyalty.program import brand_zone
from siyu.models import CommunityGroup
from siyu.models.group import GroupKind
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["groups"])
Reader = Annotated[Ctx, Depends(require(Scope.COMMUNITY_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.COMMUNITY_WRITE))]


class GroupRead(BaseModel):
    id: int
    name: str
    kind: str
    ends_at: datetime | None
    description: str | None
    join_url: str | None
    member_limit: int
    member_count: int
    owner_staff_id: int | None
    owner_name: str | None = None
    wecom_chat_id: str | None
    is_active: bool
    tag_ids: list[int]
    created_at: datetime


def group_read(ctx: Ctx, group: CommunityGroup, owner_name: str | None = None) -> GroupRead:
    return GroupRead(
        id=group.id,
        name=group.name,
        kind=str(group.kind),
        ends_at=group.ends_at,
        description=group.description,
        join_url=group.join_url,
        member_limit=group.member_limit,
        member_count=group.member_count,
        owner_staff_id=group.owner_staff_id,
        owner_name=owner_name,
        wecom_chat_id=group.wecom_chat_id,
        is_active=group.is_active,
        tag_ids=service.tag_ids_of(ctx.session, group.id),
        created_at=group.created_at,
    )


class GroupList(BaseModel):
    items: list[GroupRead]


class MemberRead(BaseModel):
    id: int
    customer_id: int | None
    staff_id: int | None
    name: str
    phone: str | None
    role: str
    joined_at: datetime
    left_at: datetime | None
    left_reason: str | None
    join_scene: str | None
    invited_by_customer_id: int | None


class ImportRead(BaseModel):
    joined: int
    already: int
    roles_changed: int


class CountRead(BaseModel):
    day: date
    member_count: int
    joined: int
    left: int


def _member(ctx: Ctx, group_id: int, member_id: int) -> MemberRead:
    for row in queries.members(ctx.session, actor=ctx.actor, group_id=group_id, include_left=True):
        if row.id == member_id:
            return MemberRead(**row.__dict__)
    raise AssertionError("the stay was just written")  # pragma: no cover


@router.get("/groups", response_model=GroupList)
def list_groups(
    ctx: Reader,
    kind: GroupKind | None = None,
    tag_id: Annotated[int | None, Query(gt=0)] = None,
    active: bool | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> GroupList:
    """Groups of the workspace, newest first (filters: kind, tag, active, name contains); `{"items": […]}`
    like the live codes' former list, which this replaces."""
    rows = service.list_groups(ctx.session, actor=ctx.actor, kind=kind, tag_id=tag_id, active=active, q=q)
    return GroupList(items=[group_read(ctx, r.group, r.owner_name) for r in rows])


@router.post("/groups", status_code=201, response_model=GroupRead)
def create_group(body: GroupCreate, ctx: Writer) -> GroupRead:
    """Create a long-term or flash group."""
    return group_read(ctx, service.create_group(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/groups/{group_id}", response_model=GroupRead)
def get_group(group_id: IdPath, ctx: Reader) -> GroupRead:
    """One group."""
    return group_read(ctx, service.get_group(ctx.session, actor=ctx.actor, group_id=group_id))


@router.patch("/groups/{group_id}", response_model=GroupRead)
def patch_group(group_id: IdPath, body: GroupPatch, ctx: Writer) -> GroupRead:
    """Change a group's fields; `tag_ids` replaces its tags."""
    group = service.update_group(ctx.session, actor=ctx.actor, group_id=group_id, data=body, clock=ctx.clock)
    return group_read(ctx, group)


@router.get("/groups/{group_id}/members", response_model=list[MemberRead])
def list_members(group_id: IdPath, ctx: Reader, include_left: bool = False) -> list[MemberRead]:
    """Members now (or every stay with `include_left`); customers limited to those the caller may see."""
    rows = queries.members(ctx.session, actor=ctx.actor, group_id=group_id, include_left=include_left)
    return [MemberRead(**r.__dict__) for r in rows]


@router.post("/groups/{group_id}/members", status_code=201, response_model=MemberRead)
def add_member(group_id: IdPath, body: MemberAdd, ctx: Writer) -> MemberRead:
    """Add a customer or a staff member; adding someone already in returns their stay."""
    if (body.customer_id is None) == (body.staff_id is None):
        raise InvalidInput("give a customer_id or a staff_id", details={"field": "customer_id"})
    if body.customer_id is not None:
        get_visible(ctx.session, ctx.actor, body.customer_id)
        stay = membership.add_customer(
            ctx.session,
            actor=ctx.actor,
            group_id=group_id,
            customer_id=body.customer_id,
            clock=ctx.clock,
            role=body.role,
        )
    else:
        assert body.staff_id is not None
        stay = membership.add_staff(
            ctx.session, actor=ctx.actor, group_id=group_id, staff_id=body.staff_id, clock=ctx.clock, role=body.role
        )
    return _member(ctx, group_id, stay.id)


@router.delete("/groups/{group_id}/members/{member_id}", response_model=MemberRead)
def remove_member(group_id: IdPath, member_id: IdPath, ctx: Writer) -> MemberRead:
    """Remove someone from the group (reason "removed"); removing a closed stay changes nothing."""
    stay = queries.stay_in(ctx.session, actor=ctx.actor, group_id=group_id, member_id=member_id)
    if stay.left_at is None:
        membership.remove_member(
            ctx.session,
            actor=ctx.actor,
            group_id=group_id,
            clock=ctx.clock,
            customer_id=stay.customer_id,
            staff_id=stay.staff_id if stay.customer_id is None else None,
        )
    return _member(ctx, group_id, stay.id)


@router.put("/groups/{group_id}/members/{member_id}/role", response_model=MemberRead)
def set_member_role(group_id: IdPath, member_id: IdPath, body: RoleIn, ctx: Writer) -> MemberRead:
    """Change the role of someone in the group (one owner: the previous owner becomes admin)."""
    stay = queries.stay_in(ctx.session, actor=ctx.actor, group_id=group_id, member_id=member_id)
    if stay.left_at is not None:
        raise InvalidInput("this member has left the group", details={"field": "member_id"})
    membership.set_role(
        ctx.session,
        actor=ctx.actor,
        group_id=group_id,
        customer_id=stay.customer_id,
        staff_id=stay.staff_id if stay.customer_id is None else None,
        role=body.role,
        clock=ctx.clock,
    )
    return _member(ctx, group_id, stay.id)


@router.post("/groups/{group_id}/members/import", response_model=ImportRead)
def import_members(
    group_id: IdPath,
    ctx: Writer,
    file: Annotated[UploadFile, File(description="CSV: name/姓名, phone/手机, external_id, role/角色")],
) -> ImportRead:
    """Import members from CSV, all rows or none; a refused file lists every bad row (422)."""
    try:
        data = file.file.read(importer.MAX_BYTES + 1)
    finally:
        file.file.close()
    result = importer.import_members(ctx.session, actor=ctx.actor, group_id=group_id, data=data, clock=ctx.clock)
    return ImportRead(joined=result.joined, already=result.already, roles_changed=result.roles_changed)


@router.get("/groups/{group_id}/counts", response_model=list[CountRead])
def group_counts(group_id: IdPath, ctx: Reader, start: date | None = None, end: date | None = None) -> list[CountRead]:
    """Members per brand-local day (default the last 30 days), with the day's joins and leaves."""
    group = service.get_group(ctx.session, actor=ctx.actor, group_id=group_id)
    today = local_day(ctx.clock.now(), brand_zone(ctx.session, ctx.actor.workspace_id))
    end = end or today
    start = start or end - timedelta(days=29)
    points = days.counts(ctx.session, group=group, start=start, end=end)
    return [CountRead(day=p.day, member_count=p.member_count, joined=p.joined, left=p.left) for p in points]


@router.put("/groups/{group_id}/tags/{tag_id}", response_model=list[int])
def add_tag(group_id: IdPath, tag_id: IdPath, ctx: Writer) -> list[int]:
    """Put an existing tag on the group; returns its tag ids."""
    return service.assign_tag(ctx.session, actor=ctx.actor, group_id=group_id, tag_id=tag_id, clock=ctx.clock)


@router.delete("/groups/{group_id}/tags/{tag_id}", response_model=list[int])
def remove_tag(group_id: IdPath, tag_id: IdPath, ctx: Writer) -> list[int]:
    """Take a tag off the group; returns its tag ids."""
    return service.remove_tag(ctx.session, actor=ctx.actor, group_id=group_id, tag_id=tag_id, clock=ctx.clock)
