"""Concurrent joins (real commits): the last seat goes to one customer; a double join opens one stay."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from siyu.community.groups.membership import join_group
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import CommunityGroup, GroupDay, GroupMember
from tests.community.groups.factories import seat
from tests.concurrency import committed_database, outcome_names  # noqa: F401 - fixture `database`: real commits
from tests.factories import actor_for, make_customer, make_group, make_workspace


def _join(database: Database, ws_id: int, group_id: int, customer_id: int, clock: FrozenClock) -> Callable[[], None]:
    def job() -> None:
        with database.transaction() as session:
            join_group(
                session, workspace_id=ws_id, group_id=group_id, customer_id=customer_id, at=clock.now(), clock=clock
            )

    return job


def test_two_joins_for_the_last_seat_one_succeeds(database: Database, clock: FrozenClock) -> None:
    # given a group with one seat left and two customers
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        group = make_group(session, workspace=ws, clock=clock, limit=2)
        seat(session, group=group, clock=clock, count=1)
        ids = [make_customer(session, actor=actor_for(ws), clock=clock).customer.id for _ in range(2)]
        ws_id, group_id = ws.id, group.id
    # when both join at once
    outcomes = sorted(outcome_names([_join(database, ws_id, group_id, c, clock) for c in ids], success="joined"))
    # then one joined, the other was refused, and the group is exactly full
    assert outcomes == ["GroupFull", "joined"]
    with database.session() as session:
        assert session.scalar(select(CommunityGroup.member_count).where(CommunityGroup.id == group_id)) == 2
        assert (
            session.scalar(select(func.count()).select_from(GroupMember).where(GroupMember.group_id == group_id)) == 2
        )
        day = session.scalar(select(GroupDay).where(GroupDay.group_id == group_id))
        assert day is not None and (day.member_count, day.joined) == (2, 2)


def test_the_same_join_reported_at_once_opens_one_stay(database: Database, clock: FrozenClock) -> None:
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        group = make_group(session, workspace=ws, clock=clock, limit=5)
        customer_id = make_customer(session, actor=actor_for(ws), clock=clock).customer.id
        ws_id, group_id = ws.id, group.id
    outcomes = sorted(
        outcome_names([_join(database, ws_id, group_id, customer_id, clock) for _ in range(3)], success="joined")
    )
    assert outcomes == ["joined"] * 3
    with database.session() as session:
        assert session.scalar(select(CommunityGroup.member_count).where(CommunityGroup.id == group_id)) == 1
        assert (
            session.scalar(select(func.count()).select_from(GroupMember).where(GroupMember.group_id == group_id)) == 1
        )
