"""Earning commission on referees' orders, caps, reversal on refunds, adjustments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.commerce.orders.ingest import ingest_order
from siyu.commerce.orders.refunds import refund_order
from siyu.commerce.orders.schemas import OrderIn
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import (
    AuditEntry,
    CommissionEntry,
    CommissionKind,
    KocStatus,
    Order,
    OrderSource,
    ReferralStatus,
    Refund,
    Role,
)
from siyu.referrals.commission import ledger
from siyu.referrals.commission.schemas import AdjustIn
from tests.factories import actor_for, make_customer, make_order
from tests.referrals.commission.factories import make_distribution, make_koc, make_rule, refer


def _entries(db: Session, workspace_id: int) -> list[tuple[str, int, str]]:
    rows = db.scalars(
        select(CommissionEntry).where(CommissionEntry.workspace_id == workspace_id).order_by(CommissionEntry.id)
    )
    return [(str(e.kind), e.amount_fen, e.idempotency_key) for e in rows]


def _refund(db: Session, order_id: int, amount: int, clock: FrozenClock) -> Refund:
    db.flush()
    order = db.get(Order, order_id)
    assert order is not None
    order.refunded_fen += amount
    refund = Refund(
        workspace_id=order.workspace_id,
        order_id=order.id,
        external_id=f"R{order.id}-{order.refunded_fen}",
        amount_fen=amount,
        refunded_at=clock.now(),
        created_at=clock.now(),
    )
    db.add(refund)
    db.flush()
    ledger.reverse_for_refund(db, order, refund, clock)
    return refund


def test_a_referees_order_earns_the_rate_of_its_paid_amount(db: Session, clock: FrozenClock) -> None:
    # given an approved KOC on a 10% rule and a customer they referred today
    setup = make_distribution(db, clock=clock)
    referee = refer(db, setup, clock=clock)
    # when the referee pays 199.99 yuan
    order = make_order(db, customer=referee, paid_at=clock.now() + timedelta(hours=1), total_fen=19_999)
    ledger.earn_for_orders(db, [order], clock)
    # then the KOC earns floor(19999 × 10%) = 1999 fen, keyed on the order, once even when retried
    ledger.earn_for_orders(db, [order], clock)
    entry = db.scalars(select(CommissionEntry)).one()
    assert (entry.kind, entry.amount_fen, entry.idempotency_key) == ("earn", 1_999, f"commission:order:{order.id}")
    assert (entry.koc_customer_id, entry.referee_customer_id, entry.rule_id) == (
        setup.koc.id,
        referee.id,
        setup.rule.id,
    )
    assert entry.reason == order.external_id
    assert ledger.balance(db, workspace_id=setup.workspace.id, koc_customer_id=setup.koc.id) == 1_999


@pytest.mark.parametrize("status", [ReferralStatus.FLAGGED, ReferralStatus.REJECTED, ReferralStatus.REVERSED], ids=str)
def test_referrals_not_pending_or_qualified_earn_nothing(
    db: Session, clock: FrozenClock, status: ReferralStatus
) -> None:
    # given a referral held for review, rejected or reversed
    setup = make_distribution(db, clock=clock)
    referee = refer(db, setup, clock=clock, status=status)
    # when the referee orders
    order = make_order(db, customer=referee, paid_at=clock.now())
    # then nothing is earned
    assert ledger.earn_for_orders(db, [order], clock) == []
    assert _entries(db, setup.workspace.id) == []


def test_a_pending_referral_earns(db: Session, clock: FrozenClock) -> None:
    # given a referral still waiting for its condition
    setup = make_distribution(db, clock=clock)
    referee = refer(db, setup, clock=clock, status=ReferralStatus.PENDING)
    # when the referee orders 100 yuan
    ledger.earn_for_orders(db, [make_order(db, customer=referee, paid_at=clock.now(), total_fen=10_000)], clock)
    # then 10 yuan is earned
    assert [amount for _k, amount, _key in _entries(db, setup.workspace.id)] == [1_000]


@pytest.mark.parametrize("status", [KocStatus.APPLIED, KocStatus.REVOKED, KocStatus.REJECTED], ids=str)
def test_only_approved_kocs_earn(db: Session, clock: FrozenClock, status: KocStatus) -> None:
    # given the referrer's KOC profile is not approved (any more)
    setup = make_distribution(db, clock=clock)
    setup.profile.status = status
    referee = refer(db, setup, clock=clock)
    # when the referee orders, then nothing is earned
    assert ledger.earn_for_orders(db, [make_order(db, customer=referee, paid_at=clock.now())], clock) == []


def test_no_rule_or_an_inactive_rule_earns_nothing(db: Session, clock: FrozenClock) -> None:
    # given one KOC without a rule and another whose rule is switched off
    setup = make_distribution(db, clock=clock)
    setup.rule.is_active = False
    plain, _profile = make_koc(db, workspace=setup.workspace, clock=clock, rule=None, name="无规则")
    first = refer(db, setup, clock=clock)
    second = refer(db, setup, clock=clock, referrer=plain)
    # when both referees order, then nothing is earned
    orders = [make_order(db, customer=c, paid_at=clock.now()) for c in (first, second)]
    assert ledger.earn_for_orders(db, orders, clock) == []


def test_only_orders_within_the_rules_days_earn(db: Session, clock: FrozenClock) -> None:
    # given a 7-day rule and a referral attributed now
    setup = make_distribution(db, clock=clock, days=7)
    referee = refer(db, setup, clock=clock)
    before = make_order(db, customer=referee, paid_at=clock.now() - timedelta(minutes=1), total_fen=10_000)
    last = make_order(db, customer=referee, paid_at=clock.now() + timedelta(days=7), total_fen=20_000)
    late = make_order(db, customer=referee, paid_at=clock.now() + timedelta(days=7, seconds=1), total_fen=30_000)
    # when the three orders arrive
    ledger.earn_for_orders(db, [before, last, late], clock)
    # then only the one paid on the 7th day's last instant earns
    assert _entries(db, setup.workspace.id) == [("earn", 2_000, f"commission:order:{last.id}")]


def test_the_per_referee_cap_clips_and_then_stops_earning(db: Session, clock: FrozenClock) -> None:
    # given a cap of 30 yuan per referee and 10%
    setup = make_distribution(db, clock=clock, cap_per_referee_fen=3_000)
    referee = refer(db, setup, clock=clock)
    other = refer(db, setup, clock=clock, name="另一位")
    orders = [make_order(db, customer=referee, paid_at=clock.now(), total_fen=19_900) for _ in range(3)]
    # when the referee orders 3 × 199 yuan and another referee once
    ledger.earn_for_orders(db, [*orders, make_order(db, customer=other, paid_at=clock.now(), total_fen=19_900)], clock)
    # then the referee's orders earn 19.90 + 10.10 + nothing; the other referee has their own cap
    assert [a for _k, a, _key in _entries(db, setup.workspace.id)] == [1_990, 1_010, 1_990]


def test_the_monthly_cap_counts_brand_local_months(db: Session, clock: FrozenClock) -> None:
    # given a 50-yuan monthly cap, and orders on 30 Nov 23:30 and 1 Dec 00:30 Shanghai time
    setup = make_distribution(db, clock=clock, cap_per_month_fen=5_000)
    referee = refer(db, setup, clock=clock)
    nov = [make_order(db, customer=referee, paid_at=datetime(2026, 11, 30, 15, 30, tzinfo=UTC), total_fen=30_000)]
    nov.append(make_order(db, customer=referee, paid_at=datetime(2026, 11, 30, 15, 31, tzinfo=UTC), total_fen=30_000))
    dec = make_order(db, customer=referee, paid_at=datetime(2026, 11, 30, 16, 30, tzinfo=UTC), total_fen=30_000)
    # when all three arrive
    ledger.earn_for_orders(db, [*nov, dec], clock)
    # then November earns 30 + 20 (capped) and December starts afresh with 30
    assert [a for _k, a, _key in _entries(db, setup.workspace.id)] == [3_000, 2_000, 3_000]


def test_refunds_reverse_in_proportion_and_never_more_than_earned(db: Session, clock: FrozenClock) -> None:
    # given 99 fen earned on an order of 999 fen (10%)
    setup = make_distribution(db, clock=clock)
    referee = refer(db, setup, clock=clock)
    order = make_order(db, customer=referee, paid_at=clock.now(), total_fen=999)
    ledger.earn_for_orders(db, [order], clock)
    # when 500 fen is refunded, then the rest
    first = _refund(db, order.id, 500, clock)
    ledger.reverse_for_refund(db, order, first, clock)  # the same refund reported twice
    second = _refund(db, order.id, 499, clock)
    # then floor(99 × 500 / 999) = 49 is reversed, then the remaining 50; the balance is 0
    assert _entries(db, setup.workspace.id) == [
        ("earn", 99, f"commission:order:{order.id}"),
        ("reverse", -49, f"commission:refund:{first.id}"),
        ("reverse", -50, f"commission:refund:{second.id}"),
    ]
    assert ledger.balance(db, workspace_id=setup.workspace.id, koc_customer_id=setup.koc.id) == 0


def test_a_refund_of_an_order_that_earned_nothing_writes_nothing(db: Session, clock: FrozenClock) -> None:
    # given an order of a customer nobody referred
    setup = make_distribution(db, clock=clock)
    stranger = make_customer(db, actor=setup.actor, clock=clock).customer
    order = make_order(db, customer=stranger, paid_at=clock.now())
    # when it is refunded, then the ledger is untouched
    _refund(db, order.id, order.total_fen, clock)
    assert _entries(db, setup.workspace.id) == []


def test_ingestion_and_refund_hooks_earn_and_reverse(db: Session, clock: FrozenClock) -> None:
    # given a referee of the KOC
    setup = make_distribution(db, clock=clock)
    referee = refer(db, setup, clock=clock, attributed_at=clock.now() - timedelta(days=1))
    body = OrderIn.model_validate(
        {
            "platform": "taobao",
            "external_id": "TB-1",
            "customer_id": referee.id,
            "total_fen": 30_000,
            "paid_at": "2026-11-23T09:30:00+08:00",
            "items": [{"sku": "S1", "amount_fen": 30_000}],
        }
    )
    # when the order is ingested and then 100 yuan of it refunded through commerce
    outcome = ingest_order(db, actor=setup.actor, order=body, source=OrderSource.API, clock=clock)
    assert outcome.order is not None
    order_id = outcome.order.id
    refund = refund_order(
        db, actor=setup.actor, order_id=order_id, external_id="RF-1", amount_fen=10_000, items=None,
        reason=None, refunded_at=None, clock=clock,
    )  # fmt: skip
    # then 30 yuan was earned and 10 yuan reversed
    assert _entries(db, setup.workspace.id) == [
        ("earn", 3_000, f"commission:order:{order_id}"),
        ("reverse", -1_000, f"commission:refund:{refund.id}"),
    ]


def test_listener_costs_one_query_when_nothing_can_earn(db: Session, clock: FrozenClock) -> None:
    # given a workspace with customers and orders but no KOC or rule
    setup = make_distribution(db, clock=clock)
    buyer = make_customer(db, actor=setup.actor, clock=clock).customer
    orders = [make_order(db, customer=buyer, paid_at=clock.now()) for _ in range(3)]
    statements: list[str] = []
    engine = db.get_bind()

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    # when the listener runs over the batch
    event.listen(engine, "before_cursor_execute", count)
    try:
        ledger.earn_for_orders(db, orders, clock)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # then it asked the database once
    assert len(statements) == 1


def test_an_operator_adjusts_with_a_reason_once_per_key(db: Session, clock: FrozenClock) -> None:
    # given a KOC with 19.90 earned
    setup = make_distribution(db, clock=clock)
    referee = refer(db, setup, clock=clock)
    ledger.earn_for_orders(db, [make_order(db, customer=referee, paid_at=clock.now(), total_fen=19_900)], clock)
    # when an operator takes back 5 yuan, sending the same correction twice
    data = AdjustIn(koc_customer_id=setup.koc.id, amount_fen=-500, reason="重复下单扣回", idempotency_key="fix-1")
    first = ledger.adjust(db, actor=setup.actor, data=data, clock=clock)
    second = ledger.adjust(db, actor=setup.actor, data=data, clock=clock)
    # then one adjustment, the balance is 14.90, and it is audited
    assert first.id == second.id
    assert (first.kind, first.amount_fen, first.reason) == (CommissionKind.ADJUST, -500, "重复下单扣回")
    assert ledger.balance(db, workspace_id=setup.workspace.id, koc_customer_id=setup.koc.id) == 1_490
    audit = db.scalars(select(AuditEntry).where(AuditEntry.action == "commission.adjust")).one()
    assert audit.after == {"koc_customer_id": setup.koc.id, "amount_fen": -500, "reason": "重复下单扣回"}


def test_adjusting_needs_growth_write_and_a_koc(db: Session, clock: FrozenClock) -> None:
    # given an analyst (growth:read only) and a customer who is not a KOC
    setup = make_distribution(db, clock=clock)
    stranger = make_customer(db, actor=setup.actor, clock=clock).customer
    analyst: Actor = actor_for(setup.workspace, role=Role.ANALYST)
    # when each tries, then the analyst is refused, the stranger named as the bad field, nothing written
    with pytest.raises(PermissionDenied):
        ledger.adjust(
            db, actor=analyst, data=AdjustIn(koc_customer_id=setup.koc.id, amount_fen=1, reason="x"), clock=clock
        )
    with pytest.raises(InvalidInput) as bad:
        ledger.adjust(
            db, actor=setup.actor, data=AdjustIn(koc_customer_id=stranger.id, amount_fen=1, reason="x"), clock=clock
        )
    assert bad.value.details == {"field": "koc_customer_id"}
    assert _entries(db, setup.workspace.id) == []


def test_rules_in_other_workspaces_do_not_leak(db: Session, clock: FrozenClock) -> None:
    # given a rule in one workspace, and a KOC of another workspace on no rule
    setup = make_distribution(db, clock=clock)
    other = make_distribution(db, clock=clock)
    other.profile.commission_rule_id = make_rule(db, workspace=other.workspace, clock=clock, is_active=False).id
    referee = refer(db, other, clock=clock)
    # when the other workspace's referee orders, then nothing is earned anywhere
    assert ledger.earn_for_orders(db, [make_order(db, customer=referee, paid_at=clock.now())], clock) == []
    assert _entries(db, setup.workspace.id) == []
