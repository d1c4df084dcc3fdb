"""Review fixes: expired points are not charged again by a refund, an old order's points are as old as the
order, and a merged-away profile's points go to the survivor's account."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.customers.service.merge import merge_customers
from siyu.kit.clock import FrozenClock
from siyu.loyalty.members import ensure_member, get_member
from siyu.loyalty.points import ledger
from siyu.loyalty.purchases import apply_order
from siyu.models import ExpiryPolicy, Member, PointsKind, PointsReason
from tests.factories import actor_for, make_customer, make_workspace
from tests.loyalty.tiers.factories import make_program, new_customer, place_order


def test_a_refund_after_the_points_expired_takes_nothing_and_owes_nothing(db: Session, clock: FrozenClock) -> None:
    # given 100 points from an order that expired unused, and 40 newer points
    ws = make_workspace(db, clock=clock)
    member = ensure_member(
        db, workspace_id=ws.id, customer_id=new_customer(db, workspace=ws, clock=clock).id, clock=clock
    )
    old = ledger.earn(
        db,
        member=member,
        points=100,
        reason=PointsReason.PURCHASE,
        description="订单",
        idempotency_key="o1",
        clock=clock,
        expires_at=clock.now() + timedelta(days=1),
    ).entry
    clock.advance(timedelta(days=2))
    ledger.earn(
        db,
        member=member,
        points=40,
        reason=PointsReason.PURCHASE,
        description="订单",
        idempotency_key="o2",
        clock=clock,
        expires_at=None,
    )
    # when the first order is refunded in full
    reversal = ledger.reverse_earn(
        db, member=member, entry_id=old.id, points=100, description="退款", idempotency_key="r1", clock=clock
    ).entry
    # then the expired 100 count as taken back: the newer 40 stay and nothing is owed
    assert (reversal.amount, reversal.shortfall, reversal.forgiven) == (0, 0, 100)
    assert (member.points_balance, member.points_debt) == (40, 0)
    assert ledger.reversed_total(db, old.id) == 100
    assert ledger.balance_from_ledger(db, member.id) == 40


def test_a_partly_spent_then_expired_lot_charges_only_what_was_used(db: Session, clock: FrozenClock) -> None:
    # given 100 points of which 30 were spent and 70 expired, and 50 newer points
    ws = make_workspace(db, clock=clock)
    member = ensure_member(
        db, workspace_id=ws.id, customer_id=new_customer(db, workspace=ws, clock=clock).id, clock=clock
    )
    old = ledger.earn(
        db,
        member=member,
        points=100,
        reason=PointsReason.PURCHASE,
        description="订单",
        idempotency_key="o1",
        clock=clock,
        expires_at=clock.now() + timedelta(days=1),
    ).entry
    ledger.spend(db, member=member, points=30, description="兑换", idempotency_key="s1", clock=clock)
    clock.advance(timedelta(days=2))
    ledger.earn(
        db,
        member=member,
        points=50,
        reason=PointsReason.PURCHASE,
        description="订单",
        idempotency_key="o2",
        clock=clock,
        expires_at=None,
    )
    # when the order is refunded in two halves
    first = ledger.reverse_earn(
        db, member=member, entry_id=old.id, points=50, description="退款", idempotency_key="r1", clock=clock
    ).entry
    second = ledger.reverse_earn(
        db, member=member, entry_id=old.id, points=50, description="退款", idempotency_key="r2", clock=clock
    ).entry
    # then 70 are forgiven (expired), and the 30 the member used are taken from the newer points
    assert [(e.amount, e.shortfall, e.forgiven) for e in (first, second)] == [(0, 0, 50), (-30, 0, 20)]
    assert (member.points_balance, member.points_debt) == (20, 0)
    assert ledger.balance_from_ledger(db, member.id) == 20


def test_an_old_orders_points_expire_counting_from_its_payment(db: Session, clock: FrozenClock) -> None:
    # given points that expire 180 days after they are earned
    ws = make_workspace(db, clock=clock)
    make_program(db, workspace=ws, clock=clock, expiry_policy=ExpiryPolicy.DAYS, expiry_n=180)
    customer = new_customer(db, workspace=ws, clock=clock)
    # when an order paid 300 days ago and one paid 100 days ago are ingested today
    old = place_order(db, customer=customer, clock=clock, total_fen=100_000, paid_at=clock.now() - timedelta(days=300))
    recent = place_order(
        db, customer=customer, clock=clock, total_fen=50_000, paid_at=clock.now() - timedelta(days=100)
    )
    apply_order(db, order=old, clock=clock)
    apply_order(db, order=recent, clock=clock)
    # then the old order's 1,000 points show as earned and expired; the recent 500 last 80 more days
    member = get_member(db, ws.id, customer.id)
    assert member is not None and member.points_balance == 500
    kinds = db.execute(
        select(ledger.PointsEntry.kind, func.sum(ledger.PointsEntry.amount))
        .where(ledger.PointsEntry.member_id == member.id)
        .group_by(ledger.PointsEntry.kind)
    ).all()
    assert sorted((str(k), int(v)) for k, v in kinds) == [
        (PointsKind.EARN.value, 1500),
        (PointsKind.EXPIRE.value, -1000),
    ]
    assert ledger.expiring_soon(db, member=member, clock=clock, days=80) == [
        (recent.paid_at + timedelta(days=180), 500)
    ]


def test_points_for_a_merged_away_profile_go_to_the_survivor(db: Session, clock: FrozenClock) -> None:
    # given two profiles of one person, merged, the survivor with a member account
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    survivor = make_customer(db, actor=actor, clock=clock, phone="13800138000").customer
    merged = make_customer(db, actor=actor, clock=clock, phone="13900139000").customer
    account = ensure_member(db, workspace_id=ws.id, customer_id=survivor.id, clock=clock)
    merge_customers(db, actor=actor, survivor_id=survivor.id, merged_id=merged.id, reason="same person", clock=clock)
    # when something still names the merged-away profile (an old H5 cookie, an API caller)
    member = ensure_member(db, workspace_id=ws.id, customer_id=merged.id, clock=clock)
    # then it is the survivor's account, and no second account appears
    assert member.id == account.id
    assert db.scalar(select(func.count()).select_from(Member)) == 1
