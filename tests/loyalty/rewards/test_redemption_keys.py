"""A client's redemption key cannot take the key the cancellation of another redemption writes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.loyalty.points.ledger import balance_from_ledger
from siyu.loyalty.rewards.service import cancel_redemption, redeem
from siyu.models import PointsEntry, RedemptionStatus, RewardKind, Role
from tests.factories import actor_for, make_workspace
from tests.loyalty.member_tasks.factories import make_member
from tests.loyalty.rewards.factories import ADDRESS, make_reward


def test_a_redemption_keyed_like_a_cancellation_does_not_block_that_cancellation(
    db: Session, clock: FrozenClock
) -> None:
    # given a member with 500 points who redeemed a 200-point gift, then another with the key
    # "{first redemption's id}:cancel"
    ws = make_workspace(db, clock=clock)
    member = make_member(db, workspace=ws, clock=clock, points=500)
    gift = make_reward(db, workspace=ws, clock=clock, kind=RewardKind.GIFT, name="帆布袋", points_price=200, stock=5)
    kwargs = dict(workspace_id=ws.id, customer_id=member.customer_id, reward_id=gift.id, address=ADDRESS, clock=clock)
    first = redeem(db, idempotency_key="r1", **kwargs)  # type: ignore[arg-type]
    second = redeem(db, idempotency_key=f"{first.id}:cancel", **kwargs)  # type: ignore[arg-type]
    # when an operator cancels the first
    cancelled = cancel_redemption(
        db, actor=actor_for(ws, role=Role.OPERATOR), redemption_id=first.id, reason="缺货", clock=clock
    )
    # then its 200 points come back (100 + 200 = 300) and the second redemption stands
    assert (cancelled.status, second.status) == (RedemptionStatus.CANCELLED, RedemptionStatus.AWAITING_SHIPMENT)
    db.refresh(member)
    assert member.points_balance == 300 == balance_from_ledger(db, member.id)
    keys = db.execute(
        select(PointsEntry.idempotency_key, PointsEntry.amount)
        .where(PointsEntry.member_id == member.id, PointsEntry.amount != 500)
        .order_by(PointsEntry.id)
    ).all()
    assert [tuple(k) for k in keys] == [
        ("redemption:r1", -200),
        (f"redemption:{first.id}:cancel", -200),
        (f"cancel:redemption:{first.id}", 200),
    ]
