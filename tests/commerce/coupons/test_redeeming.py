"""Redeeming a coupon against an order: exact discounts, idempotent per order, the checks, and
giving the coupon back after a full refund."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.commerce.coupons.issuing import issue_coupon
from siyu.commerce.coupons.redeeming import redeem_for_order, restore_for_refund
from siyu.commerce.errors import CouponAlreadyUsed, CouponNotFound, CouponNotUsable
from siyu.kit.clock import FrozenClock
from siyu.models import (
    CommerceSettings,
    Coupon,
    CouponEvent,
    CouponKind,
    CouponState,
    Customer,
    Order,
    OrderStatus,
    Workspace,
)
from tests.commerce.coupons.factories import buyer, make_template
from tests.factories import make_workspace


def _order(
    db: Session,
    customer: Customer,
    code: str | None,
    *,
    total_fen: int = 28_000,
    discount_fen: int = 2_000,
    shipping_fen: int = 0,
    platform: str = "taobao",
    paid_at: datetime | None = None,
    external_id: str = "TB1",
) -> Order:
    paid = paid_at or datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    order = Order(
        workspace_id=customer.workspace_id,
        customer_id=customer.id,
        platform=platform,
        external_id=external_id,
        status=OrderStatus.PAID,
        total_fen=total_fen,
        discount_fen=discount_fen,
        shipping_fen=shipping_fen,
        paid_at=paid,
        created_at=paid,
        coupon_code=code,
    )
    db.add(order)
    db.flush()
    return order


def _issued(db: Session, ws: Workspace, clock: FrozenClock, customer: Customer, **template: object) -> Coupon:
    t = make_template(db, workspace=ws, clock=clock, **template)  # type: ignore[arg-type]
    clock.advance(timedelta(hours=-2))  # issued at 00:00Z, before the orders are paid
    try:
        return issue_coupon(
            db,
            workspace_id=ws.id,
            template_id=t.id,
            customer_id=customer.id,
            source="api",
            idempotency_key=f"k{t.id}",
            clock=clock,
        )
    finally:
        clock.advance(timedelta(hours=2))


def test_amount_off_redeems_once_per_order(db: Session, clock: FrozenClock) -> None:
    # given a ¥20-off coupon with a ¥200 threshold and an order of ¥300 goods paying ¥280
    ws = make_workspace(db, clock=clock)
    customer = buyer(db, workspace=ws, clock=clock)
    coupon = _issued(db, ws, clock, customer, value=2000, threshold_fen=20_000)
    order = _order(db, customer, coupon.code.lower())
    # when the order redeems it, twice (an ingestion retried)
    first = redeem_for_order(db, order=order, clock=clock)
    again = redeem_for_order(db, order=order, clock=clock)
    # then it is redeemed once, taking exactly 2,000 fen off
    assert first.id == again.id == coupon.id
    assert (coupon.state, coupon.order_id, coupon.discount_fen) == (CouponState.REDEEMED, order.id, 2000)
    assert coupon.redeemed_at == order.paid_at
    kinds = db.scalars(select(CouponEvent.kind).where(CouponEvent.coupon_id == coupon.id).order_by(CouponEvent.id))
    assert list(kinds) == ["issued", "redeemed"]


def test_another_order_gets_already_used(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    customer = buyer(db, workspace=ws, clock=clock)
    coupon = _issued(db, ws, clock, customer)
    first = _order(db, customer, coupon.code)
    redeem_for_order(db, order=first, clock=clock)
    second = _order(db, customer, coupon.code, external_id="TB2")
    with pytest.raises(CouponAlreadyUsed) as caught:
        redeem_for_order(db, order=second, clock=clock)
    assert caught.value.details["order_id"] == first.id
    assert coupon.order_id == first.id


@pytest.mark.parametrize(
    ("value", "cap", "expected"),
    [(15, None, 4_500), (15, 3_000, 3_000), (33, None, 9_900)],
)
def test_percent_off_is_exact_in_fen(
    db: Session, clock: FrozenClock, value: int, cap: int | None, expected: int
) -> None:
    # goods before discount: 28,000 paid + 2,000 discount = 30,000 fen
    ws = make_workspace(db, clock=clock)
    customer = buyer(db, workspace=ws, clock=clock)
    coupon = _issued(db, ws, clock, customer, kind=CouponKind.PERCENT_OFF, value=value, max_discount_fen=cap)
    redeem_for_order(db, order=_order(db, customer, coupon.code), clock=clock)
    assert coupon.discount_fen == expected


def test_percent_off_rounds_half_up(db: Session, clock: FrozenClock) -> None:
    # 15% of 12,345 fen = 1,851.75 → 1,852
    ws = make_workspace(db, clock=clock)
    customer = buyer(db, workspace=ws, clock=clock)
    coupon = _issued(db, ws, clock, customer, kind=CouponKind.PERCENT_OFF, value=15)
    redeem_for_order(db, order=_order(db, customer, coupon.code, total_fen=12_345, discount_fen=0), clock=clock)
    assert coupon.discount_fen == 1_852


@pytest.mark.parametrize(
    ("template", "order", "message"),
    [
        ({"threshold_fen": 50_000}, {}, "below the coupon's threshold of 50000 fen"),
        ({"channels": ["jd"]}, {}, "not usable on taobao"),
        ({}, {"paid_at": datetime(2026, 12, 1, tzinfo=UTC)}, "had expired when the order was paid"),
        ({}, {"paid_at": datetime(2026, 11, 22, tzinfo=UTC)}, "not valid yet"),
    ],
)
def test_unusable_coupons_are_refused_and_unchanged(
    db: Session, clock: FrozenClock, template: dict[str, object], order: dict[str, object], message: str
) -> None:
    ws = make_workspace(db, clock=clock)
    customer = buyer(db, workspace=ws, clock=clock)
    coupon = _issued(db, ws, clock, customer, **template)
    with pytest.raises(CouponNotUsable) as caught:
        redeem_for_order(db, order=_order(db, customer, coupon.code, **order), clock=clock)  # type: ignore[arg-type]
    assert message in caught.value.message
    assert caught.value.details["field"] == "coupon_code"
    assert coupon.state == CouponState.ISSUED and coupon.order_id is None


def test_someone_elses_void_or_unknown_coupon_is_refused(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    owner, other = buyer(db, workspace=ws, clock=clock), buyer(db, workspace=ws, clock=clock)
    coupon = _issued(db, ws, clock, owner)
    with pytest.raises(CouponNotUsable, match="another customer"):
        redeem_for_order(db, order=_order(db, other, coupon.code), clock=clock)
    coupon.state = CouponState.VOID
    with pytest.raises(CouponNotUsable, match="voided"):
        redeem_for_order(db, order=_order(db, owner, coupon.code, external_id="TB2"), clock=clock)
    with pytest.raises(CouponNotFound):
        redeem_for_order(db, order=_order(db, owner, "ZZZZZZZZZZ", external_id="TB3"), clock=clock)


def test_full_refund_restores_a_valid_coupon(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    customer = buyer(db, workspace=ws, clock=clock)
    coupon = _issued(db, ws, clock, customer)
    order = _order(db, customer, coupon.code)
    redeem_for_order(db, order=order, clock=clock)
    # a partial refund restores nothing
    order.status = OrderStatus.PARTIALLY_REFUNDED
    assert restore_for_refund(db, order=order, clock=clock) is None
    # when the order is fully refunded
    order.status = OrderStatus.REFUNDED
    restored = restore_for_refund(db, order=order, clock=clock)
    # then the coupon is usable again, once
    assert restored is coupon
    assert (coupon.state, coupon.order_id, coupon.discount_fen) == (CouponState.ISSUED, None, None)
    assert restore_for_refund(db, order=order, clock=clock) is None
    kinds = db.scalars(select(CouponEvent.kind).where(CouponEvent.coupon_id == coupon.id).order_by(CouponEvent.id))
    assert list(kinds) == ["issued", "redeemed", "restored"]


def test_no_restore_when_expired_or_switched_off(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    customer = buyer(db, workspace=ws, clock=clock)
    expiring = _issued(db, ws, clock, customer)
    kept = _issued(db, ws, clock, customer)
    first = _order(db, customer, expiring.code)
    second = _order(db, customer, kept.code, external_id="TB2")
    redeem_for_order(db, order=first, clock=clock)
    redeem_for_order(db, order=second, clock=clock)
    first.status = second.status = OrderStatus.REFUNDED
    # the first is refunded after its validity ended
    clock.advance(timedelta(days=10))
    assert restore_for_refund(db, order=first, clock=clock) is None
    assert expiring.state == CouponState.REDEEMED
    # the second while the setting is off
    clock.advance(timedelta(days=-10))
    db.add(CommerceSettings(workspace_id=ws.id, restore_coupon_on_refund=False, updated_at=clock.now()))
    db.flush()
    assert restore_for_refund(db, order=second, clock=clock) is None
    assert kept.state == CouponState.REDEEMED
