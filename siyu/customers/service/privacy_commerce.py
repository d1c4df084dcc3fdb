"""The commerce and loyalty part of a PIPL export or erase: orders, coupons, points, redemptions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.models import (
    Coupon,
    Member,
    Order,
    OrderItem,
    ParkedOrder,
    PointsEntry,
    PointsReason,
    Redemption,
    Refund,
    Reward,
    TierChange,
    TierChangeReason,
)


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def commerce_export(session: Session, customer_id: int) -> dict[str, Any]:
    """Orders (with items and refunds), the loyalty account, points history, coupons and redemptions."""
    orders = session.scalars(select(Order).where(Order.customer_id == customer_id).order_by(Order.paid_at)).all()
    order_ids = [o.id for o in orders]
    items = session.scalars(select(OrderItem).where(OrderItem.order_id.in_(order_ids))).all() if order_ids else []
    refunds = session.scalars(select(Refund).where(Refund.order_id.in_(order_ids))).all() if order_ids else []
    member = session.scalar(select(Member).where(Member.customer_id == customer_id))
    document: dict[str, Any] = {
        "orders": [
            {
                "platform": o.platform,
                "external_id": o.external_id,
                "status": o.status,
                "total_fen": o.total_fen,
                "refunded_fen": o.refunded_fen,
                "paid_at": _json(o.paid_at),
                "coupon_code": o.coupon_code,
                "items": [
                    {"sku": i.sku, "name": i.product_name, "quantity": i.quantity, "amount_fen": i.amount_fen}
                    for i in items
                    if i.order_id == o.id
                ],
                "refunds": [
                    {"amount_fen": r.amount_fen, "reason": r.reason, "refunded_at": _json(r.refunded_at)}
                    for r in refunds
                    if r.order_id == o.id
                ],
            }
            for o in orders
        ],
        "coupons": [
            {
                "code": c.code,
                "state": c.state,
                "source": c.source,
                "issued_at": _json(c.issued_at),
                "expires_at": _json(c.expires_at),
                "redeemed_at": _json(c.redeemed_at),
            }
            for c in session.scalars(select(Coupon).where(Coupon.customer_id == customer_id).order_by(Coupon.id))
        ],
        "member": None,
        "points": [],
        "tier_changes": [],
        "redemptions": [],
    }
    if member is not None:
        document["member"] = {
            "tier_id": member.tier_id,
            "earned_tier_id": member.earned_tier_id,
            "paid_tier_id": member.paid_tier_id,
            "paid_tier_until": _json(member.paid_tier_until),
            "points_balance": member.points_balance,
            "points_debt": member.points_debt,
            "created_at": _json(member.created_at),
        }
        document["points"] = [
            {"amount": e.amount, "reason": e.reason, "description": e.description, "at": _json(e.occurred_at)}
            for e in session.scalars(
                select(PointsEntry).where(PointsEntry.member_id == member.id).order_by(PointsEntry.id)
            )
        ]
        document["tier_changes"] = [
            {
                "reason": c.reason,
                "from_tier_id": c.from_tier_id,
                "to_tier_id": c.to_tier_id,
                "detail": c.detail,
                "changed_at": _json(c.changed_at),
            }
            for c in session.scalars(
                select(TierChange).where(TierChange.member_id == member.id).order_by(TierChange.id)
            )
        ]
        document["redemptions"] = [
            {
                "reward": name,
                "points": r.points,
                "status": r.status,
                "address": r.address,
                "tracking_no": r.tracking_no,
                "created_at": _json(r.created_at),
            }
            for r, name in session.execute(
                select(Redemption, Reward.name)
                .join(Reward, Reward.id == Redemption.reward_id)
                .where(Redemption.member_id == member.id)
                .order_by(Redemption.id)
            )
        ]
    return document


def commerce_erase(session: Session, customer_ids: list[int]) -> None:
    """Keep orders, points and redemptions for the brand's figures, without what identifies the person:
    the platform's extra order fields (buyer remarks, addresses) and gift delivery addresses."""
    session.execute(
        update(Order).where(Order.customer_id.in_(customer_ids)).values(attributes={}),
        execution_options={"synchronize_session": False},
    )
    member_ids = select(Member.id).where(Member.customer_id.in_(customer_ids))
    session.execute(
        update(Redemption).where(Redemption.member_id.in_(member_ids)).values(address=None),
        execution_options={"synchronize_session": False},
    )
    # A parked order that became one of theirs still holds the buyer as submitted (phone, name).
    session.execute(
        update(ParkedOrder)
        .where(ParkedOrder.order_id.in_(select(Order.id).where(Order.customer_id.in_(customer_ids))))
        .values(identities="", payload={"erased": True}),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        update(Refund)
        .where(Refund.order_id.in_(select(Order.id).where(Order.customer_id.in_(customer_ids))))
        .values(reason=None),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        update(Redemption).where(Redemption.member_id.in_(member_ids)).values(cancel_reason=None),
        execution_options={"synchronize_session": False},
    )
    # Operators' free text can name the person: manual adjustments and tier changes keep their amounts.
    session.execute(
        update(PointsEntry)
        .where(PointsEntry.member_id.in_(member_ids), PointsEntry.reason == PointsReason.ADJUST)
        .values(description="人工调整"),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        update(TierChange)
        .where(TierChange.member_id.in_(member_ids), TierChange.reason == TierChangeReason.MANUAL)
        .values(detail=None),
        execution_options={"synchronize_session": False},
    )
