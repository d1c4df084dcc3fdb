"""What a batch of orders needs looked up before it is written, fetched with one query per kind:
the buyers' customers (by id or identities), existing and parked orders with the same keys, the
products of their SKUs, the staff of their attribution codes and the stores of their store codes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from siyu.commerce.errors import InvalidOrder
from siyu.commerce.orders.schemas import OrderIn
from siyu.customers import repository as customers
from siyu.customers.identities import normalize_identity
from siyu.customers.service.definitions import identity_types
from siyu.kit.errors import DomainError
from siyu.models import Customer, Order, OrderItem, ParkedOrder, Product, Staff, Store

OrderKey = tuple[str, str]
"""(platform, external_id): an order's idempotency key inside its workspace."""
Pair = tuple[str, str]

_SLICE = 2_000


def order_key(order: OrderIn) -> OrderKey:
    return (str(order.platform), order.external_id)


def content_of(total_fen: int, discount_fen: int, shipping_fen: int, items: Sequence[tuple[str, int, int]]) -> str:
    """The content hash of an order: its amounts and its lines (sku, quantity, amount), in any order."""
    doc = {"total": total_fen, "discount": discount_fen, "shipping": shipping_fen, "items": sorted(items)}
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()


def content_hash(order: OrderIn) -> str:
    return content_of(
        order.total_fen,
        order.discount_fen,
        order.shipping_fen,
        [(i.sku, i.quantity, i.amount_fen) for i in order.items],
    )


def stored_items(session: Session, order_id: int) -> list[OrderItem]:
    return list(session.scalars(select(OrderItem).where(OrderItem.order_id == order_id).order_by(OrderItem.id)))


def stored_hash(session: Session, order: Order) -> str:
    """The content hash of a stored order (computed for rows written without one)."""
    if order.content_hash:
        return order.content_hash
    lines = [(i.sku, i.quantity, i.amount_fen) for i in stored_items(session, order.id)]
    return content_of(order.total_fen, order.discount_fen, order.shipping_fen, lines)


def differences(session: Session, order: Order, given: OrderIn) -> list[str]:
    """The fields in which `given` differs from the stored `order` (amounts, then "items")."""
    out = [
        name for name in ("total_fen", "discount_fen", "shipping_fen") if getattr(order, name) != getattr(given, name)
    ]
    stored = sorted((i.sku, i.quantity, i.amount_fen) for i in stored_items(session, order.id))
    if stored != sorted((i.sku, i.quantity, i.amount_fen) for i in given.items):
        out.append("items")
    return out


@dataclass
class BatchLookups:
    """Everything `ingest_orders` looks up for a batch, keyed for per-row use."""

    pairs: list[list[Pair]] = field(default_factory=list)
    """Normalised identities per row (empty when the row names `customer_id`)."""
    row_errors: dict[int, DomainError] = field(default_factory=dict)
    owners: dict[Pair, int] = field(default_factory=dict)
    customers: dict[int, Customer] = field(default_factory=dict)
    existing: dict[OrderKey, Order] = field(default_factory=dict)
    parked: dict[OrderKey, ParkedOrder] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    staff: dict[str, Staff] = field(default_factory=dict)
    stores: dict[str, Store] = field(default_factory=dict)

    def known_customer_ids(self) -> set[int]:
        return set(self.owners.values()) | set(self.customers)


def _slices(values: Sequence[object]) -> list[list[object]]:
    ordered = list(values)
    return [ordered[i : i + _SLICE] for i in range(0, len(ordered), _SLICE)]


def load(session: Session, workspace_id: int, orders: Sequence[OrderIn], *, phone_region: str = "CN") -> BatchLookups:
    """Look up what `orders` refer to: one query per kind of thing, not per row."""
    out = BatchLookups()
    known_types = identity_types(session, workspace_id)
    all_pairs: set[Pair] = set()
    for row, order in enumerate(orders):
        pairs: list[Pair] = []
        if order.customer_id is None:
            try:
                for identity in order.identities:
                    if identity.type not in known_types:
                        raise InvalidOrder(f"unknown identity type {identity.type!r}", details={"field": "identities"})
                    pair = (identity.type, normalize_identity(identity.type, identity.value, phone_region=phone_region))
                    if pair not in pairs:
                        pairs.append(pair)
            except DomainError as exc:
                out.row_errors[row] = exc
                pairs = []
        out.pairs.append(pairs)
        all_pairs.update(pairs)
    if all_pairs:
        out.owners = customers.customer_ids_for_identities(session, workspace_id, all_pairs)
    explicit = {o.customer_id for o in orders if o.customer_id is not None}
    for chunk in _slices(sorted(explicit)):
        for customer in session.scalars(
            select(Customer).where(Customer.workspace_id == workspace_id, Customer.id.in_(chunk))
        ):
            out.customers[customer.id] = customer
    keys = sorted({order_key(o) for o in orders})
    for chunk in _slices(keys):
        by_key = tuple_(Order.platform, Order.external_id).in_(chunk)
        for stored in session.scalars(select(Order).where(Order.workspace_id == workspace_id, by_key)):
            out.existing[(stored.platform, stored.external_id)] = stored
        for parked in session.scalars(
            select(ParkedOrder).where(
                ParkedOrder.workspace_id == workspace_id,
                tuple_(ParkedOrder.platform, ParkedOrder.external_id).in_(chunk),
            )
        ):
            out.parked[(parked.platform, parked.external_id)] = parked
    skus = sorted({i.sku for o in orders for i in o.items if not i.name or i.category is None})
    for chunk in _slices(skus):
        for product in session.scalars(
            select(Product).where(Product.workspace_id == workspace_id, Product.sku.in_(chunk))
        ):
            out.products[product.sku] = product
    codes = sorted({o.staff_code for o in orders if o.staff_code})
    for chunk in _slices(codes):
        for staff in session.scalars(
            select(Staff).where(Staff.workspace_id == workspace_id, Staff.wecom_user_id.in_(chunk))
        ):
            if staff.wecom_user_id:
                out.staff[staff.wecom_user_id] = staff
    store_codes = sorted({o.store_code for o in orders if o.store_code})
    for chunk in _slices(store_codes):
        for store in session.scalars(select(Store).where(Store.workspace_id == workspace_id, Store.code.in_(chunk))):
            out.stores[store.code] = store
    return out
