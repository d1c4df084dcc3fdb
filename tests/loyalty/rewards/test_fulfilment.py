"""Fulfilment of gifts: awaiting shipment → shipped → delivered; cancelling gives points and stock back."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import FrozenClock
from siyu.loyalty.errors import InvalidTransition, RedemptionNotFound
from siyu.loyalty.points.ledger import balance_from_ledger
from siyu.loyalty.rewards.service import (
    cancel_redemption,
    deliver_redemption,
    list_redemptions,
    redeem,
    ship_redemption,
)
from siyu.models import (
    AuditEntry,
    Member,
    PointsEntry,
    PointsLot,
    Redemption,
    RedemptionStatus,
    Reward,
    RewardKind,
    Role,
    Workspace,
)
from tests.factories import actor_for, make_customer, make_staff, make_workspace
from tests.loyalty.member_tasks.factories import make_member
from tests.loyalty.rewards.factories import ADDRESS, make_coupon_template, make_reward


def _gift(db: Session, clock: FrozenClock, **kw: object) -> tuple[Member, Reward, Redemption]:
    ws = make_workspace(db, clock=clock)
    member = make_member(db, workspace=ws, clock=clock, points=500, **kw)
    gift = make_reward(db, workspace=ws, clock=clock, kind=RewardKind.GIFT, name="帆布袋", points_price=300, stock=2)
    redemption = redeem(
        db,
        workspace_id=ws.id,
        customer_id=member.customer_id,
        reward_id=gift.id,
        idempotency_key="r1",
        address=ADDRESS,
        clock=clock,
    )
    return member, gift, redemption


def test_ship_then_deliver_with_retries(db: Session, clock: FrozenClock) -> None:
    # given a gift awaiting shipment
    member, _, redemption = _gift(db, clock)
    operator = actor_for_ws(db, member)
    # when it is delivered too early, then shipped twice with the same number, then delivered twice
    with pytest.raises(InvalidTransition):
        deliver_redemption(db, actor=operator, redemption_id=redemption.id, clock=clock)
    shipped = ship_redemption(
        db, actor=operator, redemption_id=redemption.id, tracking_no=" SF1234567890 ", clock=clock
    )
    again = ship_redemption(db, actor=operator, redemption_id=redemption.id, tracking_no="SF1234567890", clock=clock)
    with pytest.raises(InvalidTransition):
        ship_redemption(db, actor=operator, redemption_id=redemption.id, tracking_no="YT999", clock=clock)
    delivered = deliver_redemption(db, actor=operator, redemption_id=redemption.id, clock=clock)
    deliver_redemption(db, actor=operator, redemption_id=redemption.id, clock=clock)
    # then it moved through the states once each, audited
    assert (shipped.id, again.id) == (redemption.id, redemption.id)
    assert (delivered.status, delivered.tracking_no, delivered.shipped_at, delivered.delivered_at) == (
        RedemptionStatus.DELIVERED,
        "SF1234567890",
        clock.now(),
        clock.now(),
    )
    actions = db.scalars(
        select(AuditEntry.action).where(AuditEntry.entity_type == "redemption").order_by(AuditEntry.id)
    ).all()
    assert actions == ["redemption.shipped", "redemption.delivered"]
    # and a delivered gift cannot be cancelled
    with pytest.raises(InvalidTransition):
        cancel_redemption(db, actor=operator, redemption_id=redemption.id, reason=None, clock=clock)


def actor_for_ws(db: Session, member: Member) -> Actor:
    workspace = db.get(Workspace, member.workspace_id)
    assert workspace is not None
    return actor_for(workspace, role=Role.OPERATOR)


def test_cancel_before_shipping_restores_points_to_their_lots_and_the_stock(db: Session, clock: FrozenClock) -> None:
    # given a 300-point gift redeemed from 500 points (stock 2 → 1)
    member, gift, redemption = _gift(db, clock)
    operator = actor_for_ws(db, member)
    # when an operator cancels it, twice
    cancelled = cancel_redemption(db, actor=operator, redemption_id=redemption.id, reason="缺货", clock=clock)
    cancel_redemption(db, actor=operator, redemption_id=redemption.id, reason="缺货", clock=clock)
    # then the points are back in their lot, the stock is back, and the slot is free
    db.refresh(member)
    db.refresh(gift)
    assert (member.points_balance, balance_from_ledger(db, member.id)) == (500, 500)
    assert db.scalars(select(PointsLot.remaining).where(PointsLot.member_id == member.id)).all() == [500]
    restore = db.scalars(select(PointsEntry).where(PointsEntry.member_id == member.id).order_by(PointsEntry.id)).all()[
        -1
    ]
    assert (restore.amount, restore.description, restore.idempotency_key) == (
        300,
        "取消兑换：帆布袋，积分退回",
        f"cancel:redemption:{redemption.id}",
    )
    assert (gift.stock, gift.redeemed_count) == (2, 0)
    assert (cancelled.status, cancelled.cancel_reason, cancelled.slot) == (
        RedemptionStatus.CANCELLED,
        "缺货",
        -redemption.id,
    )
    # and a cancelled gift cannot ship
    with pytest.raises(InvalidTransition):
        ship_redemption(db, actor=operator, redemption_id=redemption.id, tracking_no="SF1", clock=clock)


def test_staff_see_and_fulfil_only_their_customers_redemptions(db: Session, clock: FrozenClock) -> None:
    # given a redemption by a customer owned by no one, one by a staff member's customer, and a
    # store manager of no store
    member, _, redemption = _gift(db, clock)
    ws = db.get(Workspace, member.workspace_id)
    assert ws is not None
    staff = make_staff(db, workspace=ws, clock=clock)
    own = make_customer(db, actor=actor_for(ws), clock=clock, owner_staff_id=staff.id).customer
    mine = make_member(db, workspace=ws, clock=clock, points=500, customer=own)
    gift = db.get(Reward, redemption.reward_id)
    assert gift is not None
    their = redeem(
        db,
        workspace_id=ws.id,
        customer_id=mine.customer_id,
        reward_id=gift.id,
        idempotency_key="r2",
        address=ADDRESS,
        clock=clock,
    )
    staff_actor = actor_for(ws, role=Role.STAFF, staff_id=staff.id)
    # when the staff member lists redemptions and opens the other one
    page = list_redemptions(db, actor=staff_actor)
    other_store = actor_for(ws, role=Role.STORE_MANAGER, store_id=None)
    with pytest.raises(RedemptionNotFound):
        cancel_redemption(db, actor=other_store, redemption_id=their.id, reason=None, clock=clock)
    # then only their customer's redemption is visible, and nothing changed
    assert [r.id for r in page.items] == [their.id]
    assert [
        r.id for r in list_redemptions(db, actor=actor_for(ws), status=RedemptionStatus.AWAITING_SHIPMENT).items
    ] == [
        their.id,
        redemption.id,
    ]
    db.refresh(their)
    assert their.status == RedemptionStatus.AWAITING_SHIPMENT


def test_a_privilege_can_be_cancelled_but_a_coupon_reward_cannot(db: Session, clock: FrozenClock) -> None:
    # given a member who redeemed a 100-point privilege and a 50-point coupon reward
    ws = make_workspace(db, clock=clock)
    member = make_member(db, workspace=ws, clock=clock, points=500)
    privilege = make_reward(db, workspace=ws, clock=clock, points_price=100, stock=3)
    template = make_coupon_template(db, workspace=ws, clock=clock)
    coupon = make_reward(
        db, workspace=ws, clock=clock, kind=RewardKind.COUPON, points_price=50, coupon_template_id=template.id
    )
    made = [
        redeem(
            db,
            workspace_id=ws.id,
            customer_id=member.customer_id,
            reward_id=reward.id,
            idempotency_key=f"k{reward.id}",
            address=None,
            clock=clock,
        )
        for reward in (privilege, coupon)
    ]
    operator = actor_for(ws)
    # when the operator cancels both
    cancelled = cancel_redemption(db, actor=operator, redemption_id=made[0].id, reason=None, clock=clock)
    with pytest.raises(InvalidTransition):
        cancel_redemption(db, actor=operator, redemption_id=made[1].id, reason=None, clock=clock)
    # then the privilege's points and stock came back; the coupon's redemption stands
    db.refresh(member)
    db.refresh(privilege)
    assert (cancelled.status, member.points_balance, privilege.stock) == (RedemptionStatus.CANCELLED, 450, 3)
    assert made[1].status == RedemptionStatus.COMPLETED
