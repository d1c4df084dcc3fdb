"""Factories for community group tests (keyword-only, flushed not committed)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from siyu.community.groups.membership import join_group
from siyu.kit.clock import Clock
from siyu.models import CommunityGroup, Customer, Workspace
from tests.factories import actor_for, make_customer


def customer_of(
    db: Session, *, workspace: Workspace, clock: Clock, name: str = "王小明", phone: str | None = None
) -> Customer:
    """A customer of the workspace (ingested like a real one)."""
    return make_customer(db, actor=actor_for(workspace), clock=clock, name=name, phone=phone).customer


def refreshed(db: Session, group: CommunityGroup) -> CommunityGroup:
    db.refresh(group)
    return group


def seat(db: Session, *, group: CommunityGroup, clock: Clock, count: int) -> list[Customer]:
    """`count` new customers joined to the group through `join_group` (seats are never set by hand)."""
    joined = []
    for n in range(count):
        customer = customer_of(db, workspace=_workspace(db, group), clock=clock, name=f"群成员{n}")
        join_group(
            db, workspace_id=group.workspace_id, group_id=group.id, customer_id=customer.id, at=clock.now(), clock=clock
        )
        joined.append(customer)
    return joined


def _workspace(db: Session, group: CommunityGroup) -> Workspace:
    workspace = db.get(Workspace, group.workspace_id)
    assert workspace is not None
    return workspace
