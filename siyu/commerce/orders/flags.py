"""First order (首单) and repurchase (复购) flags: which orders fall inside the private domain, their
sequence, and the member's purchase flags derived from it.

An order is *in the pool* when it was paid at or after the customer joined the private domain: the
earliest `added_at` of their staff relationships, else the customer's `created_at`. Pool orders that
are not fully refunded are numbered 1, 2, 3… by `paid_at` (ties by id) in `Order.pool_sequence`;
orders paid before joining and fully refunded orders have none. The member flags follow from the
numbering: `first_order_id/at` is order 1, `orders_count` the highest number, `is_repurchaser`
means two or more, `last_order_at` is the newest numbered order, `spend_fen` the net paid of pool
orders. Everything is recomputed from the orders (never incremented), so an order arriving out of
order, a refund or a merge renumbers the customer's orders correctly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import datetime

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from siyu.kit.clock import Clock, as_utc
from siyu.loyalty.members import ensure_member
from siyu.models import Customer, Member, Order, OrderStatus, Relationship

_SLICE = 5_000


def _slices(ids: Collection[int]) -> Iterable[list[int]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), _SLICE):
        yield ordered[start : start + _SLICE]


def joined_at(session: Session, workspace_id: int, customer_ids: Collection[int]) -> dict[int, datetime]:
    """When each live customer joined the private domain (earliest relationship, else creation);
    customers merged away are left out (their orders moved to the survivor)."""
    out: dict[int, datetime] = {}
    for chunk in _slices(customer_ids):
        first_add = (
            select(Relationship.customer_id, func.min(Relationship.added_at).label("added_at"))
            .where(Relationship.workspace_id == workspace_id, Relationship.customer_id.in_(chunk))
            .group_by(Relationship.customer_id)
            .subquery()
        )
        rows = session.execute(
            select(Customer.id, Customer.created_at, first_add.c.added_at)
            .outerjoin(first_add, first_add.c.customer_id == Customer.id)
            .where(Customer.workspace_id == workspace_id, Customer.id.in_(chunk), Customer.merged_into_id.is_(None))
        )
        for customer_id, created_at, added_at in rows:
            # min() over a UTC column comes back naive from SQLite.
            out[customer_id] = as_utc(added_at) if added_at is not None else as_utc(created_at)
    return out


def lock_members(session: Session, workspace_id: int, customer_ids: Collection[int]) -> dict[int, Member]:
    """Lock the existing members of these customers in id order (the lock order after customers)."""
    found: dict[int, Member] = {}
    for chunk in _slices(customer_ids):
        rows = session.scalars(
            select(Member)
            .where(Member.workspace_id == workspace_id, Member.customer_id.in_(chunk))
            .order_by(Member.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        for member in rows:
            found[member.customer_id] = member
    return found


def is_counted(order: Order) -> bool:
    """Whether an order counts as a purchase (not fully refunded)."""
    return order.status != OrderStatus.REFUNDED


def recompute(
    session: Session,
    *,
    workspace_id: int,
    customer_ids: Collection[int],
    clock: Clock,
    members: dict[int, Member] | None = None,
) -> None:
    """Renumber the pool orders of these customers and rewrite their members' purchase flags.

    Members are created (base tier) where missing; pass `members` already locked by the caller
    to save the lookups. A handful of queries per call, whatever the number of customers.
    """
    if not customer_ids:
        return
    joins = joined_at(session, workspace_id, customer_ids)
    by_customer: dict[int, list[Order]] = defaultdict(list)
    for chunk in _slices(customer_ids):
        for order in session.scalars(
            select(Order)
            .where(Order.workspace_id == workspace_id, Order.customer_id.in_(chunk))
            .execution_options(populate_existing=True)  # merges move rows with bulk UPDATEs
        ):
            by_customer[order.customer_id].append(order)
    known = dict(members or {})
    missing = [cid for cid in customer_ids if cid not in known and cid in joins]
    if missing:
        known.update(lock_members(session, workspace_id, missing))
    now = clock.now()
    for customer_id in sorted(customer_ids):
        if customer_id not in joins:
            continue  # not a customer of this workspace (or gone)
        orders = by_customer.get(customer_id, [])
        joined = joins[customer_id]
        in_pool = sorted(
            (o for o in orders if as_utc(o.paid_at) >= joined),
            key=lambda o: (as_utc(o.paid_at), o.id),
        )
        sequence = 0
        numbered: list[Order] = []
        pool_ids = {o.id for o in in_pool}
        for order in orders:
            if order.id not in pool_ids and order.pool_sequence is not None:
                order.pool_sequence = None
        for order in in_pool:
            if is_counted(order):
                sequence += 1
                numbered.append(order)
                if order.pool_sequence != sequence:
                    order.pool_sequence = sequence
            elif order.pool_sequence is not None:
                order.pool_sequence = None
        member = known.get(customer_id)
        if member is not None and (inspect(member).deleted or inspect(member).detached):
            # Folded into another member by a merge earlier in this transaction: find the live one.
            member = lock_members(session, workspace_id, [customer_id]).get(customer_id)
        if member is None:
            if not orders:
                continue  # no orders and no member: nothing to record
            member = ensure_member(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock)
            known[customer_id] = member
        first = numbered[0] if numbered else None
        last = numbered[-1] if numbered else None
        flags = {
            "first_order_id": first.id if first else None,
            "first_order_at": first.paid_at if first else None,
            "orders_count": len(numbered),
            "is_repurchaser": len(numbered) >= 2,
            "last_order_at": last.paid_at if last else None,
            "spend_fen": sum(o.total_fen - o.refunded_fen for o in in_pool),
        }
        changed = False
        for name, value in flags.items():
            if getattr(member, name) != value:
                setattr(member, name, value)
                changed = True
        if changed:
            member.updated_at = now
            for name in flags:  # one UPDATE shape for all: the flush sends them as one executemany
                flag_modified(member, name)
    session.flush()


def recompute_customer(session: Session, *, workspace_id: int, customer_id: int, clock: Clock) -> None:
    """Recompute one customer's pool flags (after a relationship changes their join time, a merge…)."""
    recompute(session, workspace_id=workspace_id, customer_ids=[customer_id], clock=clock)


def recompute_after_merge(
    session: Session, *, workspace_id: int, survivor_id: int, merged_id: int, clock: Clock
) -> None:
    """Merge listener: the survivor now holds both customers' orders and relationships.

    Loyalty folds the merged customer's member into the survivor's in its own listener, which may
    run before or after this one: when the survivor has no member yet, the flags go on the merged
    customer's member, the one that will be moved over."""
    locked = lock_members(session, workspace_id, [survivor_id, merged_id])
    target = locked.get(survivor_id) or locked.get(merged_id)
    members = {survivor_id: target} if target is not None else None
    recompute(session, workspace_id=workspace_id, customer_ids=[survivor_id], clock=clock, members=members)
