"""Factories for community group tests (keyword-only, flushed not committed)."""

from __future__ import annotations

from sqlalchemy.orm import Session

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
