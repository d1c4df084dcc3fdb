"""Demo loyalty: products, tiers, points history, check-ins, coupons and redemptions for the demo brand.

Runs after `build_demo` (and `build_touch`), in one transaction of its own: the catalogue's
products; the program (1 point per yuan, points expire at the end of the next year, tiers on spend
over 365 days, reviewed quarterly with 30 days' grace); tiers 普通 / 高级 (≥ 1,000 yuan, 1.2×) /
尊享 (≥ 3,000 yuan, 1.5×) and the paid 黑卡 (199 yuan a year, 2×); every buyer's purchase points and
upgrades from the brand's orders (`history`, in bulk, consistent with the ledger); then recent
activity through the services (`activity`): paid cards, two weeks of check-ins, coupons and the
rewards mall with redemptions in every state.

Deterministic for a seed and `clock.now()` (but for the coupon codes, random by design).
"""

from __future__ import annotations

import random

from sqlalchemy import select

from siyu.auth.permissions import Actor
from siyu.db import Database
from siyu.demo.loyalty import activity
from siyu.demo.loyalty.history import build_purchase_history
from siyu.demo.products import PRODUCTS
from siyu.kit.clock import Clock
from siyu.loyalty.program import brand_zone
from siyu.loyalty.tiers.catalogue import create_tier, update_program
from siyu.loyalty.tiers.schemas import ProgramIn, TierBenefits, TierIn
from siyu.models import (
    ExpiryPolicy,
    Member,
    Product,
    ReviewPeriod,
    Tier,
    TierBasis,
    TierWindow,
    Workspace,
)
from siyu.workspaces.scope import bind_workspace

__all__ = ["TIERS", "build_loyalty"]

TIERS = (
    TierIn(name="普通", rank=0, threshold=0, color="#8a94a6"),
    TierIn(
        name="高级",
        rank=1,
        threshold=100_000,
        points_multiplier_pct=120,
        benefits=TierBenefits(member_price_pct=95, free_shipping=True),
        color="#2f7bd8",
    ),
    TierIn(
        name="尊享",
        rank=2,
        threshold=300_000,
        points_multiplier_pct=150,
        benefits=TierBenefits(member_price_pct=90, free_shipping=True, priority_service=True),
        color="#b8860b",
    ),
    TierIn(
        name="黑卡",
        rank=3,
        is_paid=True,
        price_fen=19_900,
        validity_days=365,
        points_multiplier_pct=200,
        benefits=TierBenefits(member_price_pct=85, free_shipping=True, priority_service=True),
        color="#1f1f1f",
    ),
)
PROGRAM = ProgramIn(
    points_per_yuan=1,
    expiry_policy=ExpiryPolicy.YEAR_END,
    expiry_n=1,
    tier_basis=TierBasis.SPEND,
    tier_window=TierWindow.ROLLING,
    tier_window_days=365,
    review_period=ReviewPeriod.QUARTERLY,
    grace_days=30,
)
RICHEST = 20


def build_loyalty(database: Database, *, clock: Clock, seed: int = 7) -> bool:
    """Give the demo brand (built by `build_demo`) its loyalty program and history; False (and
    nothing written) if the brand is missing or already has its tiers."""
    with database.transaction() as session:
        workspace = session.scalar(select(Workspace).where(Workspace.slug == "default"))
        if workspace is None:
            return False
        if session.scalar(select(Tier.id).where(Tier.workspace_id == workspace.id)) is not None:
            return False
        bind_workspace(session, workspace.id)
        actor = Actor.system(workspace.id, label="siyu demo")
        rng = random.Random(f"{seed}:loyalty")
        now = clock.now()
        session.add_all(
            Product(
                workspace_id=workspace.id,
                sku=p.sku,
                name=p.name,
                category=p.category,
                price_fen=p.price_fen,
                is_active=True,
                created_at=now,
                updated_at=now,
            )
            for p in PRODUCTS
        )
        update_program(session, actor=actor, data=PROGRAM, clock=clock)
        tiers = [create_tier(session, actor=actor, data=tier, clock=clock) for tier in TIERS]
        activity.tasks(session, actor, clock)
        build_purchase_history(session, workspace_id=workspace.id, clock=clock)
        richest = list(
            session.scalars(
                select(Member.customer_id)
                .where(Member.workspace_id == workspace.id)
                .order_by(Member.points_balance.desc(), Member.id)
                .limit(RICHEST)
            )
        )
        activity.paid_cards(session, workspace.id, tiers[3], richest, clock)
        regulars = list(
            session.scalars(select(Member.customer_id).where(Member.workspace_id == workspace.id).order_by(Member.id))
        )
        rng.shuffle(regulars)
        done = activity.Activity()
        done.check_ins = activity.check_ins(
            session, workspace.id, regulars, clock, brand_zone(session, workspace.id), rng
        )
        template_id = activity.coupons(session, actor, clock, rng, done)
        activity.rewards(session, actor, template_id, richest, clock, done)
    return True
