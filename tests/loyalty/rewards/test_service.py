"""Redeeming points in the mall: points and stock move together, refusals write nothing, retries
change nothing, limits and visibility hold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.commerce.errors import CouponOutOfStock
from siyu.kit.clock import FrozenClock
from siyu.loyalty.errors import (
    IdempotencyKeyReused,
    InsufficientPoints,
    InvalidAddress,
    OutOfStock,
    RedemptionLimitReached,
    RewardNotFound,
    RewardNotVisible,
)
from siyu.loyalty.points.ledger import balance_from_ledger, earn
from siyu.loyalty.rewards.service import cancel_redemption, mall, member_redemptions, redeem
from siyu.models import (
    Coupon,
    CustomerEvent,
    Member,
    PointsEntry,
    PointsReason,
    Redemption,
    RedemptionStatus,
    Reward,
    RewardKind,
)
from tests.factories import actor_for, make_workspace
from tests.loyalty.member_tasks.factories import make_member, make_tier
from tests.loyalty.rewards.factories import ADDRESS, make_coupon_template, make_reward
from tests.segments.factories import make_segment


def _state(db: Session, member: Member, reward: Reward) -> tuple[Any, ...]:
    """Everything a redemption touches: balance, ledger, entries, redemptions, stock, redeemed count."""
    db.refresh(member)
    db.refresh(reward)
    entries = db.scalar(select(func.count()).where(PointsEntry.member_id == member.id))
    redemptions = db.scalar(select(func.count()).where(Redemption.member_id == member.id))
    return (
        member.points_balance,
        balance_from_ledger(db, member.id),
        entries,
        redemptions,
        reward.stock,
        reward.redeemed_count,
    )


def _redeem(db: Session, member: Member, reward: Reward, clock: FrozenClock, key: str = "k1", **kw: Any) -> Redemption:
    return redeem(
        db,
        workspace_id=member.workspace_id,
        customer_id=member.customer_id,
        reward_id=reward.id,
        idempotency_key=key,
        address=kw.get("address"),
        clock=clock,
    )


def test_redeeming_a_gift_spends_points_reserves_stock_and_awaits_shipment(db: Session, clock: FrozenClock) -> None:
    # given a member with 500 points and a 300-point gift with 5 in stock
    ws = make_workspace(db, clock=clock)
    member = make_member(db, workspace=ws, clock=clock, points=500)
    gift = make_reward(db, workspace=ws, clock=clock, kind=RewardKind.GIFT, name="保温杯", points_price=300, stock=5)
    # when the member redeems it with an address
    redemption = _redeem(db, member, gift, clock, address=ADDRESS)
    # then points and stock moved once, the address is kept (phone in E.164), and it awaits shipment
    assert _state(db, member, gift) == (200, 200, 2, 1, 4, 1)
    assert (redemption.status, redemption.slot, redemption.points) == (RedemptionStatus.AWAITING_SHIPMENT, 1, 300)
    assert redemption.address == {"name": "李雷", "phone": "+8613800138000", "address": "上海市静安区南京西路 1266 号"}
    entry = db.get(PointsEntry, redemption.points_entry_id)
    assert entry is not None
    assert (entry.amount, entry.description, entry.idempotency_key) == (-300, "兑换：保温杯", "redemption:k1")
    assert (entry.source_ref, entry.reason) == (f"redemption:{redemption.id}", PointsReason.REDEEM)
    events = db.scalars(select(CustomerEvent.type).where(CustomerEvent.customer_id == member.customer_id)).all()
    assert "loyalty.redeemed" in events


def test_a_retry_with_the_same_key_changes_nothing_and_another_use_is_refused(db: Session, clock: FrozenClock) -> None:
    # given a member with 500 points and two rewards
    ws = make_workspace(db, clock=clock)
    member = make_member(db, workspace=ws, clock=clock, points=500)
    reward = make_reward(db, workspace=ws, clock=clock, points_price=100, stock=3)
    other = make_reward(db, workspace=ws, clock=clock, points_price=100)
    # when the same redemption is submitted twice, then the key is reused for another reward
    first = _redeem(db, member, reward, clock, key="order-7")
    again = _redeem(db, member, reward, clock, key="order-7")
    with pytest.raises(IdempotencyKeyReused):
        _redeem(db, member, other, clock, key="order-7")
    # then points and stock moved once
    assert again.id == first.id
    assert _state(db, member, reward) == (400, 400, 2, 1, 2, 1)


def test_without_enough_points_nothing_is_written(db: Session, clock: FrozenClock) -> None:
    # given a member with 299 points and a 300-point gift
    ws = make_workspace(db, clock=clock)
    member = make_member(db, workspace=ws, clock=clock, points=299)
    gift = make_reward(db, workspace=ws, clock=clock, kind=RewardKind.GIFT, points_price=300, stock=5)
    before = _state(db, member, gift)
    # when the member tries to redeem it
    with pytest.raises(InsufficientPoints) as refused:
        _redeem(db, member, gift, clock, address=ADDRESS)
    # then it is refused with the numbers, and nothing moved
    assert refused.value.details == {"field": "points", "balance": 299, "required": 300}
    assert _state(db, member, gift) == before == (299, 299, 1, 0, 5, 0)


def test_out_of_stock_is_refused_and_writes_nothing(db: Session, clock: FrozenClock) -> None:
    # given a gift with 1 left and two members with enough points
    ws = make_workspace(db, clock=clock)
    first = make_member(db, workspace=ws, clock=clock, points=500)
    second = make_member(db, workspace=ws, clock=clock, points=500)
    gift = make_reward(db, workspace=ws, clock=clock, kind=RewardKind.GIFT, points_price=100, stock=1)
    # when both redeem it
    _redeem(db, first, gift, clock, key="a", address=ADDRESS)
    with pytest.raises(OutOfStock):
        _redeem(db, second, gift, clock, key="b", address=ADDRESS)
    # then the second member keeps their points and the stock is 0, never below
    assert _state(db, second, gift) == (500, 500, 1, 0, 0, 1)


def test_per_member_limit_is_the_slot_key_and_a_cancel_frees_the_slot(db: Session, clock: FrozenClock) -> None:
    # given a privilege limited to 1 per member
    ws = make_workspace(db, clock=clock)
    member = make_member(db, workspace=ws, clock=clock, points=1000)
    reward = make_reward(db, workspace=ws, clock=clock, points_price=100, per_member_limit=1)
    # when the member redeems it twice
    first = _redeem(db, member, reward, clock, key="a")
    with pytest.raises(RedemptionLimitReached):
        _redeem(db, member, reward, clock, key="b")
    assert _state(db, member, reward) == (900, 900, 2, 1, None, 1)
    # when the first is cancelled and the member redeems again
    cancel_redemption(db, actor=actor_for(ws), redemption_id=first.id, reason="误兑", clock=clock)
    second = _redeem(db, member, reward, clock, key="c")
    # then the cancelled one holds slot -id and the new one slot 1
    assert (first.slot, second.slot) == (-first.id, 1)
    assert _state(db, member, reward) == (900, 900, 4, 2, None, 1)


def test_a_gift_needs_a_valid_address(db: Session, clock: FrozenClock) -> None:
    # given a gift and a member with enough points
    ws = make_workspace(db, clock=clock)
    member = make_member(db, workspace=ws, clock=clock, points=500)
    gift = make_reward(db, workspace=ws, clock=clock, kind=RewardKind.GIFT, points_price=100, stock=5)
    cases = [
        (None, "address.name"),
        ({**ADDRESS, "name": "  "}, "address.name"),
        ({**ADDRESS, "phone": "12345"}, "address.phone"),
        ({**ADDRESS, "address": "上海"}, "address.address"),
    ]
    # when each bad address is sent
    for address, field in cases:
        with pytest.raises(InvalidAddress) as refused:
            _redeem(db, member, gift, clock, address=address)
        # then the field is named
        assert refused.value.details == {"field": field}
    # and nothing was written
    assert _state(db, member, gift) == (500, 500, 1, 0, 5, 0)


def test_visibility_by_tier_and_segment(db: Session, clock: FrozenClock) -> None:
    # given tiers 普通 (base) and 高级, a reward for 高级 only and one for a segment
    ws = make_workspace(db, clock=clock)
    make_tier(db, workspace=ws, clock=clock, name="普通", rank=0)
    gold = make_tier(db, workspace=ws, clock=clock, name="高级", rank=1, threshold=100_000)
    insider = make_member(db, workspace=ws, clock=clock, points=500)
    outsider = make_member(db, workspace=ws, clock=clock, points=500)
    segment = make_segment(db, workspace=ws, clock=clock, members=[insider.customer_id])
    for_gold = make_reward(db, workspace=ws, clock=clock, name="高级专享", visible_tier_ids=[gold.id])
    for_segment = make_reward(db, workspace=ws, clock=clock, name="老客专享", visible_segment_id=segment.id)
    everyone = make_reward(db, workspace=ws, clock=clock, name="人人可兑")
    insider.tier_id = gold.id
    db.flush()
    # when each looks at the mall, and the outsider tries the gold reward
    seen_in = [v.reward.name for v in mall(db, workspace_id=ws.id, customer_id=insider.customer_id, clock=clock)]
    seen_out = [v.reward.name for v in mall(db, workspace_id=ws.id, customer_id=outsider.customer_id, clock=clock)]
    with pytest.raises(RewardNotVisible):
        _redeem(db, outsider, for_gold, clock)
    # then each sees what their tier and segment allow
    assert seen_in == ["高级专享", "老客专享", "人人可兑"]
    assert seen_out == ["人人可兑"]
    assert _redeem(db, insider, for_segment, clock).status == RedemptionStatus.COMPLETED
    assert _state(db, outsider, everyone)[:4] == (500, 500, 1, 0)


def test_mall_says_why_a_reward_cannot_be_redeemed(db: Session, clock: FrozenClock) -> None:
    # given 150 points of which 100 expired yesterday (not yet swept), and four rewards
    ws = make_workspace(db, clock=clock)
    member = make_member(db, workspace=ws, clock=clock, points=50)
    earn(
        db,
        member=member,
        points=100,
        reason=PointsReason.MANUAL,
        description="旧积分",
        idempotency_key="old",
        clock=clock,
        expires_at=clock.now() - timedelta(days=1),
    )
    sold_out = make_reward(db, workspace=ws, clock=clock, name="已兑完", points_price=10, stock=0)
    limited = make_reward(db, workspace=ws, clock=clock, name="限兑一次", points_price=10, per_member_limit=1)
    pricey = make_reward(db, workspace=ws, clock=clock, name="要 60 分", points_price=60)
    cheap = make_reward(db, workspace=ws, clock=clock, name="要 30 分", points_price=30)
    make_reward(db, workspace=ws, clock=clock, name="下架了", is_active=False)
    _redeem(db, member, limited, clock)
    # when the member looks at the mall
    views = mall(db, workspace_id=ws.id, customer_id=member.customer_id, clock=clock)
    # then expired points do not count and each reason is given
    assert [(v.reward.id, v.can_redeem, v.reason, v.redeemed, v.balance) for v in views] == [
        (sold_out.id, False, "out_of_stock", 0, 40),
        (limited.id, False, "limit_reached", 1, 40),
        (pricey.id, False, "insufficient_points", 0, 40),
        (cheap.id, True, None, 0, 40),
    ]


def test_inactive_reward_cannot_be_redeemed(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    member = make_member(db, workspace=ws, clock=clock, points=500)
    reward = make_reward(db, workspace=ws, clock=clock, is_active=False)
    with pytest.raises(RewardNotFound):
        _redeem(db, member, reward, clock)
    assert _state(db, member, reward) == (500, 500, 1, 0, None, 0)


def test_a_coupon_reward_issues_a_coupon_and_the_template_stock_is_respected(db: Session, clock: FrozenClock) -> None:
    # given a coupon template with 1 left and a 50-point coupon reward
    ws = make_workspace(db, clock=clock)
    template = make_coupon_template(db, workspace=ws, clock=clock, total_stock=1)
    reward = make_reward(
        db, workspace=ws, clock=clock, kind=RewardKind.COUPON, points_price=50, coupon_template_id=template.id
    )
    member = make_member(db, workspace=ws, clock=clock, points=500)
    # when the member redeems it twice
    first = _redeem(db, member, reward, clock, key="a")
    with pytest.raises(CouponOutOfStock):
        _redeem(db, member, reward, clock, key="b")
    # then one coupon was issued, keyed by the redemption, and the refused one spent nothing
    coupon = db.get(Coupon, first.coupon_id)
    assert coupon is not None
    assert (coupon.customer_id, coupon.idempotency_key, coupon.source) == (member.customer_id, "redemption:a", "reward")
    assert first.status == RedemptionStatus.COMPLETED
    assert _state(db, member, reward) == (450, 450, 2, 1, None, 1)
    # and the mall shows the coupon reward as gone, since its template can issue no more
    views = mall(db, workspace_id=ws.id, customer_id=member.customer_id, clock=clock)
    assert [(v.reward.id, v.can_redeem, v.reason) for v in views] == [(reward.id, False, "out_of_stock")]


def test_member_redemptions_newest_first(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    member = make_member(db, workspace=ws, clock=clock, points=500)
    reward = make_reward(db, workspace=ws, clock=clock, points_price=10)
    ids = [_redeem(db, member, reward, clock, key=f"k{i}").id for i in range(3)]
    rows = member_redemptions(db, workspace_id=ws.id, customer_id=member.customer_id)
    assert [(r.id, w.id) for r, w in rows] == [(i, reward.id) for i in reversed(ids)]
