"""A loyalty setup for the member H5 pages: tiers, a check-in task, a member with points, rewards, coupons.

Rows are written directly (flushed, not committed), so these tests depend only on the models and
the ledger, not on other areas' CRUD services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.loyalty.members import ensure_member
from siyu.loyalty.points.ledger import earn
from siyu.models import (
    Coupon,
    CouponKind,
    CouponState,
    CouponTemplate,
    Customer,
    LimitPeriod,
    LoyaltyTask,
    Member,
    PointsReason,
    Reward,
    RewardKind,
    TaskKind,
    Tier,
    Workspace,
)
from tests.factories import actor_for, make_customer, make_workspace


@dataclass
class Loyalty:
    workspace: Workspace
    base: Tier
    silver: Tier
    gold: Tier
    check_in: LoyaltyTask


def make_tier(
    db: Session, *, workspace: Workspace, clock: Clock, name: str, rank: int, threshold: int, **values: Any
) -> Tier:
    tier = Tier(
        workspace_id=workspace.id,
        name=name,
        rank=rank,
        threshold=threshold,
        created_at=clock.now(),
        updated_at=clock.now(),
        **values,
    )
    db.add(tier)
    db.flush()
    return tier


def make_task(
    db: Session, *, workspace: Workspace, clock: Clock, key: str, kind: TaskKind, points: int, **values: Any
) -> LoyaltyTask:
    task = LoyaltyTask(
        workspace_id=workspace.id,
        key=key,
        kind=kind,
        name=values.pop("name", key),
        points=points,
        limit_period=values.pop("limit_period", LimitPeriod.DAY),
        created_at=clock.now(),
        updated_at=clock.now(),
        **values,
    )
    db.add(task)
    db.flush()
    return task


def make_loyalty(db: Session, *, clock: Clock, workspace: Workspace | None = None) -> Loyalty:
    """普通 (base) / 高级 (¥1,000 in the window) / 尊享 (¥5,000), and a daily check-in of 5 points
    with a 10-point bonus on a 3-day streak."""
    ws = workspace or make_workspace(db, clock=clock, name="花间集")
    base = make_tier(db, workspace=ws, clock=clock, name="普通会员", rank=0, threshold=0)
    silver = make_tier(
        db,
        workspace=ws,
        clock=clock,
        name="高级会员",
        rank=1,
        threshold=100_000,
        points_multiplier_pct=150,
        benefits={"free_shipping": True, "member_price_pct": 95},
    )
    gold = make_tier(
        db, workspace=ws, clock=clock, name="尊享会员", rank=2, threshold=500_000, points_multiplier_pct=200
    )
    check_in = make_task(
        db,
        workspace=ws,
        clock=clock,
        key="check_in",
        kind=TaskKind.CHECK_IN,
        points=5,
        name="每日签到",
        streak_bonuses={"3": 10},
    )
    return Loyalty(workspace=ws, base=base, silver=silver, gold=gold, check_in=check_in)


def make_member(
    db: Session, *, workspace: Workspace, clock: Clock, points: int = 0, name: str = "王芳", phone: str | None = None
) -> tuple[Customer, Member]:
    """A customer with a member row (base tier) and `points` earned now through the ledger."""
    customer = make_customer(db, actor=actor_for(workspace), clock=clock, name=name, phone=phone).customer
    member = ensure_member(db, workspace_id=workspace.id, customer_id=customer.id, clock=clock)
    if points:
        earn(
            db,
            member=member,
            points=points,
            reason=PointsReason.MANUAL,
            description="开卡礼",
            idempotency_key=f"test:welcome:{customer.id}",
            clock=clock,
        )
    db.flush()
    return customer, member


def earn_points(
    db: Session,
    *,
    member: Member,
    points: int,
    clock: Clock,
    key: str,
    description: str = "订单 TB1 消费得积分",
    expires_at: datetime | None = None,
    reason: PointsReason = PointsReason.PURCHASE,
) -> None:
    earn(
        db,
        member=member,
        points=points,
        reason=reason,
        description=description,
        idempotency_key=key,
        clock=clock,
        expires_at=expires_at,
    )


def make_reward(
    db: Session, *, workspace: Workspace, clock: Clock, name: str, kind: RewardKind, points_price: int, **values: Any
) -> Reward:
    reward = Reward(
        workspace_id=workspace.id,
        name=name,
        kind=kind,
        points_price=points_price,
        created_at=clock.now(),
        updated_at=clock.now(),
        **values,
    )
    db.add(reward)
    db.flush()
    return reward


def make_coupon(
    db: Session,
    *,
    customer: Customer,
    clock: Clock,
    code: str,
    template: CouponTemplate | None = None,
    state: CouponState = CouponState.ISSUED,
    expires_in: timedelta | None = timedelta(days=30),
) -> Coupon:
    if template is None:
        template = make_coupon_template(db, workspace_id=customer.workspace_id, clock=clock, name=f"满100减20 {code}")
    coupon = Coupon(
        workspace_id=customer.workspace_id,
        template_id=template.id,
        customer_id=customer.id,
        code=code,
        slot=1,
        state=state,
        source="api",
        idempotency_key=f"test:{code}",
        issued_at=clock.now(),
        valid_from=clock.now(),
        expires_at=clock.now() + expires_in if expires_in is not None else None,
        redeemed_at=clock.now() if state == CouponState.REDEEMED else None,
    )
    db.add(coupon)
    db.flush()
    return coupon


def make_coupon_template(
    db: Session,
    *,
    workspace_id: int,
    clock: Clock,
    name: str,
    kind: CouponKind = CouponKind.AMOUNT_OFF,
    value: int = 2_000,
    threshold_fen: int = 10_000,
    **values: Any,
) -> CouponTemplate:
    template = CouponTemplate(
        workspace_id=workspace_id,
        name=name,
        kind=kind,
        value=value,
        threshold_fen=threshold_fen,
        valid_days=30,
        created_at=clock.now(),
        updated_at=clock.now(),
        **values,
    )
    db.add(template)
    db.flush()
    return template
