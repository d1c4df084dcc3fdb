"""Purchases: points at the tier's multiplier, the immediate upgrade, and refunds undoing both exactly."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.loyalty.members import get_member
from siyu.loyalty.points import ledger
from siyu.loyalty.purchases import apply_order, apply_refund
from siyu.models import PointsEntry, PointsKind, TierChange, TierChangeReason
from tests.factories import make_workspace
from tests.loyalty.tiers.factories import make_ladder, make_program, new_customer, place_order, refund


def _entries(db: Session, member_id: int) -> list[tuple[int, str, str]]:
    rows = db.scalars(select(PointsEntry).where(PointsEntry.member_id == member_id).order_by(PointsEntry.id))
    return [(e.amount, str(e.kind), e.description) for e in rows]


def test_an_order_earns_points_at_the_tier_multiplier_once(db: Session, clock: FrozenClock) -> None:
    # given 2 points per yuan and a member already in 高级 (1.2×)
    ws = make_workspace(db, clock=clock)
    make_program(db, workspace=ws, clock=clock, points_per_yuan=2)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    big = place_order(db, customer=customer, clock=clock, total_fen=100_000)
    apply_order(db, order=big, clock=clock)
    # when an order of ¥123.45 is applied twice (a retry)
    order = place_order(db, customer=customer, clock=clock, total_fen=12_345)
    apply_order(db, order=order, clock=clock)
    apply_order(db, order=order, clock=clock)
    # then it earned floor(12345 × 2 × 120 / 10000) = 296 points, once, with the member's reason
    member = get_member(db, ws.id, customer.id)
    assert member is not None and member.tier_id == ladder.silver.id
    assert _entries(db, member.id) == [
        (2000, "earn", f"订单 taobao {big.external_id} 消费得积分"),
        (296, "earn", f"订单 taobao {order.external_id} 消费得积分"),
    ]
    assert member.points_balance == 2296 == ledger.balance_from_ledger(db, member.id)
    entry = db.scalars(select(PointsEntry).where(PointsEntry.idempotency_key == f"order:{order.id}:earn")).one()
    assert entry.source_ref == f"order:{order.id}:x240"


def test_the_first_big_order_upgrades_at_once_and_records_why(db: Session, clock: FrozenClock) -> None:
    # given the ladder and a new customer
    ws = make_workspace(db, clock=clock)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    # when they pay ¥1,234.56 in one order
    order = place_order(db, customer=customer, clock=clock, total_fen=123_456)
    apply_order(db, order=order, clock=clock)
    # then they are 高级 now, earned at the base rate (the tier at order time), and the change says why
    member = get_member(db, ws.id, customer.id)
    assert member is not None
    assert (member.tier_id, member.earned_tier_id) == (ladder.silver.id, ladder.silver.id)
    assert member.points_balance == 1234
    changes = db.scalars(select(TierChange).where(TierChange.member_id == member.id).order_by(TierChange.id)).all()
    assert [(c.reason, c.from_tier_id, c.to_tier_id, c.source_ref) for c in changes] == [
        (TierChangeReason.JOINED, None, ladder.base.id, None),
        (TierChangeReason.QUALIFIED, ladder.base.id, ladder.silver.id, f"order:{order.id}"),
    ]
    assert changes[1].detail == "近365天消费 ¥1,234.56 ≥ ¥1,000.00"


def test_partial_refunds_take_back_exactly_what_the_net_no_longer_earns(db: Session, clock: FrozenClock) -> None:
    # given a 尊享 member (1.5×) whose order of ¥100.99 earned floor(10099 × 150 / 10000) = 151
    ws = make_workspace(db, clock=clock)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    apply_order(db, order=place_order(db, customer=customer, clock=clock, total_fen=600_000), clock=clock)
    order = place_order(db, customer=customer, clock=clock, total_fen=10_099)
    apply_order(db, order=order, clock=clock)
    member = get_member(db, ws.id, customer.id)
    assert member is not None and member.tier_id == ladder.gold.id
    assert member.points_balance == 6000 + 151
    # and the tier's multiplier is changed afterwards (refunds use the rate the order earned at)
    ladder.gold.points_multiplier_pct = 300
    db.flush()
    # when ¥33.33 is refunded (twice: a retry), then the rest
    first = refund(db, order=order, clock=clock, amount_fen=3_333)
    apply_refund(db, order=order, refund=first, clock=clock)
    apply_refund(db, order=order, refund=first, clock=clock)
    after_first = member.points_balance
    rest = refund(db, order=order, clock=clock, amount_fen=6_766)
    apply_refund(db, order=order, refund=rest, clock=clock)
    # then the first took 151 − floor(6766 × 1.5) = 151 − 101 = 50, the second the remaining 101
    assert after_first == 6000 + 101
    assert member.points_balance == 6000 == ledger.balance_from_ledger(db, member.id)
    reversals = db.scalars(
        select(PointsEntry).where(PointsEntry.member_id == member.id, PointsEntry.kind == PointsKind.REVERSE)
    ).all()
    assert [(r.amount, r.idempotency_key, r.description) for r in reversals] == [
        (-50, f"refund:{first.id}:points", f"订单 taobao {order.external_id} 退款扣回积分"),
        (-101, f"refund:{rest.id}:points", f"订单 taobao {order.external_id} 退款扣回积分"),
    ]


def test_a_refund_of_points_already_spent_becomes_debt_the_next_order_settles(db: Session, clock: FrozenClock) -> None:
    # given 199 points from an order, 150 of them spent
    ws = make_workspace(db, clock=clock)
    make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    order = place_order(db, customer=customer, clock=clock, total_fen=19_900)
    apply_order(db, order=order, clock=clock)
    member = get_member(db, ws.id, customer.id)
    assert member is not None
    ledger.spend(db, member=member, points=150, description="兑换 保温杯", idempotency_key="r1", clock=clock)
    # when the order is refunded in full
    apply_refund(db, order=order, refund=refund(db, order=order, clock=clock, amount_fen=19_900), clock=clock)
    # then the 49 left are taken back and 150 become debt, settled by the next order's 300
    assert (member.points_balance, member.points_debt) == (0, 150)
    apply_order(db, order=place_order(db, customer=customer, clock=clock, total_fen=30_000), clock=clock)
    assert (member.points_balance, member.points_debt) == (150, 0)
    assert member.points_balance == ledger.balance_from_ledger(db, member.id)


def test_a_refund_undoes_the_upgrade_its_order_caused(db: Session, clock: FrozenClock) -> None:
    # given a customer upgraded to 高级 by one ¥1,200 order
    ws = make_workspace(db, clock=clock)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    order = place_order(db, customer=customer, clock=clock, total_fen=120_000)
    apply_order(db, order=order, clock=clock)
    member = get_member(db, ws.id, customer.id)
    assert member is not None and member.tier_id == ladder.silver.id
    # when ¥100 is refunded (still ≥ ¥1,000), then another ¥150 (now ¥950)
    clock.advance(timedelta(days=2))
    apply_refund(db, order=order, refund=refund(db, order=order, clock=clock, amount_fen=10_000), clock=clock)
    assert member.tier_id == ladder.silver.id
    second = refund(db, order=order, clock=clock, amount_fen=15_000)
    apply_refund(db, order=order, refund=second, clock=clock)
    # then they are back in 普通, with the refund as the reason, and the points match the ¥950 net
    assert (member.tier_id, member.earned_tier_id) == (ladder.base.id, ladder.base.id)
    last = db.scalars(
        select(TierChange).where(TierChange.member_id == member.id).order_by(TierChange.id.desc())
    ).first()
    assert last is not None
    assert (last.reason, last.from_tier_id, last.to_tier_id, last.source_ref) == (
        TierChangeReason.REFUND,
        ladder.silver.id,
        ladder.base.id,
        f"refund:{second.id}",
    )
    assert last.detail == "退款后近365天消费 ¥950.00 < ¥1,000.00"
    assert member.points_balance == 950


def test_a_refund_does_not_undo_a_tier_another_order_also_qualifies_for(db: Session, clock: FrozenClock) -> None:
    # given ¥1,200 then ¥800 (¥2,000 in the window; the first order made them 高级)
    ws = make_workspace(db, clock=clock)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    first = place_order(db, customer=customer, clock=clock, total_fen=120_000)
    apply_order(db, order=first, clock=clock)
    apply_order(db, order=place_order(db, customer=customer, clock=clock, total_fen=80_000), clock=clock)
    # when the first order is refunded in full (¥800 left < ¥1,000)
    apply_refund(db, order=first, refund=refund(db, order=first, clock=clock, amount_fen=120_000), clock=clock)
    member = get_member(db, ws.id, customer.id)
    # then they go back to 普通 (the order's upgrade no longer holds)
    assert member is not None and member.tier_id == ladder.base.id
    # and a customer without a loyalty account is left alone by a refund
    stranger = new_customer(db, workspace=ws, clock=clock)
    other = place_order(db, customer=stranger, clock=clock, total_fen=5_000)
    apply_refund(db, order=other, refund=refund(db, order=other, clock=clock, amount_fen=5_000), clock=clock)
    assert get_member(db, ws.id, stranger.id) is None
