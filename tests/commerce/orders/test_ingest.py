"""Ingesting orders: buyer resolution (known, created, parked), idempotency with the content hash,
conflicts naming what differs, lookups of products, staff and stores, and batches row by row."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.commerce.errors import InvalidOrder, OrderConflict, UnknownCustomer
from siyu.commerce.orders.ingest import ingest_order, ingest_orders
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import PermissionDenied
from siyu.models import (
    CommerceSettings,
    Customer,
    Identity,
    Member,
    Order,
    OrderItem,
    OrderSource,
    ParkedOrder,
    PointsEntry,
    Product,
    Role,
    UnknownCustomerPolicy,
    Workspace,
)
from tests.commerce.orders.factories import PAID, order_in
from tests.factories import actor_for, make_customer, make_staff, make_store, make_workspace


def _count(db: Session, model: type, ws: Workspace) -> int:
    return int(db.scalar(select(func.count()).select_from(model).where(model.workspace_id == ws.id)) or 0)


def _park_unknown(db: Session, ws: Workspace, clock: FrozenClock) -> None:
    db.add(CommerceSettings(workspace_id=ws.id, unknown_customer=UnknownCustomerPolicy.PARK, updated_at=clock.now()))
    db.flush()


def test_order_of_a_known_phone_is_written_with_its_lines_and_points(db: Session, clock: FrozenClock) -> None:
    # given a customer with a phone, and a product in the catalogue
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = make_customer(db, actor=actor, clock=clock, phone="13800138000").customer
    db.add(
        Product(
            workspace_id=ws.id,
            sku="SKU-2",
            name="面霜",
            category="护肤",
            price_fen=29_900,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
    )
    db.flush()
    # when an order names the phone in another spelling, with one line lacking name and category
    order = order_in(
        phone="+86 138-0013-8000",
        items=[{"sku": "SKU-1", "name": "洗面奶", "amount_fen": 19_900}, {"sku": "SKU-2", "amount_fen": 29_900}],
        shipping_fen=1_000,
        campaign="broadcast:12",
    )
    outcome = ingest_order(db, actor=actor, order=order, source=OrderSource.API, clock=clock)
    # then it belongs to that customer, the lines are complete and points were earned
    assert outcome.status == "created"
    written = outcome.order
    assert written is not None
    assert (written.customer_id, written.total_fen, written.shipping_fen, written.status) == (
        customer.id,
        50_800,
        1_000,
        "paid",
    )
    assert written.created_at == clock.now()
    assert written.paid_at == PAID
    assert written.campaign == "broadcast:12"
    lines = db.scalars(select(OrderItem).where(OrderItem.order_id == written.id).order_by(OrderItem.id)).all()
    assert [(i.sku, i.product_name, i.category, i.customer_id) for i in lines] == [
        ("SKU-1", "洗面奶", None, customer.id),
        ("SKU-2", "面霜", "护肤", customer.id),
    ]
    member = db.scalars(select(Member).where(Member.customer_id == customer.id)).one()
    assert member.points_balance == 508  # 1 point per yuan of 508.00
    assert _count(db, Customer, ws) == 1


def test_resend_with_the_same_content_is_unchanged(db: Session, clock: FrozenClock) -> None:
    # given an ingested order
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    first = ingest_order(db, actor=actor, order=order_in(external_id="T100"), source=OrderSource.API, clock=clock)
    # when it is sent again (its lines in another order, a later clock)
    clock.advance(timedelta(hours=1))
    again = ingest_order(db, actor=actor, order=order_in(external_id="T100"), source=OrderSource.API, clock=clock)
    # then nothing new is written
    assert (again.status, again.order) == ("unchanged", first.order)
    assert _count(db, Order, ws) == 1
    assert _count(db, PointsEntry, ws) == 1


def test_resend_with_other_amounts_is_a_conflict_naming_them(db: Session, clock: FrozenClock) -> None:
    # given an ingested order of one line
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    ingest_order(db, actor=actor, order=order_in(external_id="T7"), source=OrderSource.API, clock=clock)
    # when the same order number comes with another amount
    other = order_in(external_id="T7", items=[{"sku": "SKU-1", "name": "洗面奶", "amount_fen": 9_900}])
    outcome = ingest_order(db, actor=actor, order=other, source=OrderSource.API, clock=clock)
    # then it is rejected, naming the fields, and the stored order is untouched
    assert outcome.status == "rejected"
    assert isinstance(outcome.error, OrderConflict)
    assert outcome.error.details["fields"] == ["total_fen", "items"]
    stored = db.scalars(select(Order).where(Order.workspace_id == ws.id)).one()
    assert stored.total_fen == 19_900


def test_negative_amounts_are_refused_by_the_shape() -> None:
    # given an order line with a negative amount, then one whose lines do not add up
    # then the shape refuses both, naming the field
    with pytest.raises(ValidationError) as negative:
        order_in(items=[{"sku": "A", "amount_fen": -100}])
    assert [e["loc"] for e in negative.value.errors()] == [("total_fen",), ("items", 0, "amount_fen")]
    with pytest.raises(ValidationError, match="must equal total_fen"):
        order_in(total_fen=100)


def test_unknown_buyer_is_created_by_default(db: Session, clock: FrozenClock) -> None:
    # given no customer with the buyer's identities
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    order = order_in(
        buyer_name="林小姐",
        identities=[{"type": "phone", "value": "13900139000"}, {"type": "taobao", "value": "lin_xx"}],
    )
    # when the order arrives (policy: create)
    outcome = ingest_order(db, actor=actor, order=order, source=OrderSource.WEBHOOK, clock=clock)
    # then a customer is created with the buyer's name and identities, and owns the order
    assert outcome.status == "created"
    customer = db.scalars(select(Customer).where(Customer.workspace_id == ws.id)).one()
    assert customer.name == "林小姐"
    assert outcome.order is not None and outcome.order.customer_id == customer.id
    assert outcome.order.source == "webhook"
    identities = {(i.type, i.value) for i in db.scalars(select(Identity).where(Identity.customer_id == customer.id))}
    assert identities == {("phone", "+8613900139000"), ("taobao", "lin_xx")}


def test_unknown_buyer_is_parked_when_the_policy_says_so(db: Session, clock: FrozenClock) -> None:
    # given the park policy
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    _park_unknown(db, ws, clock)
    # when an order of an unknown phone arrives twice
    order = order_in(phone="13900139001", external_id="P1")
    outcome = ingest_order(db, actor=actor, order=order, source=OrderSource.IMPORT, clock=clock)
    again = ingest_order(db, actor=actor, order=order, source=OrderSource.IMPORT, clock=clock)
    # then it is parked once, nothing else is written
    assert (outcome.status, again.status) == ("parked", "parked")
    assert isinstance(outcome.error, UnknownCustomer)
    parked = db.scalars(select(ParkedOrder).where(ParkedOrder.workspace_id == ws.id)).one()
    assert (parked.external_id, parked.identities, parked.source) == ("P1", "phone:+8613900139001", "import")
    assert (_count(db, Customer, ws), _count(db, Order, ws)) == (0, 0)
    # and the same number with other content is a conflict
    other = order_in(phone="13900139001", external_id="P1", items=[{"sku": "B", "amount_fen": 1}])
    conflict = ingest_order(db, actor=actor, order=other, source=OrderSource.IMPORT, clock=clock)
    assert isinstance(conflict.error, OrderConflict)


def test_customer_id_is_used_and_followed_through_a_merge(db: Session, clock: FrozenClock) -> None:
    # given a customer merged into another
    from siyu.customers.service.merge import merge_customers

    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    survivor = make_customer(db, actor=actor, clock=clock, phone="13800000001").customer
    merged = make_customer(db, actor=actor, clock=clock, phone="13800000002").customer
    merge_customers(db, actor=actor, survivor_id=survivor.id, merged_id=merged.id, reason="test", clock=clock)
    # when an order names the merged customer's id, and another a customer that does not exist
    outcome = ingest_order(db, actor=actor, order=order_in(customer_id=merged.id), source=OrderSource.API, clock=clock)
    missing = ingest_order(
        db, actor=actor, order=order_in(customer_id=merged.id + 1000), source=OrderSource.API, clock=clock
    )
    # then the first goes to the survivor, the second is refused naming customer_id
    assert outcome.order is not None and outcome.order.customer_id == survivor.id
    assert isinstance(missing.error, InvalidOrder)
    assert missing.error.details == {"field": "customer_id"}


def test_staff_code_and_store_code_resolve(db: Session, clock: FrozenClock) -> None:
    # given a store and a staff member of it with a WeCom userid
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    store = make_store(db, workspace=ws, code="SH01")
    staff = make_staff(db, workspace=ws, clock=clock, store=store, wecom_user_id="zhangsan")
    # when orders carry the staff code, or an unknown store code
    by_staff = ingest_order(
        db, actor=actor, order=order_in(staff_code="zhangsan"), source=OrderSource.API, clock=clock
    ).order
    unknown = ingest_order(
        db, actor=actor, order=order_in(staff_code="nobody", store_code="BJ99"), source=OrderSource.API, clock=clock
    ).order
    # then the staff member and their store are attributed; unknown codes are kept as given
    assert by_staff is not None and (by_staff.staff_id, by_staff.store_id) == (staff.id, store.id)
    assert unknown is not None
    assert (unknown.staff_code, unknown.staff_id, unknown.store_id) == ("nobody", None, None)
    assert unknown.attributes["store_code"] == "BJ99"


def test_paid_in_the_future_is_refused(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    order = order_in(paid_at=clock.now() + timedelta(days=1))
    outcome = ingest_order(db, actor=actor, order=order, source=OrderSource.API, clock=clock)
    assert isinstance(outcome.error, InvalidOrder)
    assert outcome.error.details == {"field": "paid_at"}
    assert (_count(db, Order, ws), _count(db, Customer, ws)) == (0, 0)


def test_batch_reports_each_row_and_keeps_the_good_ones(db: Session, clock: FrozenClock) -> None:
    # given a batch: two orders of one new buyer, a duplicate of the first, a bad phone, a conflict
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    orders = [
        order_in(phone="13700137000", external_id="B1"),
        order_in(phone="13700137000", external_id="B2", paid_at=PAID + timedelta(days=1)),
        order_in(phone="13700137000", external_id="B1"),
        order_in(phone="12", external_id="B3"),
        order_in(phone="13700137000", external_id="B1", items=[{"sku": "X", "amount_fen": 5}]),
    ]
    # when it is ingested
    outcomes = ingest_orders(db, actor=actor, orders=orders, source=OrderSource.IMPORT, clock=clock)
    # then every row has its own outcome, and only the good rows were written
    assert [(o.row, o.status) for o in outcomes] == [
        (0, "created"),
        (1, "created"),
        (2, "unchanged"),
        (3, "rejected"),
        (4, "rejected"),
    ]
    assert outcomes[3].error is not None and outcomes[3].error.details == {"field": "phone"}
    assert isinstance(outcomes[4].error, OrderConflict)
    assert _count(db, Customer, ws) == 1
    assert outcomes[0].order is not None and outcomes[1].order is not None
    assert outcomes[0].order.customer_id == outcomes[1].order.customer_id
    assert _count(db, Order, ws) == 2


def test_a_failing_row_leaves_nothing_behind(db: Session, clock: FrozenClock) -> None:
    # given a coupon code that does not exist: the row fails after its buyer and order were written
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    outcomes = ingest_orders(
        db,
        actor=actor,
        orders=[order_in(phone="13600136000", coupon_code="NOPE2345XY"), order_in(phone="13600136001")],
        source=OrderSource.API,
        clock=clock,
    )
    # then that row is rejected naming coupon_code, with no customer, order or member left over
    assert [o.status for o in outcomes] == ["rejected", "created"]
    assert outcomes[0].error is not None and outcomes[0].error.details["field"] == "coupon_code"
    assert (_count(db, Customer, ws), _count(db, Order, ws), _count(db, Member, ws)) == (1, 1, 1)


def test_reading_roles_cannot_ingest(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    with pytest.raises(PermissionDenied):
        ingest_order(db, actor=actor_for(ws, role=Role.ANALYST), order=order_in(), source=OrderSource.API, clock=clock)
    assert _count(db, Order, ws) == 0


def test_the_orders_coupon_is_redeemed_and_given_back_on_full_refund(db: Session, clock: FrozenClock) -> None:
    # given a customer holding a ¥20-off coupon
    from siyu.commerce.coupons.issuing import issue_coupon
    from siyu.commerce.orders.refunds import refund_order
    from tests.commerce.coupons.factories import make_template

    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = make_customer(db, actor=actor, clock=clock, phone="13800138010").customer
    template = make_template(db, workspace=ws, clock=clock)
    clock.set(PAID - timedelta(days=1))
    coupon = issue_coupon(
        db,
        workspace_id=ws.id,
        template_id=template.id,
        customer_id=customer.id,
        source="api",
        idempotency_key="k1",
        clock=clock,
    )
    clock.set(PAID + timedelta(days=1))
    # when an order using it is ingested, sent again, then refunded in full
    order = order_in(customer_id=customer.id, coupon_code=coupon.code, discount_fen=2_000)
    outcome = ingest_order(db, actor=actor, order=order, source=OrderSource.API, clock=clock)
    again = ingest_order(db, actor=actor, order=order, source=OrderSource.API, clock=clock)
    assert outcome.order is not None
    # then the coupon is redeemed on that order once
    assert (outcome.status, again.status) == ("created", "unchanged")
    assert (coupon.state, coupon.order_id) == ("redeemed", outcome.order.id)
    # and the full refund gives it back (still valid)
    refund_order(
        db,
        actor=actor,
        order_id=outcome.order.id,
        external_id="R1",
        amount_fen=None,
        items=None,
        reason=None,
        refunded_at=None,
        clock=clock,
    )
    db.refresh(coupon)
    assert (coupon.state, coupon.order_id) == ("issued", None)
    # and another order naming the same coupon after a second use is refused, naming coupon_code
    second = ingest_order(
        db,
        actor=actor,
        order=order_in(customer_id=customer.id, coupon_code=coupon.code),
        source=OrderSource.API,
        clock=clock,
    )
    third = ingest_order(
        db,
        actor=actor,
        order=order_in(customer_id=customer.id, coupon_code=coupon.code),
        source=OrderSource.API,
        clock=clock,
    )
    assert second.status == "created"
    assert third.status == "rejected" and third.error is not None
    assert (third.error.code, third.error.details["field"]) == ("coupon_already_used", "coupon_code")
