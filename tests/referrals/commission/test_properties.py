"""Properties of the commission ledger over random earn / refund / adjust sequences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import CommissionEntry, CommissionKind, Order, Refund
from siyu.referrals.commission import ledger
from siyu.referrals.commission.schemas import AdjustIn
from tests.factories import make_order
from tests.referrals.commission.factories import make_distribution, refer

START = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)

steps = st.one_of(
    st.tuples(st.just("earn"), st.integers(0, 2), st.integers(0, 60_000), st.integers(0, 20)),
    st.tuples(st.just("refund"), st.integers(0, 30), st.integers(1, 100), st.just(0)),
    st.tuples(st.just("adjust"), st.integers(-3_000, 3_000).filter(bool), st.just(0), st.just(0)),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(steps, max_size=14),
    st.sampled_from([None, 0, 2_500, 8_000]),
    st.sampled_from([None, 0, 4_000, 12_000]),
    st.integers(1, 5_000),
)
def test_balance_is_the_sum_caps_hold_and_reversals_never_exceed_earnings(
    db: Session, steps_: list[tuple[str, int, int, int]], referee_cap: int | None, month_cap: int | None, rate: int
) -> None:
    savepoint = db.begin_nested()
    try:
        clock = FrozenClock(START + timedelta(days=20))
        # given a KOC on a random rule with three referees
        setup = make_distribution(
            db, clock=clock, rate_bp=rate, cap_per_referee_fen=referee_cap, cap_per_month_fen=month_cap
        )
        referees = [refer(db, setup, clock=clock, attributed_at=START) for _ in range(3)]
        orders: list[Order] = []
        adjustments = 0
        # when the random steps run (orders on random days, partial refunds, adjustments)
        for kind, a, b, c in steps_:
            if kind == "earn":
                order = make_order(db, customer=referees[a], paid_at=START + timedelta(days=c), total_fen=b)
                orders.append(order)
                ledger.earn_for_orders(db, [order], clock)
                ledger.earn_for_orders(db, [order], clock)  # retried
            elif kind == "refund" and orders:
                order = orders[a % len(orders)]
                left = order.total_fen - order.refunded_fen
                if left <= 0:
                    continue
                amount = max(1, left * b // 100)
                order.refunded_fen += amount
                refund = Refund(
                    workspace_id=order.workspace_id, order_id=order.id, external_id=f"R{order.refunded_fen}",
                    amount_fen=amount, refunded_at=clock.now(), created_at=clock.now(),
                )  # fmt: skip
                db.add(refund)
                db.flush()
                ledger.reverse_for_refund(db, order, refund, clock)
                ledger.reverse_for_refund(db, order, refund, clock)  # reported twice
            elif kind == "adjust":
                adjustments += a
                data = AdjustIn(koc_customer_id=setup.koc.id, amount_fen=a, reason="调整")
                ledger.adjust(db, actor=setup.actor, data=data, clock=clock)
        entries = list(db.scalars(select(CommissionEntry).where(CommissionEntry.workspace_id == setup.workspace.id)))
        # then the balance is the sum of the entries
        ws, koc = setup.workspace.id, setup.koc.id
        assert ledger.balance(db, workspace_id=ws, koc_customer_id=koc) == sum(e.amount_fen for e in entries)
        assert sum(e.amount_fen for e in entries if e.kind == CommissionKind.ADJUST) == adjustments
        # and no order earned twice, nor had more reversed than it earned (or more than its refunded share)
        for order in orders:
            earned = [e.amount_fen for e in entries if e.order_id == order.id and e.kind == CommissionKind.EARN]
            reversed_ = -sum(
                e.amount_fen for e in entries if e.order_id == order.id and e.kind == CommissionKind.REVERSE
            )
            assert len(earned) <= 1
            total = sum(earned)
            assert 0 <= reversed_ <= total
            assert total <= order.total_fen * rate // 10_000
            if order.total_fen:
                assert reversed_ == total * min(order.refunded_fen, order.total_fen) // order.total_fen or (
                    order.refunded_fen >= order.total_fen and reversed_ == total
                )
        # and the caps were never exceeded (gross earnings per referee and per brand-local month)
        earns = [e for e in entries if e.kind == CommissionKind.EARN]
        assert all(e.amount_fen > 0 for e in earns)
        if referee_cap is not None:
            for referee in referees:
                assert sum(e.amount_fen for e in earns if e.referee_customer_id == referee.id) <= referee_cap
        if month_cap is not None:
            months: dict[tuple[int, int], int] = {}
            for e in earns:
                local = e.occurred_at.replace(tzinfo=UTC) + timedelta(hours=8)
                months[(local.year, local.month)] = months.get((local.year, local.month), 0) + e.amount_fen
            assert all(total <= month_cap for total in months.values())
        keys = db.scalar(select(func.count(func.distinct(CommissionEntry.idempotency_key))).where(
            CommissionEntry.workspace_id == ws))  # fmt: skip
        assert keys == len(entries)
    finally:
        savepoint.rollback()
