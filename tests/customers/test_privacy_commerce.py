"""PIPL export and erase cover orders, the loyalty account, points, coupons and redemptions."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from siyu.customers.service import privacy
from siyu.kit.clock import FrozenClock
from siyu.loyalty.members import ensure_member
from siyu.loyalty.points import ledger
from siyu.models import ParkedOrder, PointsReason, Redemption, RedemptionStatus, Reward, RewardKind
from tests.factories import actor_for, make_customer, make_order, make_workspace


def test_export_and_erase_cover_orders_points_and_redemptions(db: Session, clock: FrozenClock) -> None:
    # given a customer with an order, 300 points of which 100 went on a gift sent to their address
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = make_customer(db, actor=actor, clock=clock, phone="13800138000").customer
    order = make_order(
        db, customer=customer, paid_at=clock.now() - timedelta(days=3), total_fen=30_000, external_id="TB1"
    )
    order.attributes = {"buyer_remark": "放门口，电话 13800138000"}
    member = ensure_member(db, workspace_id=ws.id, customer_id=customer.id, clock=clock)
    ledger.earn(
        db,
        member=member,
        points=300,
        reason=PointsReason.PURCHASE,
        description="订单 TB1 消费得积分",
        idempotency_key="order:TB1",
        clock=clock,
    )
    spent = ledger.spend(db, member=member, points=100, description="兑换 保温杯", idempotency_key="r1", clock=clock)
    now = clock.now()
    reward = Reward(
        workspace_id=ws.id,
        name="保温杯",
        kind=RewardKind.GIFT,
        points_price=100,
        stock=9,
        redeemed_count=1,
        created_at=now,
        updated_at=now,
    )
    db.add(reward)
    db.flush()
    db.add(
        Redemption(
            workspace_id=ws.id,
            reward_id=reward.id,
            member_id=member.id,
            slot=1,
            points=100,
            idempotency_key="r1",
            status=RedemptionStatus.AWAITING_SHIPMENT,
            points_entry_id=spent.entry.id,
            address={"name": "王芳", "phone": "+8613800138000", "address": "上海市静安区南京西路 1 号"},
            created_at=now,
        )
    )
    db.flush()

    parked = ParkedOrder(
        workspace_id=ws.id,
        platform="taobao",
        external_id="TB1",
        payload={"buyer_name": "王芳"},
        identities="phone:+8613800138000",
        reason="unknown buyer",
        created_at=now,
        resolved_at=now,
        order_id=order.id,
    )
    db.add(parked)
    db.flush()

    # when the person asks for their data
    doc = privacy.export_customer(db, actor=actor, customer_id=customer.id, clock=clock)

    # then it holds the order, the balance, both ledger entries and the redemption with its address
    assert [(o["external_id"], o["total_fen"]) for o in doc["orders"]] == [("TB1", 30_000)]
    assert doc["member"]["points_balance"] == 200
    assert [(p["amount"], p["description"]) for p in doc["points"]] == [
        (300, "订单 TB1 消费得积分"),
        (-100, "兑换 保温杯"),
    ]
    assert doc["redemptions"][0]["address"]["address"] == "上海市静安区南京西路 1 号"

    # when they ask to be erased
    privacy.erase_customer(db, actor=actor, customer_id=customer.id, clock=clock)
    db.expire_all()

    # then the order and the ledger stay for the brand's figures, without the address or remark
    assert order.attributes == {}
    assert (parked.identities, parked.payload) == ("", {"erased": True})
    redemption = db.query(Redemption).one()
    assert redemption.address is None
    assert redemption.points == 100
    assert ledger.balance_from_ledger(db, member.id) == 200
