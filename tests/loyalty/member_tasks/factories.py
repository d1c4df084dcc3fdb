"""Factories for member tasks and members with points (keyword-only, flushed not committed)."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import Clock
from siyu.loyalty.members import ensure_member
from siyu.loyalty.points.ledger import earn
from siyu.models import Customer, LimitPeriod, LoyaltyTask, Member, PointsReason, TaskKind, Tier, Workspace
from tests.factories import make_customer

_seq = itertools.count(1)


def make_task(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    kind: TaskKind = TaskKind.POST,
    key: str | None = None,
    name: str | None = None,
    points: int = 10,
    limit_period: LimitPeriod = LimitPeriod.DAY,
    limit_count: int = 1,
    streak_bonuses: dict[str, int] | None = None,
    settings: dict[str, Any] | None = None,
    is_active: bool = True,
) -> LoyaltyTask:
    task = LoyaltyTask(
        workspace_id=workspace.id,
        key=key or ("check_in" if kind == TaskKind.CHECK_IN else f"task-{next(_seq)}"),
        kind=kind,
        name=name or ("每日签到" if kind == TaskKind.CHECK_IN else "晒单"),
        points=points,
        limit_period=limit_period,
        limit_count=limit_count,
        streak_bonuses=streak_bonuses or {},
        settings=settings or {},
        is_active=is_active,
        sort_order=0,
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    db.add(task)
    db.flush()
    return task


def make_tier(db: Session, *, workspace: Workspace, clock: Clock, name: str, rank: int, threshold: int = 0) -> Tier:
    tier = Tier(
        workspace_id=workspace.id,
        name=name,
        rank=rank,
        threshold=threshold,
        is_paid=False,
        points_multiplier_pct=100,
        benefits={},
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    db.add(tier)
    db.flush()
    return tier


def make_member(
    db: Session, *, workspace: Workspace, clock: Clock, points: int = 0, customer: Customer | None = None, **values: Any
) -> Member:
    """A customer with a member row holding `points` (earned through the ledger, one lot)."""
    if customer is None:
        customer = make_customer(db, actor=Actor.system(workspace.id), clock=clock, **values).customer
    member = ensure_member(db, workspace_id=workspace.id, customer_id=customer.id, clock=clock)
    if points:
        earn(
            db,
            member=member,
            points=points,
            reason=PointsReason.MANUAL,
            description="测试积分",
            idempotency_key=f"test-grant:{member.id}:{next(_seq)}",
            clock=clock,
        )
    return member
