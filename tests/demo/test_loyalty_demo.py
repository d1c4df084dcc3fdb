"""The demo brand's loyalty: program, tiers, points from its orders, check-ins, coupons and rewards.

The brand of 300 customers at the test clock is deterministic, so the counts are exact."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.demo import build_demo
from siyu.demo.loyalty import build_loyalty
from siyu.demo.products import PRODUCTS
from siyu.kit.clock import FrozenClock
from siyu.loyalty.points import ledger
from siyu.models import (
    Coupon,
    LoyaltyProgram,
    LoyaltyTask,
    Member,
    Order,
    PointsEntry,
    PointsLot,
    Product,
    Redemption,
    Reward,
    TaskCompletion,
    Tier,
    TierChange,
)

CUSTOMERS = 300


@pytest.fixture
def built(database: Database, clock: FrozenClock) -> Iterator[None]:
    assert build_demo(database, customers=CUSTOMERS, clock=clock) is True
    assert build_loyalty(database, clock=clock) is True
    yield


def _count(db: Session, model: type) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def test_program_tiers_members_and_their_points(built: None, db: Session) -> None:
    program = db.scalars(select(LoyaltyProgram)).one()
    assert (program.points_per_yuan, program.expiry_policy, program.expiry_n, program.tier_basis) == (
        1,
        "year_end",
        1,
        "spend",
    )
    tiers = [
        (t.name, t.rank, t.threshold, t.is_paid, t.points_multiplier_pct)
        for t in db.scalars(select(Tier).order_by(Tier.rank))
    ]
    assert tiers == [
        ("普通", 0, 0, False, 100),
        ("高级", 1, 100_000, False, 120),
        ("尊享", 2, 300_000, False, 150),
        ("黑卡", 3, 0, True, 200),
    ]
    assert sorted(db.scalars(select(Product.sku))) == sorted(p.sku for p in PRODUCTS)
    assert sorted(db.scalars(select(LoyaltyTask.key))) == ["check_in", "post", "profile", "share"]
    # every pool buyer is a member, with points from the ledger
    members = db.scalars(select(Member)).all()
    tiers = {t.id: t.name for t in db.scalars(select(Tier))}
    assert len(members) == 153
    assert Counter(tiers[m.tier_id] for m in members if m.tier_id) == {"普通": 123, "高级": 27, "黑卡": 3}
    # the cached balance is the ledger's sum and the lots' remaining points, for every member
    for member in members:
        lots = db.scalar(
            select(func.coalesce(func.sum(PointsLot.remaining), 0)).where(PointsLot.member_id == member.id)
        )
        assert member.points_balance == ledger.balance_from_ledger(db, member.id) == lots >= 0, member.id
    assert sum(m.points_balance for m in members) == 105_346
    assert Counter(db.scalars(select(PointsEntry.reason))) == {
        "purchase": 228,
        "check_in": 352,
        "redeem": 15,
        "cancel": 1,
    }
    # each purchase entry names its order, and only orders of members earned
    keys = set(db.scalars(select(PointsEntry.idempotency_key).where(PointsEntry.reason == "purchase")))
    orders = set(db.scalars(select(Order.id)))
    assert {int(key.split(":")[1]) for key in keys} <= orders
    assert Counter(db.scalars(select(TierChange.reason))) == {"joined": 153, "qualified": 33, "paid": 3}


def test_check_ins_coupons_and_redemptions_in_every_state(
    built: None, database: Database, clock: FrozenClock, db: Session
) -> None:
    assert _count(db, TaskCompletion) == 302
    assert Counter(db.scalars(select(Coupon.state))) == {"issued": 23, "redeemed": 12, "expired": 8, "void": 2}
    assert _count(db, Reward) == 4
    assert Counter(db.scalars(select(Redemption.status))) == {
        "completed": 9,
        "awaiting_shipment": 1,
        "shipped": 2,
        "delivered": 2,
        "cancelled": 1,
    }
    gift = db.scalars(select(Reward).where(Reward.kind == "gift")).one()
    assert (gift.stock, gift.redeemed_count) == (45, 5)
    shipped = db.scalars(select(Redemption.tracking_no).where(Redemption.status.in_(["shipped", "delivered"]))).all()
    assert sorted(shipped) == ["SF1400000000", "SF1400000001", "SF1400000002", "SF1400000003"]
    # a second run finds the tiers and changes nothing
    entries = _count(db, PointsEntry)
    assert build_loyalty(database, clock=clock) is False
    assert _count(db, PointsEntry) == entries
