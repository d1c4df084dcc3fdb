"""Ingesting orders from any path (API, batch, import, webhook, parked sweep): one at a time or in
batches of up to 1,000, idempotent on (platform, external id).

Per order: the buyer is resolved (the given `customer_id`, else their identities; an unknown buyer
is created, or the order parked, per `CommerceSettings.unknown_customer`), the order and its lines
are written (product name and category from the catalogue when missing, the staff code and store
code resolved) and its coupon is redeemed. Each order runs in its own savepoint: a bad one is
reported with its row and leaves nothing behind, the others go in. The written orders' points and
tier progress are then applied together (`siyu.loyalty.purchases.apply_orders`: the same result
as one by one, with a few queries per batch; before a row that joins two customers, the orders
before it are applied first, so a merge finds them done). After the batch the pool flags
(首单 / 复购) of the touched customers are recomputed once, and their activity announced. A
resend with the same content is "unchanged"; with other amounts or items it is an `OrderConflict`
naming what differs.

A batch looks up what it needs with one query per kind (identities, existing orders, products,
staff, stores), then locks its known customers and their members in id order — the lock order every
writer follows — before writing anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.commerce.errors import InvalidOrder, OrderConflict, UnknownCustomer
from siyu.commerce.orders import flags, parked
from siyu.commerce.orders.resolution import (
    BatchLookups,
    OrderKey,
    Pair,
    content_hash,
    differences,
    load,
    order_key,
    stored_hash,
)
from siyu.commerce.orders.schemas import OrderIn
from siyu.customers import repository as customers
from siyu.customers.activity import customer_activity
from siyu.customers.service.profile import ProfileInput, ingest_customer
from siyu.kit.clock import Clock, as_utc
from siyu.kit.errors import Conflict, DomainError, InvalidInput
from siyu.models import (
    Customer,
    Order,
    OrderItem,
    OrderSource,
    OrderStatus,
    ParkedOrder,
    UnknownCustomerPolicy,
)

MAX_BATCH = 1000
FUTURE_TOLERANCE = timedelta(minutes=10)
"""A `paid_at` further ahead of siyu's clock than this is refused (a wrong zone, a wrong year)."""


@dataclass
class OrderOutcome:
    """What became of one order of a batch: "created", "unchanged", "parked" or "rejected"."""

    row: int
    status: str
    platform: str
    external_id: str
    order: Order | None = None
    error: DomainError | None = None
    parked_order: ParkedOrder | None = None


@dataclass
class _Batch:
    actor: Actor
    source: str
    clock: Clock
    policy: UnknownCustomerPolicy
    lookups: BatchLookups
    touched: set[int] = dataclasses.field(default_factory=set)
    written: dict[OrderKey, Order] = dataclasses.field(default_factory=dict)
    unapplied: list[Order] = dataclasses.field(default_factory=list)
    """Orders written whose points and tier progress are not applied yet (`_apply`)."""
    deferred: list[_Deferred] = dataclasses.field(default_factory=list)
    """Orders built but not inserted yet, kept out of the session until `_write_deferred`."""


@dataclass
class _Deferred:
    """An order whose row writes nothing else in place (no coupon, no parked order): inserted with
    the other deferred ones in one go."""

    row: int
    order: OrderIn
    outcome: OrderOutcome
    written: Order
    lines: list[dict[str, Any]]


def ingest_order(session: Session, *, actor: Actor, order: OrderIn, source: OrderSource, clock: Clock) -> OrderOutcome:
    """Ingest one order; a refusal comes back as a "rejected" outcome carrying the error."""
    return ingest_orders(session, actor=actor, orders=[order], source=source, clock=clock)[0]


def ingest_orders(
    session: Session, *, actor: Actor, orders: Sequence[OrderIn], source: OrderSource, clock: Clock
) -> list[OrderOutcome]:
    """Ingest up to 1,000 orders; each is created, unchanged, parked or rejected on its own."""
    from siyu.commerce.settings import unknown_customer_policy

    actor.require(Scope.COMMERCE_WRITE)
    if len(orders) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} orders per batch", details={"field": "orders"})
    if not orders:
        return []
    workspace_id = actor.workspace_id
    lookups = load(session, workspace_id, orders)
    known = lookups.known_customer_ids()
    customers.lock_customers(session, workspace_id, known)
    members = flags.lock_members(session, workspace_id, known)
    batch = _Batch(
        actor=actor,
        source=str(source),
        clock=clock,
        policy=unknown_customer_policy(session, workspace_id=workspace_id),
        lookups=lookups,
    )
    outcomes = [_ingest_row(session, batch, row, order) for row, order in enumerate(orders)]
    _write_deferred(session, batch)
    _apply(session, batch)
    if batch.touched:
        flags.recompute(session, workspace_id=workspace_id, customer_ids=batch.touched, clock=clock, members=members)
        for customer_id in sorted(batch.touched):
            customer_activity(session, workspace_id, customer_id)
    return outcomes


def _ingest_row(session: Session, batch: _Batch, row: int, order: OrderIn, *, defer: bool = True) -> OrderOutcome:
    key = order_key(order)
    outcome = OrderOutcome(row=row, status="rejected", platform=key[0], external_id=key[1])
    if (error := batch.lookups.row_errors.get(row)) is not None:
        outcome.error = error
        return outcome
    if key in batch.written and batch.written[key].id is None:
        _write_deferred(session, batch)  # a resend in the same batch compares with the stored order
    existing = batch.written.get(key) or batch.lookups.existing.get(key)
    if existing is not None:
        return _replay(session, batch, outcome, existing, order)
    # Rows that write only their order and lines (most) are deferred: the order is built but kept
    # out of the session, and the deferred orders are inserted together (`_write_deferred`) before
    # the next row that writes an order in place, so orders still get their ids in row order.
    deferred = defer and _deferrable(batch, key, order)
    if _may_merge(batch, row, order):
        deferred = False
        _write_deferred(session, batch)
        _apply(session, batch)  # a merge moves members: the orders before it are applied first
    if deferred:
        try:  # a known buyer needs no savepoint: nothing is written until `_write_deferred`
            customer_id = _known_buyer(session, batch, row, order)
            if customer_id is not None:
                _defer(batch, row, order, outcome, _build(batch, order, customer_id))
                return outcome
        except DomainError as exc:
            outcome.error = exc
            return outcome
    else:
        _write_deferred(session, batch)
    try:
        with session.begin_nested():
            customer_id, learned = _buyer(session, batch, row, order)
            if customer_id is None:
                outcome.parked_order = parked.park(
                    session,
                    workspace_id=batch.actor.workspace_id,
                    order=order,
                    pairs=batch.lookups.pairs[row],
                    source=batch.source,
                    existing=batch.lookups.parked.get(key),
                    clock=batch.clock,
                )
                outcome.status = "parked"
                outcome.error = UnknownCustomer(
                    f"no customer matches the buyer of {key[0]} order {key[1]}; the order was parked",
                    details={"field": "identities", "parked_order_id": outcome.parked_order.id},
                )
                batch.lookups.parked[key] = outcome.parked_order
                return outcome
            built = _build(batch, order, customer_id) if deferred else None
            written = _write(session, batch, order, customer_id) if built is None else built[0]
    except IntegrityError:
        # Another writer stored the same order (or claimed an identity) first: answer as a resend.
        raced = session.scalar(
            select(Order).where(
                Order.workspace_id == batch.actor.workspace_id, Order.platform == key[0], Order.external_id == key[1]
            )
        )
        if raced is None:
            outcome.error = Conflict("the order was written concurrently; send it again")
            return outcome
        return _replay(session, batch, outcome, raced, order)
    except DomainError as exc:
        outcome.error = exc
        return outcome
    batch.lookups.owners.update(learned)
    if built is not None:
        _defer(batch, row, order, outcome, built)
    else:
        _created(batch, key, outcome, written)
    return outcome


def _defer(
    batch: _Batch, row: int, order: OrderIn, outcome: OrderOutcome, built: tuple[Order, list[dict[str, Any]]]
) -> None:
    written, lines = built
    batch.deferred.append(_Deferred(row=row, order=order, outcome=outcome, written=written, lines=lines))
    _created(batch, order_key(order), outcome, written)


def _created(batch: _Batch, key: OrderKey, outcome: OrderOutcome, written: Order) -> None:
    batch.written[key] = written
    batch.unapplied.append(written)
    batch.touched.add(written.customer_id)
    outcome.status, outcome.order = "created", written


def _deferrable(batch: _Batch, key: OrderKey, order: OrderIn) -> bool:
    """Whether the row writes only its order and lines (no coupon, no parked order to resolve)."""
    waiting = batch.lookups.parked.get(key)
    return not order.coupon_code and (waiting is None or waiting.resolved_at is not None)


def _write_deferred(session: Session, batch: _Batch) -> None:
    """Insert the deferred orders, then all their lines, in one savepoint. If another writer stored
    one of them meanwhile, they are written again one by one (each in its own savepoint, a raced
    one answered as a resend)."""
    pending, batch.deferred = batch.deferred, []
    if not pending:
        return
    try:
        with session.begin_nested():
            session.add_all([d.written for d in pending])
            session.flush()
            lines = [line | {"order_id": d.written.id} for d in pending for line in d.lines]
            session.execute(insert(OrderItem), lines)
    except IntegrityError:
        for d in pending:
            batch.written.pop((d.written.platform, d.written.external_id), None)
            batch.unapplied = [o for o in batch.unapplied if o is not d.written]
        for d in pending:
            again = _ingest_row(session, batch, d.row, d.order, defer=False)
            for f in dataclasses.fields(OrderOutcome):
                setattr(d.outcome, f.name, getattr(again, f.name))


def _replay(session: Session, batch: _Batch, outcome: OrderOutcome, existing: Order, order: OrderIn) -> OrderOutcome:
    if stored_hash(session, existing) == content_hash(order):
        outcome.status, outcome.order = "unchanged", existing
        return outcome
    fields = differences(session, existing, order) or ["items"]
    outcome.error = OrderConflict(
        f"{outcome.platform} order {outcome.external_id} was already ingested with other {', '.join(fields)}",
        details={"field": fields[0], "fields": fields, "order_id": existing.id},
    )
    return outcome


def _apply(session: Session, batch: _Batch) -> None:
    """Points and tier progress of the orders written so far, in the order they were written, as
    if each had been applied right after it was written (`apply_orders`)."""
    from siyu.customers.activity import orders_paid
    from siyu.loyalty.purchases import apply_orders

    if batch.unapplied:
        apply_orders(session, orders=batch.unapplied, clock=batch.clock)
        orders_paid(session, batch.unapplied, batch.clock)
        batch.unapplied = []


def _may_merge(batch: _Batch, row: int, order: OrderIn) -> bool:
    """Whether the row's identities belong to two or more customers (OneID will merge them)."""
    if order.customer_id is not None or row in batch.lookups.row_errors:
        return False
    owners = {batch.lookups.owners[p] for p in batch.lookups.pairs[row] if p in batch.lookups.owners}
    return len(owners) >= 2


def _known_buyer(session: Session, batch: _Batch, row: int, order: OrderIn) -> int | None:
    """The buyer when reading is enough: the given customer (following merges; `InvalidOrder` when
    not found or erased) or the one customer all the row's identities belong to. None otherwise."""
    lookups = batch.lookups
    if order.customer_id is not None:
        customer = lookups.customers.get(order.customer_id)
        seen = 0
        while customer is not None and customer.merged_into_id is not None and seen < 20:
            customer = session.get(Customer, customer.merged_into_id)  # orders follow merges
            seen += 1
        if customer is None or customer.workspace_id != batch.actor.workspace_id:
            raise InvalidOrder(f"customer {order.customer_id} not found", details={"field": "customer_id"})
        if customer.erased_at is not None:
            raise InvalidOrder(f"customer {customer.id} was erased on request", details={"field": "customer_id"})
        return customer.id
    pairs = lookups.pairs[row]
    owners = {lookups.owners[p] for p in pairs if p in lookups.owners}
    if len(owners) == 1 and all(p in lookups.owners for p in pairs):
        return owners.pop()
    return None


def _buyer(session: Session, batch: _Batch, row: int, order: OrderIn) -> tuple[int | None, dict[Pair, int]]:
    """The customer the order belongs to (None: park it), and identities learned on the way."""
    known = _known_buyer(session, batch, row, order)
    if known is not None:
        return known, {}
    lookups = batch.lookups
    pairs = lookups.pairs[row]
    owners = {lookups.owners[p] for p in pairs if p in lookups.owners}
    if not owners and batch.policy == UnknownCustomerPolicy.PARK:
        return None, {}
    # New buyer, or new identities of a known one (possibly joining two profiles): OneID decides.
    writer = dataclasses.replace(batch.actor, scopes=batch.actor.scopes | {str(Scope.CUSTOMERS_WRITE)})
    values = {"name": order.buyer_name} if order.buyer_name and not owners else {}
    result = ingest_customer(
        session,
        actor=writer,
        identities=pairs,
        profile=ProfileInput(values=values),
        source=f"order:{order.platform}",
        clock=batch.clock,
    )
    customer_id = result.customer.id
    learned = {p: customer_id for p in pairs}
    if result.merged_ids:
        merged = set(result.merged_ids)
        learned |= {p: customer_id for p, owner in lookups.owners.items() if owner in merged}
        batch.touched.add(customer_id)
    return customer_id, learned


def _build(batch: _Batch, order: OrderIn, customer_id: int) -> tuple[Order, list[dict[str, Any]]]:
    """The order (not added to the session yet) and its lines' rows without their `order_id`."""
    now = batch.clock.now()
    paid_at = as_utc(order.paid_at)
    if paid_at > now + FUTURE_TOLERANCE:
        raise InvalidOrder(f"paid_at {order.paid_at.isoformat()} is in the future", details={"field": "paid_at"})
    lookups = batch.lookups
    staff = lookups.staff.get(order.staff_code) if order.staff_code else None
    store = lookups.stores.get(order.store_code) if order.store_code else None
    attributes = dict(order.attributes)
    if order.store_code and store is None:
        attributes["store_code"] = order.store_code  # kept as given, for when the store is set up
    if order.buyer_name:
        attributes.setdefault("buyer_name", order.buyer_name)
    written = Order(
        workspace_id=batch.actor.workspace_id,
        customer_id=customer_id,
        platform=str(order.platform),
        external_id=order.external_id,
        status=OrderStatus.PAID,
        total_fen=order.total_fen,
        discount_fen=order.discount_fen,
        shipping_fen=order.shipping_fen,
        refunded_fen=0,
        paid_at=paid_at,
        created_at=now,
        source=batch.source,
        staff_code=order.staff_code,
        staff_id=staff.id if staff else None,
        store_id=store.id if store else (staff.store_id if staff else None),
        campaign=order.campaign,
        coupon_code=order.coupon_code,
        content_hash=content_hash(order),
        attributes=attributes,
    )
    lines = []
    for item in order.items:
        product = lookups.products.get(item.sku)
        lines.append(
            {
                "workspace_id": written.workspace_id,
                "customer_id": customer_id,
                "sku": item.sku,
                "product_name": item.name or (product.name if product else item.sku),
                "category": item.category if item.category is not None else (product.category if product else None),
                "quantity": item.quantity,
                "amount_fen": item.amount_fen,
                "refunded_fen": 0,
            }
        )
    return written, lines


def _write(session: Session, batch: _Batch, order: OrderIn, customer_id: int) -> Order:
    written, lines = _build(batch, order, customer_id)
    session.add(written)
    session.flush()
    # Lines are never needed as objects here: one multi-row INSERT instead of the unit of work.
    session.execute(insert(OrderItem), [line | {"order_id": written.id} for line in lines])
    waiting = batch.lookups.parked.get((written.platform, written.external_id))
    if waiting is not None and waiting.resolved_at is None:
        waiting.resolved_at, waiting.order_id = written.created_at, written.id
    if written.coupon_code:
        from siyu.commerce.coupons.redeeming import redeem_for_order

        try:
            redeem_for_order(session, order=written, clock=batch.clock)
        except DomainError as exc:
            exc.details = {"field": "coupon_code"} | (exc.details if isinstance(exc.details, dict) else {})
            raise
    return written
