"""Who is in a community group: stays (joined → left), seats against the member limit, roles.

`join_group` is the one entry point for a customer joining, whoever reports it (a group live code,
an invitation, an import, WeCom later). The seat is taken with a conditional UPDATE so a group never
counts past its limit, and at most one open stay exists per group and person (a partial unique
index), so a join reported twice — even at once — takes one seat. Every open stay, customer or
staff, takes a seat: WeCom's limit counts everybody in the chat.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.community.groups.days import bump_day
from siyu.customers.activity import group_joined
from siyu.customers.service.timeline import system_event
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput, NotFound
from siyu.models import CommunityGroup, Customer, GroupMember, Staff
from siyu.models.group import GroupKind, GroupMemberRole

LEFT = "left"
REMOVED = "removed"
DISMISSED = "dismissed"
LEAVE_REASONS = (LEFT, REMOVED, DISMISSED)


class GroupFull(Conflict):
    """No seat left in the group."""

    code = "group_full"


class GroupClosed(Conflict):
    """The group is inactive or (a flash group) already dismissed."""

    code = "group_closed"


def group_in(session: Session, workspace_id: int, group_id: int, *, lock: bool = False) -> CommunityGroup:
    """The workspace's group, or NotFound (naming `group_id`)."""
    statement = select(CommunityGroup).where(CommunityGroup.id == group_id, CommunityGroup.workspace_id == workspace_id)
    if lock:
        statement = statement.with_for_update()
    group = session.scalar(statement)
    if group is None:
        raise NotFound("group not found", details={"field": "group_id"})
    return group


def open_stay(
    session: Session, group_id: int, *, customer_id: int | None = None, staff_id: int | None = None
) -> GroupMember | None:
    """The person's current (not left) stay in the group, if any."""
    statement = select(GroupMember).where(GroupMember.group_id == group_id, GroupMember.left_at.is_(None))
    if customer_id is not None:
        statement = statement.where(GroupMember.customer_id == customer_id)
    elif staff_id is not None:
        statement = statement.where(GroupMember.staff_id == staff_id)
    else:
        raise InvalidInput("a customer or a staff member is needed", details={"field": "customer_id"})
    return session.scalar(statement.order_by(GroupMember.id.desc()).limit(1))


def _check_open(group: CommunityGroup, at: datetime) -> None:
    if not group.is_active:
        raise GroupClosed("this group is closed", details={"field": "group_id"})
    if group.kind == GroupKind.FLASH and group.ends_at is not None and _aware(group.ends_at) <= _aware(at):
        raise GroupClosed("this flash group has ended", details={"field": "group_id"})


def _check_open_now(group: CommunityGroup, at: datetime) -> None:
    """As the seat UPDATE sees it: inactive, or any `ends_at` reached, is closed."""
    if not group.is_active or (group.ends_at is not None and _aware(group.ends_at) <= _aware(at)):
        raise GroupClosed("this group is closed", details={"field": "group_id"})


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _seat(
    session: Session,
    group: CommunityGroup,
    *,
    customer_id: int | None,
    staff_id: int | None,
    role: GroupMemberRole,
    at: datetime,
    scene: str,
    invited_by_customer_id: int | None,
) -> tuple[GroupMember, bool]:
    """Take a seat and open a stay in one savepoint; (stay, created). An existing open stay wins."""
    existing = open_stay(session, group.id, customer_id=customer_id, staff_id=staff_id)
    if existing is not None:
        return existing, False
    try:
        with session.begin_nested():
            # the group's state is re-checked in the UPDATE itself: a dismissal (or the end of a
            # flash group) that commits between `_check_open` and here takes no seat
            seated = session.execute(
                update(CommunityGroup)
                .where(
                    CommunityGroup.id == group.id,
                    CommunityGroup.member_count < CommunityGroup.member_limit,
                    CommunityGroup.is_active.is_(True),
                    or_(CommunityGroup.ends_at.is_(None), CommunityGroup.ends_at > at),
                )
                .values(member_count=CommunityGroup.member_count + 1)
                .execution_options(synchronize_session=False)
            )
            if not getattr(seated, "rowcount", 0):
                session.refresh(group)
                _check_open_now(group, at)
                raise GroupFull("this group is full", details={"field": "group_id"})
            member = GroupMember(
                workspace_id=group.workspace_id,
                group_id=group.id,
                customer_id=customer_id,
                staff_id=staff_id,
                role=role,
                joined_at=at,
                join_scene=scene[:20],
                invited_by_customer_id=invited_by_customer_id,
            )
            session.add(member)
            session.flush()
    except IntegrityError:
        # The same person joined concurrently and won; their stay is this one.
        winner = open_stay(session, group.id, customer_id=customer_id, staff_id=staff_id)
        if winner is None:
            raise
        return winner, False
    session.refresh(group)
    return member, True


def join_group(
    session: Session,
    *,
    workspace_id: int,
    group_id: int,
    customer_id: int,
    at: datetime,
    clock: Clock,
    role: GroupMemberRole = GroupMemberRole.MEMBER,
    scene: str = "invite",
    invited_by_customer_id: int | None = None,
    event_key: str | None = None,
    event_properties: dict[str, Any] | None = None,
) -> GroupMember:
    """A customer joins a group: one seat, one open stay; idempotent while the stay is open.

    A new stay bumps the day's counts, adds a "group.joined" timeline event (key `event_key`, by
    default `group_member:{stay id}`; `event_properties` merged over `{"group_id", "scene"}`) and
    fires `group_joined`. Raises NotFound (group or customer not in the workspace, erased customer),
    GroupClosed (inactive/ended) and GroupFull (409)."""
    group = group_in(session, workspace_id, group_id)
    customer = session.get(Customer, customer_id)
    if customer is None or customer.workspace_id != workspace_id or customer.erased_at is not None:
        raise NotFound("customer not found", details={"field": "customer_id"})
    if invited_by_customer_id is not None:
        inviter = session.get(Customer, invited_by_customer_id)
        if inviter is None or inviter.workspace_id != workspace_id:
            raise NotFound("inviting customer not found", details={"field": "invited_by_customer_id"})
    existing = open_stay(session, group.id, customer_id=customer_id)
    if existing is not None:
        return existing
    _check_open(group, at)
    member, created = _seat(
        session,
        group,
        customer_id=customer_id,
        staff_id=None,
        role=role,
        at=at,
        scene=scene,
        invited_by_customer_id=invited_by_customer_id,
    )
    if not created:
        return member
    bump_day(session, group, at, clock=clock, joined=1)
    properties: dict[str, Any] = {"group_id": group.id, "scene": member.join_scene}
    properties.update(event_properties or {})
    system_event(session, customer, "group.joined", event_key or f"group_member:{member.id}", at, clock, properties)
    session.flush()
    group_joined(session, workspace_id, customer_id, group.id, clock)
    return member


def add_staff(
    session: Session,
    *,
    actor: Actor,
    group_id: int,
    staff_id: int,
    clock: Clock,
    role: GroupMemberRole = GroupMemberRole.ADMIN,
) -> GroupMember:
    """Put a staff member in the group (owner, admin/assistant…); idempotent while their stay is open."""
    actor.require(Scope.COMMUNITY_WRITE)
    group = group_in(session, actor.workspace_id, group_id)
    staff = session.get(Staff, staff_id)
    if staff is None or staff.workspace_id != actor.workspace_id:
        raise NotFound("staff member not found", details={"field": "staff_id"})
    at = clock.now()
    existing = open_stay(session, group.id, staff_id=staff_id)
    if existing is not None:
        return existing
    _check_open(group, at)
    member, created = _seat(
        session,
        group,
        customer_id=None,
        staff_id=staff_id,
        role=role,
        at=at,
        scene="manual",
        invited_by_customer_id=None,
    )
    if created:
        bump_day(session, group, at, clock=clock, joined=1)
        record(
            session,
            actor,
            action="add_member",
            entity_type="community_group",
            entity_id=group.id,
            after={"staff_id": staff_id, "role": str(role)},
            clock=clock,
        )
    return member


def add_customer(
    session: Session,
    *,
    actor: Actor,
    group_id: int,
    customer_id: int,
    clock: Clock,
    role: GroupMemberRole = GroupMemberRole.MEMBER,
    scene: str = "manual",
) -> GroupMember:
    """An operator adds a customer to the group (audited); see `join_group`."""
    actor.require(Scope.COMMUNITY_WRITE)
    before = open_stay(session, group_id, customer_id=customer_id)
    member = join_group(
        session,
        workspace_id=actor.workspace_id,
        group_id=group_id,
        customer_id=customer_id,
        at=clock.now(),
        clock=clock,
        role=role,
        scene=scene,
    )
    if before is None:
        record(
            session,
            actor,
            action="add_member",
            entity_type="community_group",
            entity_id=group_id,
            after={"customer_id": customer_id, "role": str(member.role)},
            clock=clock,
        )
    return member


def close_stay(session: Session, member: GroupMember, *, at: datetime, reason: str, clock: Clock) -> bool:
    """Mark an open stay left and free its seat; False if it was already closed (a concurrent leave)."""
    closed = session.execute(
        update(GroupMember)
        .where(GroupMember.id == member.id, GroupMember.left_at.is_(None))
        .values(left_at=at, left_reason=reason)
        .execution_options(synchronize_session=False)
    )
    if not getattr(closed, "rowcount", 0):
        session.refresh(member)
        return False
    session.execute(
        update(CommunityGroup)
        .where(CommunityGroup.id == member.group_id, CommunityGroup.member_count > 0)
        .values(member_count=CommunityGroup.member_count - 1)
        .execution_options(synchronize_session=False)
    )
    session.refresh(member)
    group = session.get(CommunityGroup, member.group_id)
    assert group is not None
    session.refresh(group)
    bump_day(session, group, at, clock=clock, left=1)
    return True


def _left_event(
    session: Session, customer_id: int, stay_id: int, group_id: int, at: datetime, clock: Clock, reason: str
) -> None:
    """The customer's "group.left" timeline event for one closed stay (key `group_left:{stay id}`)."""
    customer = session.get(Customer, customer_id)
    if customer is not None:
        system_event(
            session,
            customer,
            "group.left",
            f"group_left:{stay_id}",
            at,
            clock,
            {"group_id": group_id, "reason": reason},
        )


def leave_group(
    session: Session,
    *,
    workspace_id: int,
    group_id: int,
    at: datetime,
    clock: Clock,
    customer_id: int | None = None,
    staff_id: int | None = None,
    reason: str = LEFT,
) -> GroupMember:
    """The person's open stay ends (`reason`: left, removed, dismissed) and frees its seat.

    Idempotent: leaving again returns the last stay unchanged. NotFound if they never were in it."""
    if reason not in LEAVE_REASONS:
        raise InvalidInput(f"reason must be one of {', '.join(LEAVE_REASONS)}", details={"field": "reason"})
    group = group_in(session, workspace_id, group_id)
    member = open_stay(session, group.id, customer_id=customer_id, staff_id=staff_id)
    if member is None:
        last = session.scalar(
            select(GroupMember)
            .where(
                GroupMember.group_id == group.id,
                GroupMember.customer_id == customer_id if customer_id is not None else GroupMember.staff_id == staff_id,
            )
            .order_by(GroupMember.id.desc())
            .limit(1)
        )
        if last is None:
            raise NotFound(
                "not a member of this group", details={"field": "customer_id" if customer_id else "staff_id"}
            )
        return last
    close_stay(session, member, at=at, reason=reason, clock=clock)
    if member.customer_id is not None:
        _left_event(session, member.customer_id, member.id, group.id, at, clock, reason)
    session.flush()
    return member


def remove_member(
    session: Session,
    *,
    actor: Actor,
    group_id: int,
    clock: Clock,
    customer_id: int | None = None,
    staff_id: int | None = None,
) -> GroupMember:
    """An operator removes someone from the group (reason "removed", audited)."""
    actor.require(Scope.COMMUNITY_WRITE)
    member = leave_group(
        session,
        workspace_id=actor.workspace_id,
        group_id=group_id,
        at=clock.now(),
        clock=clock,
        customer_id=customer_id,
        staff_id=staff_id,
        reason=REMOVED,
    )
    record(
        session,
        actor,
        action="remove_member",
        entity_type="community_group",
        entity_id=group_id,
        before={"customer_id": customer_id, "staff_id": staff_id, "role": str(member.role)},
        clock=clock,
    )
    return member


def set_role(
    session: Session,
    *,
    actor: Actor,
    group_id: int,
    customer_id: int | None,
    role: GroupMemberRole | str,
    clock: Clock,
    staff_id: int | None = None,
) -> GroupMember:
    """Change the role of someone currently in the group (audited).

    One owner per group: making someone owner makes the previous owner an admin. NotFound when the
    person has no open stay in the group; InvalidInput for an unknown role."""
    actor.require(Scope.COMMUNITY_WRITE)
    try:
        new_role = GroupMemberRole(role)
    except ValueError:
        raise InvalidInput("unknown role", details={"field": "role"}) from None
    group = group_in(session, actor.workspace_id, group_id, lock=True)
    member = open_stay(session, group.id, customer_id=customer_id, staff_id=staff_id)
    if member is None:
        raise NotFound("not a member of this group", details={"field": "customer_id" if customer_id else "staff_id"})
    old_role = member.role
    if old_role == new_role:
        return member
    if new_role == GroupMemberRole.OWNER:
        for previous in session.scalars(
            select(GroupMember).where(
                GroupMember.group_id == group.id,
                GroupMember.left_at.is_(None),
                GroupMember.role == GroupMemberRole.OWNER,
                GroupMember.id != member.id,
            )
        ):
            previous.role = GroupMemberRole.ADMIN
    member.role = new_role
    session.flush()
    record(
        session,
        actor,
        action="set_role",
        entity_type="community_group",
        entity_id=group.id,
        before={"member_id": member.id, "role": str(old_role)},
        after={"member_id": member.id, "role": str(new_role)},
        clock=clock,
    )
    return member


def dismiss_group(session: Session, *, group: CommunityGroup, at: datetime, clock: Clock) -> int:
    """End the group: every open stay left with reason "dismissed" at `at`, the group inactive and empty.

    Each customer whose stay closes gets a "group.left" timeline event (reason dismissed), as when
    leaving. Returns the stays closed; dismissing again closes nothing."""
    locked = group_in(session, group.workspace_id, group.id, lock=True)
    stays = session.execute(
        select(GroupMember.id, GroupMember.customer_id)
        .where(GroupMember.group_id == locked.id, GroupMember.left_at.is_(None))
        .order_by(GroupMember.id)
    ).all()
    closed = session.execute(
        update(GroupMember)
        .where(GroupMember.id.in_([stay_id for stay_id, _customer in stays]), GroupMember.left_at.is_(None))
        .values(left_at=at, left_reason=DISMISSED)
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(closed, "rowcount", 0) or 0)
    locked.is_active = False
    locked.member_count = 0
    session.flush()
    if count:
        bump_day(session, locked, at, clock=clock, left=count)
    for stay_id, customer_id in stays:
        if customer_id is not None:
            _left_event(session, customer_id, stay_id, locked.id, at, clock, DISMISSED)
    session.flush()
    session.expire_all()
    return count


def dismiss_due(session: Session, *, clock: Clock, workspace_id: int | None = None) -> list[int]:
    """Dismiss every active flash group whose `ends_at` has come (at its `ends_at`); returns their ids."""
    now = clock.now()
    statement = select(CommunityGroup).where(
        CommunityGroup.kind == GroupKind.FLASH,
        CommunityGroup.is_active.is_(True),
        CommunityGroup.ends_at.is_not(None),
        CommunityGroup.ends_at <= now,
    )
    if workspace_id is not None:
        statement = statement.where(CommunityGroup.workspace_id == workspace_id)
    dismissed: list[int] = []
    for group in session.scalars(statement.order_by(CommunityGroup.id)).all():
        assert group.ends_at is not None
        dismiss_group(session, group=group, at=group.ends_at, clock=clock)
        dismissed.append(group.id)
    return dismissed
