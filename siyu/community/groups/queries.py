"""Read models of groups: member tables (customers the actor may see, staff) and a member's groups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.community.groups.membership import group_in
from siyu.customers.masking import sees_pii, shown_phone
from siyu.customers.repository import visibility_clause
from siyu.kit.errors import NotFound
from siyu.models import CommunityGroup, Customer, GroupMember, Staff

MAX_MEMBERS_PAGE = 1000


@dataclass
class MemberRow:
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


def members(
    session: Session, *, actor: Actor, group_id: int, include_left: bool = False, limit: int = MAX_MEMBERS_PAGE
) -> list[MemberRow]:
    """The group's stays, open first by join time; customers limited to those the actor may see."""
    actor.require(Scope.COMMUNITY_READ)
    group = group_in(session, actor.workspace_id, group_id)
    query = (
        select(GroupMember, Customer, Staff)
        .outerjoin(Customer, Customer.id == GroupMember.customer_id)
        .outerjoin(Staff, Staff.id == GroupMember.staff_id)
        .where(
            GroupMember.group_id == group.id,
            or_(GroupMember.customer_id.is_(None), visibility_clause(actor)),
        )
    )
    if not include_left:
        query = query.where(GroupMember.left_at.is_(None))
    query = query.order_by(GroupMember.left_at.is_not(None), GroupMember.joined_at, GroupMember.id).limit(limit)
    whole = sees_pii(actor)
    rows: list[MemberRow] = []
    for stay, customer, staff in session.execute(query).all():
        if customer is not None:
            name = customer.name or f"#{customer.id}"
            phone = shown_phone(customer.phone, whole=whole)
        else:
            name, phone = (staff.name if staff is not None else "—"), None
        rows.append(
            MemberRow(
                id=stay.id,
                customer_id=stay.customer_id,
                staff_id=stay.staff_id,
                name=name,
                phone=phone,
                role=str(stay.role),
                joined_at=stay.joined_at,
                left_at=stay.left_at,
                left_reason=stay.left_reason,
                join_scene=stay.join_scene,
                invited_by_customer_id=stay.invited_by_customer_id,
            )
        )
    return rows


def stay_in(session: Session, *, actor: Actor, group_id: int, member_id: int) -> GroupMember:
    """One stay of the group, or NotFound (also for a customer the actor may not see)."""
    group = group_in(session, actor.workspace_id, group_id)
    stay = session.scalar(select(GroupMember).where(GroupMember.id == member_id, GroupMember.group_id == group.id))
    if stay is None:
        raise NotFound("member not found", details={"field": "member_id"})
    if stay.customer_id is not None:
        visible = session.scalar(select(Customer.id).where(Customer.id == stay.customer_id, visibility_clause(actor)))
        if visible is None:
            raise NotFound("member not found", details={"field": "member_id"})
    return stay


@dataclass
class MyGroup:
    group_id: int
    name: str
    kind: str
    role: str
    joined_at: datetime
    join_url: str | None
    ends_at: datetime | None


def groups_of(session: Session, *, workspace_id: int, customer_id: int) -> list[MyGroup]:
    """A member's current groups (open stays in active groups), latest join first."""
    rows = session.execute(
        select(GroupMember, CommunityGroup)
        .join(CommunityGroup, CommunityGroup.id == GroupMember.group_id)
        .where(
            GroupMember.workspace_id == workspace_id,
            GroupMember.customer_id == customer_id,
            GroupMember.left_at.is_(None),
            CommunityGroup.is_active.is_(True),
        )
        .order_by(GroupMember.joined_at.desc(), GroupMember.id.desc())
    ).all()
    return [MyGroup(g.id, g.name, str(g.kind), str(m.role), m.joined_at, g.join_url, g.ends_at) for m, g in rows]
