"""Rows the commerce and loyalty console tests read: written through the services where they exist."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.commerce.coupons.issuing import issue_coupon
from siyu.commerce.coupons.schemas import CouponTemplateIn
from siyu.commerce.coupons.service import create_template
from siyu.commerce.products import ProductIn, create_product
from siyu.kit.clock import FrozenClock
from siyu.loyalty.members import ensure_member
from siyu.loyalty.points import ledger
from siyu.loyalty.rewards.catalog import create_reward
from siyu.loyalty.rewards.schemas import RewardIn
from siyu.loyalty.rewards.service import redeem
from siyu.loyalty.tiers.catalogue import create_tier
from siyu.loyalty.tiers.schemas import TierIn
from siyu.models import (
    Coupon,
    CouponKind,
    Customer,
    Member,
    Order,
    OrderItem,
    PointsReason,
    Product,
    Redemption,
    Reward,
    RewardKind,
    Tier,
    Workspace,
)
from tests.factories import actor_for, make_customer, make_order

ADDRESS = {"name": "王芳", "phone": "13800138000", "address": "上海市静安区南京西路 1 号"}


@dataclass
class Loyal:
    """A small loyalty world: two tiers, a customer with 500 points, a gift awaiting shipment."""

    actor: Actor
    customer: Customer
    member: Member
    base: Tier
    gold: Tier
    gift: Reward
    redemption: Redemption
    product: Product
    order: Order
    coupon: Coupon


def make_tier(db: Session, *, actor: Actor, clock: FrozenClock, name: str, rank: int, threshold: int = 0) -> Tier:
    return create_tier(db, actor=actor, data=TierIn(name=name, rank=rank, threshold=threshold), clock=clock)


def give_points(db: Session, *, member: Member, points: int, clock: FrozenClock, key: str) -> None:
    ledger.earn(
        db,
        member=member,
        points=points,
        reason=PointsReason.MANUAL,
        description="开卡礼",
        idempotency_key=key,
        clock=clock,
    )


def make_loyal(db: Session, *, workspace: Workspace, clock: FrozenClock, name: str = "王芳") -> Loyal:
    actor = actor_for(workspace)
    base = make_tier(db, actor=actor, clock=clock, name="普通", rank=0)
    gold = make_tier(db, actor=actor, clock=clock, name="高级", rank=1, threshold=100_000)
    customer = make_customer(db, actor=actor, clock=clock, name=name, phone="13800138000").customer
    member = ensure_member(db, workspace_id=workspace.id, customer_id=customer.id, clock=clock)
    give_points(db, member=member, points=500, clock=clock, key=f"welcome:{customer.id}")
    gift = create_reward(
        db,
        actor=actor,
        data=RewardIn(name="帆布包", kind=RewardKind.GIFT, points_price=200, stock=10),
        clock=clock,
    )
    redemption = redeem(
        db,
        workspace_id=workspace.id,
        customer_id=customer.id,
        reward_id=gift.id,
        idempotency_key=f"seed:{customer.id}",
        address=ADDRESS,
        clock=clock,
    )
    product = create_product(
        db, actor=actor, data=ProductIn(sku="SKU-1", name="玫瑰面霜", category="护肤", price_fen=19_900), clock=clock
    )
    order = make_order(
        db, customer=customer, paid_at=clock.now() - timedelta(days=3), total_fen=19_900, external_id="TB1001"
    )
    db.add(
        OrderItem(
            workspace_id=workspace.id,
            order_id=order.id,
            customer_id=customer.id,
            sku="SKU-1",
            product_name="玫瑰面霜",
            category="护肤",
            quantity=1,
            amount_fen=19_900,
            refunded_fen=0,
        )
    )
    template = create_template(
        db,
        actor=actor,
        data=CouponTemplateIn(
            name="满199减20", kind=CouponKind.AMOUNT_OFF, value=2000, threshold_fen=19_900, valid_days=30
        ),
        clock=clock,
    )
    coupon = issue_coupon(
        db,
        workspace_id=workspace.id,
        template_id=template.id,
        customer_id=customer.id,
        source="api",
        idempotency_key=f"seed:{customer.id}",
        clock=clock,
    )
    db.flush()
    return Loyal(actor, customer, member, base, gold, gift, redemption, product, order, coupon)


def paid_at(clock: FrozenClock, days_ago: int) -> datetime:
    return clock.now() - timedelta(days=days_ago)


def count_rows(db: Session, model: type) -> int:
    """Rows of `model` as the database holds them now (after what other sessions committed)."""
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def seed_loyal(db: Session, workspace: Workspace, clock: FrozenClock) -> Loyal:
    """`make_loyal`, committed, so a console server or test client sees it."""
    world = make_loyal(db, workspace=workspace, clock=clock)
    db.commit()
    return world
