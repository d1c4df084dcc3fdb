"""Redeeming a coupon against an order, and giving it back when the order is fully refunded."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.commerce.coupons.issuing import normalise_code
from siyu.commerce.errors import CouponAlreadyUsed, CouponNotFound, CouponNotUsable
from siyu.kit.clock import Clock, as_utc
from siyu.models import (
    CommerceSettings,
    Coupon,
    CouponEvent,
    CouponKind,
    CouponState,
    CouponTemplate,
    Order,
    OrderStatus,
)


def goods_before_discount(order: Order) -> int:
    """What the goods cost before discounts (fen): the base of 满 X 可用 thresholds and percent-off."""
    return order.total_fen - order.shipping_fen + order.discount_fen


def discount_for(template: CouponTemplate, order: Order) -> int:
    """What the coupon takes off the order, in fen.

    Amount off: its value, at most the goods. Percent off: value% of the goods rounded half up to
    the fen, capped by `max_discount_fen`. Free shipping and gifts: 0 (shipping the shop waived
    is not in the order; a gift has no price here).
    """
    base = max(goods_before_discount(order), 0)
    if template.kind == CouponKind.AMOUNT_OFF:
        return min(template.value, base)
    if template.kind == CouponKind.PERCENT_OFF:
        off = (base * template.value + 50) // 100
        if template.max_discount_fen is not None:
            off = min(off, template.max_discount_fen)
        return off
    return 0


def check_usable(coupon: Coupon, template: CouponTemplate, order: Order) -> None:
    """Raise `CouponNotUsable` naming why the coupon cannot pay for this order."""
    details = {"field": "coupon_code", "code": coupon.code}
    if coupon.customer_id != order.customer_id:
        raise CouponNotUsable("the coupon belongs to another customer", details=details)
    if coupon.state == CouponState.VOID:
        raise CouponNotUsable("the coupon was voided", details=details)
    paid_at = as_utc(order.paid_at)
    if paid_at < as_utc(coupon.valid_from):
        raise CouponNotUsable("the coupon was not valid yet when the order was paid", details=details)
    # Validity is judged at payment: an order paid in time but ingested after the expiry job ran
    # still uses its coupon.
    if coupon.expires_at is not None and paid_at >= as_utc(coupon.expires_at):
        raise CouponNotUsable("the coupon had expired when the order was paid", details=details)
    if template.channels and order.platform not in template.channels:
        raise CouponNotUsable(
            f"the coupon is not usable on {order.platform}", details=details | {"platform": order.platform}
        )
    if goods_before_discount(order) < template.threshold_fen:
        raise CouponNotUsable(
            f"the order is below the coupon's threshold of {template.threshold_fen} fen",
            details=details | {"threshold_fen": template.threshold_fen},
        )


def redeem_for_order(session: Session, *, order: Order, clock: Clock) -> Coupon:
    """Redeem `order.coupon_code` against the order (under the coupon's row lock).

    The same order again returns the same coupon unchanged; another order gets
    `CouponAlreadyUsed`. Threshold, platform, owner and validity at `paid_at` are checked.
    """
    if not order.coupon_code:
        raise CouponNotFound("the order names no coupon", details={"field": "coupon_code"})
    code = normalise_code(order.coupon_code)
    coupon = session.scalar(
        select(Coupon).where(Coupon.workspace_id == order.workspace_id, Coupon.code == code).with_for_update()
    )
    if coupon is None:
        raise CouponNotFound(f"no coupon with code {code}", details={"field": "coupon_code", "code": code})
    if coupon.state == CouponState.REDEEMED:
        if coupon.order_id == order.id:
            return coupon
        raise CouponAlreadyUsed(
            f"coupon {code} was already used by another order",
            details={"field": "coupon_code", "code": code, "order_id": coupon.order_id},
        )
    template = session.get(CouponTemplate, coupon.template_id)
    assert template is not None
    check_usable(coupon, template, order)
    coupon.state = CouponState.REDEEMED
    coupon.order_id = order.id
    coupon.redeemed_at = as_utc(order.paid_at)
    coupon.discount_fen = discount_for(template, order)
    session.add(
        CouponEvent(
            workspace_id=coupon.workspace_id,
            coupon_id=coupon.id,
            kind="redeemed",
            reason=f"order:{order.platform}:{order.external_id}",
            order_id=order.id,
            occurred_at=clock.now(),
        )
    )
    session.flush()
    return coupon


def restores_on_refund(session: Session, workspace_id: int) -> bool:
    value = session.scalar(
        select(CommerceSettings.restore_coupon_on_refund).where(CommerceSettings.workspace_id == workspace_id)
    )
    return True if value is None else bool(value)


def restore_for_refund(session: Session, *, order: Order, clock: Clock) -> Coupon | None:
    """Give the order's coupon back after a full refund, when the setting says so and the coupon
    is still within its validity; returns the restored coupon, or None (nothing to restore, a
    partial refund, the setting off, or past its validity)."""
    if order.status != OrderStatus.REFUNDED:
        return None
    coupon = session.scalar(
        select(Coupon)
        .where(
            Coupon.workspace_id == order.workspace_id,
            Coupon.order_id == order.id,
            Coupon.state == CouponState.REDEEMED,
        )
        .with_for_update()
    )
    if coupon is None or not restores_on_refund(session, order.workspace_id):
        return None
    now = clock.now()
    if coupon.expires_at is not None and as_utc(coupon.expires_at) <= now:
        return None
    coupon.state = CouponState.ISSUED
    coupon.order_id = None
    coupon.redeemed_at = None
    coupon.discount_fen = None
    session.add(
        CouponEvent(
            workspace_id=coupon.workspace_id,
            coupon_id=coupon.id,
            kind="restored",
            reason=f"refund:{order.platform}:{order.external_id}",
            order_id=order.id,
            occurred_at=now,
        )
    )
    session.flush()
    return coupon
