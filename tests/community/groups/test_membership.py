"""Joining and leaving groups: seats, stays, roles, the join-group task and daily counts."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Role
from siyu.community.groups.membership import (
    GroupClosed,
    GroupFull,
    add_staff,
    dismiss_due,
    join_group,
    leave_group,
    remove_member,
    set_role,
)
from siyu.customers.activity import on_group_joined
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, NotFound, PermissionDenied
from siyu.models import AuditEntry, CustomerEvent, GroupDay, GroupMember, Member, TaskKind
from siyu.models.group import GroupKind, GroupMemberRole
from tests.community.groups.factories import customer_of, refreshed, seat
from tests.factories import actor_for, make_group, make_staff, make_workspace
from tests.loyalty.member_tasks.factories import make_task


def test_a_join_takes_a_seat_opens_a_stay_and_is_idempotent(db: Session, clock: FrozenClock) -> None:
    # given a group with room and a customer
    ws = make_workspace(db, clock=clock)
    group = make_group(db, workspace=ws, clock=clock, limit=3)
    customer = customer_of(db, workspace=ws, clock=clock)
    # when they join twice
    first = join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=customer.id, at=clock.now(), clock=clock)
    clock.advance(timedelta(minutes=5))
    again = join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=customer.id, at=clock.now(), clock=clock)
    # then one stay, one seat, one timeline event, today's counts
    assert again.id == first.id
    assert (first.role, first.join_scene, first.left_at) == (GroupMemberRole.MEMBER, "invite", None)
    assert first.joined_at == clock.now() - timedelta(minutes=5)
    assert refreshed(db, group).member_count == 1
    events = db.scalars(
        select(CustomerEvent).where(CustomerEvent.customer_id == customer.id, CustomerEvent.type == "group.joined")
    ).all()
    assert [(e.idempotency_key, e.properties) for e in events] == [
        (f"group_member:{first.id}", {"group_id": group.id, "scene": "invite"})
    ]
    day = db.scalar(select(GroupDay).where(GroupDay.group_id == group.id))
    assert day is not None and (day.day, day.member_count, day.joined, day.left) == (date(2026, 11, 23), 1, 1, 0)


def test_a_full_group_refuses_and_writes_nothing(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    group = make_group(db, workspace=ws, clock=clock, limit=1)
    [seated] = seat(db, group=group, clock=clock, count=1)
    customer = customer_of(db, workspace=ws, clock=clock)
    with pytest.raises(GroupFull) as raised:
        join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=customer.id, at=clock.now(), clock=clock)
    assert raised.value.details == {"field": "group_id"}
    stays = db.scalars(select(GroupMember.customer_id).where(GroupMember.group_id == group.id)).all()
    assert stays == [seated.id]
    assert refreshed(db, group).member_count == 1


def test_unknown_group_customer_of_another_workspace_and_closed_groups(db: Session, clock: FrozenClock) -> None:
    ws, other = make_workspace(db, clock=clock), make_workspace(db, clock=clock)
    group = make_group(db, workspace=ws, clock=clock)
    stranger = customer_of(db, workspace=other, clock=clock)
    with pytest.raises(NotFound):
        join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=stranger.id, at=clock.now(), clock=clock)
    with pytest.raises(NotFound):
        join_group(db, workspace_id=other.id, group_id=group.id, customer_id=stranger.id, at=clock.now(), clock=clock)
    customer = customer_of(db, workspace=ws, clock=clock)
    group.is_active = False
    with pytest.raises(GroupClosed):
        join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=customer.id, at=clock.now(), clock=clock)
    flash = make_group(db, workspace=ws, clock=clock)
    flash.kind, flash.ends_at = GroupKind.FLASH, clock.now()
    with pytest.raises(GroupClosed):
        join_group(db, workspace_id=ws.id, group_id=flash.id, customer_id=customer.id, at=clock.now(), clock=clock)


def test_leaving_frees_the_seat_and_a_rejoin_opens_a_second_stay(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    group = make_group(db, workspace=ws, clock=clock, limit=1)
    customer = customer_of(db, workspace=ws, clock=clock)
    first = join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=customer.id, at=clock.now(), clock=clock)
    clock.advance(timedelta(hours=1))
    left = leave_group(db, workspace_id=ws.id, group_id=group.id, customer_id=customer.id, at=clock.now(), clock=clock)
    assert left.id == first.id and (left.left_at, left.left_reason) == (clock.now(), "left")
    assert refreshed(db, group).member_count == 0
    # leaving again changes nothing
    assert (
        leave_group(db, workspace_id=ws.id, group_id=group.id, customer_id=customer.id, at=clock.now(), clock=clock).id
        == first.id
    )
    assert refreshed(db, group).member_count == 0
    clock.advance(timedelta(hours=1))
    second = join_group(
        db,
        workspace_id=ws.id,
        group_id=group.id,
        customer_id=customer.id,
        at=clock.now(),
        clock=clock,
        scene="live_code",
    )
    assert second.id != first.id and refreshed(db, group).member_count == 1
    day = db.scalar(select(GroupDay).where(GroupDay.group_id == group.id))
    assert day is not None and (day.member_count, day.joined, day.left) == (1, 2, 1)
    with pytest.raises(InvalidInput):
        leave_group(
            db,
            workspace_id=ws.id,
            group_id=group.id,
            customer_id=customer.id,
            at=clock.now(),
            clock=clock,
            reason="bored",
        )
    never = customer_of(db, workspace=ws, clock=clock)
    with pytest.raises(NotFound):
        leave_group(db, workspace_id=ws.id, group_id=group.id, customer_id=never.id, at=clock.now(), clock=clock)


def test_join_fires_group_joined_and_completes_the_join_group_task_once(db: Session, clock: FrozenClock) -> None:
    # given a workspace with a join-group task of 20 points
    ws = make_workspace(db, clock=clock)
    task = make_task(db, workspace=ws, clock=clock, kind=TaskKind.JOIN_GROUP, points=20, key="join")
    group = make_group(db, workspace=ws, clock=clock)
    customer = customer_of(db, workspace=ws, clock=clock)
    heard: list[tuple[int, int, int]] = []

    def listener(session: Session, workspace_id: int, customer_id: int, group_id: int, clk: object) -> None:
        heard.append((workspace_id, customer_id, group_id))

    on_group_joined(listener)
    try:
        # when the customer joins, leaves and rejoins the same day
        join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=customer.id, at=clock.now(), clock=clock)
        leave_group(db, workspace_id=ws.id, group_id=group.id, customer_id=customer.id, at=clock.now(), clock=clock)
        join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=customer.id, at=clock.now(), clock=clock)
    finally:
        from siyu.customers import activity

        activity._group_join_listeners.remove(listener)
    # then both joins were announced, and the task paid its 20 points once
    assert heard == [(ws.id, customer.id, group.id)] * 2
    member = db.scalar(select(Member).where(Member.customer_id == customer.id))
    assert member is not None and member.points_balance == task.points == 20


def test_set_role_one_owner_audited_and_scoped(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    group = make_group(db, workspace=ws, clock=clock)
    admin = actor_for(ws)
    a, b = customer_of(db, workspace=ws, clock=clock), customer_of(db, workspace=ws, clock=clock)
    for c in (a, b):
        join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=c.id, at=clock.now(), clock=clock)
    assert (
        set_role(db, actor=admin, group_id=group.id, customer_id=a.id, role=GroupMemberRole.OWNER, clock=clock).role
        == "owner"
    )
    set_role(db, actor=admin, group_id=group.id, customer_id=b.id, role="owner", clock=clock)
    roles = dict(
        db.execute(select(GroupMember.customer_id, GroupMember.role).where(GroupMember.group_id == group.id)).all()
    )
    assert roles == {a.id: "admin", b.id: "owner"}
    assert set_role(db, actor=admin, group_id=group.id, customer_id=a.id, role="koc", clock=clock).role == "koc"
    audit = db.scalars(
        select(AuditEntry).where(AuditEntry.action == "set_role", AuditEntry.entity_id == str(group.id))
    ).all()
    assert len(audit) == 3
    with pytest.raises(InvalidInput):
        set_role(db, actor=admin, group_id=group.id, customer_id=a.id, role="boss", clock=clock)
    outsider = customer_of(db, workspace=ws, clock=clock)
    with pytest.raises(NotFound):
        set_role(db, actor=admin, group_id=group.id, customer_id=outsider.id, role="koc", clock=clock)
    with pytest.raises(PermissionDenied):
        set_role(
            db, actor=actor_for(ws, role=Role.ANALYST), group_id=group.id, customer_id=a.id, role="member", clock=clock
        )


def test_staff_members_take_seats_and_can_be_removed(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    group = make_group(db, workspace=ws, clock=clock, limit=2)
    staff = make_staff(db, workspace=ws, clock=clock)
    admin = actor_for(ws)
    stay = add_staff(db, actor=admin, group_id=group.id, staff_id=staff.id, clock=clock)
    assert add_staff(db, actor=admin, group_id=group.id, staff_id=staff.id, clock=clock).id == stay.id
    assert (stay.role, stay.customer_id, refreshed(db, group).member_count) == ("admin", None, 1)
    removed = remove_member(db, actor=admin, group_id=group.id, staff_id=staff.id, clock=clock)
    assert (removed.left_reason, refreshed(db, group).member_count) == ("removed", 0)


def test_a_flash_group_is_dismissed_at_its_end(db: Session, clock: FrozenClock) -> None:
    # given a flash group ending in an hour with two members, one of whom already left
    ws = make_workspace(db, clock=clock)
    group = make_group(db, workspace=ws, clock=clock)
    group.kind, group.ends_at = GroupKind.FLASH, clock.now() + timedelta(hours=1)
    a, b = customer_of(db, workspace=ws, clock=clock), customer_of(db, workspace=ws, clock=clock)
    for c in (a, b):
        join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=c.id, at=clock.now(), clock=clock)
    leave_group(db, workspace_id=ws.id, group_id=group.id, customer_id=b.id, at=clock.now(), clock=clock)
    # when the job runs before, then after the end
    assert dismiss_due(db, clock=clock, workspace_id=ws.id) == []
    clock.advance(timedelta(hours=2))
    assert dismiss_due(db, clock=clock, workspace_id=ws.id) == [group.id]
    assert dismiss_due(db, clock=clock, workspace_id=ws.id) == []
    # then the open stay left "dismissed" at ends_at, the group is inactive and empty
    stays = {
        m.customer_id: (m.left_reason, m.left_at)
        for m in db.scalars(select(GroupMember).where(GroupMember.group_id == group.id))
    }
    assert stays == {a.id: ("dismissed", group.ends_at), b.id: ("left", clock.now() - timedelta(hours=2))}
    assert (refreshed(db, group).is_active, group.member_count) == (False, 0)
    day = db.scalar(select(GroupDay).where(GroupDay.group_id == group.id))
    assert day is not None and (day.member_count, day.joined, day.left) == (0, 2, 2)


def test_a_join_racing_a_dismissal_is_closed_and_takes_no_seat(db: Session, clock: FrozenClock) -> None:
    from sqlalchemy import func, update

    from siyu.models import CommunityGroup

    # given a group this session still holds as active, dismissed meanwhile by another transaction
    ws = make_workspace(db, clock=clock)
    group = make_group(db, workspace=ws, clock=clock, limit=5)
    customer = customer_of(db, workspace=ws, clock=clock)
    assert group.is_active is True
    db.execute(
        update(CommunityGroup)
        .where(CommunityGroup.id == group.id)
        .values(is_active=False)
        .execution_options(synchronize_session=False)
    )
    # when the customer joins, then the seat UPDATE sees the dismissal: GroupClosed, no stay, no seat
    with pytest.raises(GroupClosed):
        join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=customer.id, at=clock.now(), clock=clock)
    assert db.scalar(select(func.count()).where(GroupMember.group_id == group.id)) == 0
    assert (refreshed(db, group).member_count, group.is_active) == (0, False)


def test_a_join_racing_the_end_of_a_flash_group_is_closed(db: Session, clock: FrozenClock) -> None:
    from sqlalchemy import func, update

    from siyu.models import CommunityGroup

    # given a flash group held as open, whose ends_at was moved into the past meanwhile
    ws = make_workspace(db, clock=clock)
    group = make_group(db, workspace=ws, clock=clock, limit=5)
    customer = customer_of(db, workspace=ws, clock=clock)
    db.execute(
        update(CommunityGroup)
        .where(CommunityGroup.id == group.id)
        .values(ends_at=clock.now() - timedelta(minutes=1))
        .execution_options(synchronize_session=False)
    )
    with pytest.raises(GroupClosed):
        join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=customer.id, at=clock.now(), clock=clock)
    assert db.scalar(select(func.count()).where(GroupMember.group_id == group.id)) == 0


def test_dismissal_writes_a_left_event_per_customer_stay(db: Session, clock: FrozenClock) -> None:
    # given a flash group with two customers and a staff member in it
    ws = make_workspace(db, clock=clock)
    group = make_group(db, workspace=ws, clock=clock)
    group.kind, group.ends_at = GroupKind.FLASH, clock.now() + timedelta(hours=1)
    a, b = customer_of(db, workspace=ws, clock=clock), customer_of(db, workspace=ws, clock=clock)
    stays = {
        c.id: join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=c.id, at=clock.now(), clock=clock).id
        for c in (a, b)
    }
    add_staff(
        db, actor=actor_for(ws), group_id=group.id, staff_id=make_staff(db, workspace=ws, clock=clock).id, clock=clock
    )
    # when it is dismissed at its end
    clock.advance(timedelta(hours=2))
    assert dismiss_due(db, clock=clock, workspace_id=ws.id) == [group.id]
    # then each customer has one "group.left" event, reason dismissed, keyed by their stay
    events = db.scalars(
        select(CustomerEvent).where(CustomerEvent.type == "group.left").order_by(CustomerEvent.customer_id)
    ).all()
    assert [(e.customer_id, e.idempotency_key, e.properties) for e in events] == [
        (c.id, f"group_left:{stays[c.id]}", {"group_id": group.id, "reason": "dismissed"})
        for c in sorted((a, b), key=lambda c: c.id)
    ]


def test_a_back_dated_join_recounts_its_own_day_and_the_days_after(db: Session, clock: FrozenClock) -> None:
    # given a group one customer joined today (2026-11-23)
    ws = make_workspace(db, clock=clock)
    group = make_group(db, workspace=ws, clock=clock)
    today_joiner, late_reported = customer_of(db, workspace=ws, clock=clock), customer_of(db, workspace=ws, clock=clock)
    join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=today_joiner.id, at=clock.now(), clock=clock)
    # when a join two days ago (2026-11-21) is reported only now
    join_group(
        db, workspace_id=ws.id, group_id=group.id, customer_id=late_reported.id, at=clock.now() - timedelta(days=2),
        clock=clock,
    )  # fmt: skip
    # then 11-21 ends with one member (not the group's two now), and today counts both
    days = {
        d.day: (d.member_count, d.joined, d.left)
        for d in db.scalars(select(GroupDay).where(GroupDay.group_id == group.id))
    }
    assert days == {date(2026, 11, 21): (1, 1, 0), date(2026, 11, 23): (2, 1, 0)}
    assert refreshed(db, group).member_count == 2
