"""Factories for rewards (keyword-only, flushed not committed)."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.models import CouponKind, CouponOffer, CouponTemplate, CouponTemplateStatus, Reward, RewardKind, Workspace

_seq = itertools.count(1)

ADDRESS = {"name": "李雷", "phone": "138 0013 8000", "address": "上海市静安区南京西路 1266 号"}


def make_reward(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    kind: RewardKind = RewardKind.PRIVILEGE,
    name: str | None = None,
    points_price: int = 100,
    stock: int | None = None,
    per_member_limit: int | None = None,
    **values: Any,
) -> Reward:
    reward = Reward(
        workspace_id=workspace.id,
        name=name or f"礼品{next(_seq)}",
        kind=kind,
        points_price=points_price,
        stock=stock,
        redeemed_count=0,
        per_member_limit=per_member_limit,
        visible_tier_ids=values.pop("visible_tier_ids", []),
        is_active=values.pop("is_active", True),
        sort_order=values.pop("sort_order", 0),
        created_at=clock.now(),
        updated_at=clock.now(),
        **values,
    )
    db.add(reward)
    db.flush()
    return reward


def make_coupon_template(
    db: Session, *, workspace: Workspace, clock: Clock, total_stock: int | None = None, per_customer_limit: int = 5
) -> CouponTemplate:
    template = CouponTemplate(
        workspace_id=workspace.id,
        name=f"满100减20-{next(_seq)}",
        kind=CouponKind.AMOUNT_OFF,
        value=2000,
        threshold_fen=10_000,
        valid_days=30,
        per_customer_limit=per_customer_limit,
        total_stock=total_stock,
        issued_count=0,
        channels=[],
        offer=CouponOffer.NONE,
        offer_settings={},
        status=CouponTemplateStatus.ACTIVE,
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    db.add(template)
    db.flush()
    return template
