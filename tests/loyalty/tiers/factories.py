"""Loyalty-core test factories: a program, the 普通 / 高级 / 尊享 ladder with a paid 黑卡, orders and refunds."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import Clock
from siyu.loyalty.program import get_program
from siyu.models import Customer, LoyaltyProgram, Order, OrderStatus, Refund, Tier, Workspace
from tests.factories import make_customer

_seq = itertools.count(1)


@dataclass
class Ladder:
    base: Tier
    silver: Tier
    gold: Tier
    black: Tier


def make_program(db: Session, *, workspace: Workspace, clock: Clock, **values: Any) -> LoyaltyProgram:
    """The workspace's program with `values` set (defaults: 1 point per yuan, spend over 365 days,
    quarterly review, 30 days' grace, points expiring at the end of next year)."""
    program = get_program(db, workspace.id, clock=clock)
    for name, value in values.items():
        setattr(program, name, value)
    db.flush()
    return program


def make_tier(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    name: str,
    rank: int,
    threshold: int = 0,
    multiplier_pct: int = 100,
    is_paid: bool = False,
    price_fen: int | None = None,
    validity_days: int | None = None,
    benefits: dict[str, Any] | None = None,
) -> Tier:
    tier = Tier(
        workspace_id=workspace.id,
        name=name,
        rank=rank,
        threshold=threshold,
        is_paid=is_paid,
        price_fen=price_fen,
        validity_days=validity_days,
        points_multiplier_pct=multiplier_pct,
        benefits=benefits or {},
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    db.add(tier)
    db.flush()
    return tier


def make_ladder(db: Session, *, workspace: Workspace, clock: Clock) -> Ladder:
    """普通 (0), 高级 (¥1,000, 1.2×), 尊享 (¥5,000, 1.5×) and a paid 黑卡 (¥299 a year, 2×)."""
    return Ladder(
        base=make_tier(db, workspace=workspace, clock=clock, name="普通", rank=0),
        silver=make_tier(
            db, workspace=workspace, clock=clock, name="高级", rank=1, threshold=100_000, multiplier_pct=120
        ),
        gold=make_tier(
            db, workspace=workspace, clock=clock, name="尊享", rank=2, threshold=500_000, multiplier_pct=150
        ),
        black=make_tier(
            db,
            workspace=workspace,
            clock=clock,
            name="黑卡",
            rank=3,
            is_paid=True,
            price_fen=29_900,
            validity_days=365,
            multiplier_pct=200,
        ),
    )


def new_customer(db: Session, *, workspace: Workspace, clock: Clock) -> Customer:
    return make_customer(db, actor=Actor.system(workspace.id), clock=clock).customer


def place_order(
    db: Session, *, customer: Customer, clock: Clock, total_fen: int, paid_at: datetime | None = None
) -> Order:
    """An order as the orders area writes it (written now, paid at `paid_at` or now)."""
    order = Order(
        workspace_id=customer.workspace_id,
        customer_id=customer.id,
        platform="taobao",
        external_id=f"TB{next(_seq):06d}",
        status=OrderStatus.PAID,
        total_fen=total_fen,
        refunded_fen=0,
        paid_at=paid_at or clock.now(),
        created_at=clock.now(),
    )
    db.add(order)
    db.flush()
    return order


def refund(db: Session, *, order: Order, clock: Clock, amount_fen: int) -> Refund:
    """A refund row and the order's refunded total, as the orders area writes them."""
    row = Refund(
        workspace_id=order.workspace_id,
        order_id=order.id,
        external_id=f"R{next(_seq)}",
        amount_fen=amount_fen,
        refunded_at=clock.now(),
        created_at=clock.now(),
    )
    order.refunded_fen += amount_fen
    order.status = OrderStatus.REFUNDED if order.refunded_fen >= order.total_fen else OrderStatus.PARTIALLY_REFUNDED
    db.add(row)
    db.flush()
    return row
