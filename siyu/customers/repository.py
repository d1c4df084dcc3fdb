"""Queries over the customer pool, always scoped to the actor's workspace and visibility."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Select, String, and_, bindparam, exists, false, func, or_, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers.errors import CustomerNotFound
from siyu.kit.ids import parse_id
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.kit.phone import InvalidPhone, normalize_phone
from siyu.models import Customer, CustomerTag, Identity, Role, Staff

_IN_SLICE = 10_000


@dataclass
class CustomerFilter:
    """The filters of the customer list; also the selection for bulk tagging."""

    q: str | None = None
    """Name fragment, phone number (any common spelling) or exact identity value."""
    tag_ids: list[int] = field(default_factory=list)
    """Customers carrying every one of these tags."""
    lifecycle_stage: str | None = None
    owner_staff_id: int | None = None


def visibility_clause(actor: Actor) -> ColumnElement[bool]:
    """What part of the pool `actor` may see: everything, a store's, or one staff member's."""
    if actor.role is Role.STAFF:
        if actor.staff_id is None:
            return false()
        return Customer.owner_staff_id == actor.staff_id
    if actor.role is Role.STORE_MANAGER:
        if actor.store_id is None:
            return false()
        store_staff = select(Staff.id).where(Staff.workspace_id == actor.workspace_id, Staff.store_id == actor.store_id)
        return Customer.owner_staff_id.in_(store_staff)
    return true()


def pool_query(actor: Actor) -> Select[Customer]:
    """Customers in the actor's workspace and view, excluding profiles merged away."""
    return select(Customer).where(
        Customer.workspace_id == actor.workspace_id,
        Customer.merged_into_id.is_(None),
        visibility_clause(actor),
    )


def _search_clause(actor: Actor, q: str) -> ColumnElement[bool]:
    q = q.strip()
    conditions: list[ColumnElement[bool]] = [Customer.name.icontains(q, autoescape=True)]
    identity_values = {q}
    with contextlib.suppress(InvalidPhone):
        identity_values.add(normalize_phone(q))
    conditions.append(
        exists().where(
            Identity.customer_id == Customer.id,
            Identity.workspace_id == actor.workspace_id,
            Identity.value.in_(identity_values),
        )
    )
    if (customer_id := parse_id(q)) is not None:
        conditions.append(Customer.id == customer_id)
    return or_(*conditions)


def filtered_query(actor: Actor, flt: CustomerFilter) -> Select[Customer]:
    query = pool_query(actor)
    if flt.q:
        query = query.where(_search_clause(actor, flt.q))
    for tag_id in flt.tag_ids:
        query = query.where(exists().where(CustomerTag.customer_id == Customer.id, CustomerTag.tag_id == tag_id))
    if flt.lifecycle_stage:
        query = query.where(Customer.lifecycle_stage == flt.lifecycle_stage)
    if flt.owner_staff_id is not None:
        query = query.where(Customer.owner_staff_id == flt.owner_staff_id)
    return query


def list_customers(
    session: Session, actor: Actor, flt: CustomerFilter, *, cursor: str | None = None, limit: int = 50
) -> Page[Customer]:
    """A page of customers, newest first; the cursor is the last id seen."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = filtered_query(actor, flt)
    if cursor:
        query = query.where(Customer.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(Customer.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


def count_customers(session: Session, actor: Actor, flt: CustomerFilter) -> int:
    query = filtered_query(actor, flt).with_only_columns(func.count(Customer.id)).order_by(None)
    return int(session.scalar(query) or 0)


def get_visible(session: Session, actor: Actor, customer_id: int, *, for_update: bool = False) -> Customer:
    """A customer the actor may see, or `CustomerNotFound` (also for other workspaces' ids)."""
    query = select(Customer).where(
        Customer.id == customer_id,
        Customer.workspace_id == actor.workspace_id,
        visibility_clause(actor),
    )
    if for_update:
        query = query.with_for_update()
    customer = session.scalar(query)
    if customer is None:
        raise CustomerNotFound(f"customer {customer_id} not found")
    return customer


def lock_customers(session: Session, workspace_id: int, ids: Iterable[int]) -> list[Customer]:
    """Lock customers in id order (the lock order every writer follows, so none deadlock)."""
    wanted = sorted(set(ids))
    rows = session.scalars(
        select(Customer)
        .where(Customer.workspace_id == workspace_id, Customer.id.in_(wanted))
        .order_by(Customer.id)
        .with_for_update()
    ).all()
    return list(rows)


def find_by_identity(session: Session, workspace_id: int, type_: str, value: str) -> Customer | None:
    """The live customer holding an identity (already normalised)."""
    return session.scalar(
        select(Customer)
        .join(Identity, Identity.customer_id == Customer.id)
        .where(Identity.workspace_id == workspace_id, Identity.type == type_, Identity.value == value)
    )


def customer_ids_for_identities(
    session: Session, workspace_id: int, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Map each known `(type, value)` to its customer id, in one query per identity type.

    On PostgreSQL the values go in as one array joined through `unnest`, so every value is an
    index probe: with a long `IN (…)` list (an import batch holds ~1,000) the planner may filter
    the whole workspace instead. SQLite probes the unique index for `IN`.
    """
    by_type: dict[str, set[str]] = {}
    for type_, value in pairs:
        by_type.setdefault(type_, set()).add(value)
    on_postgres = session.get_bind().dialect.name == "postgresql"
    found: dict[tuple[str, str], int] = {}
    for type_, values in by_type.items():
        scope = (Identity.workspace_id == workspace_id, Identity.type == type_)
        if on_postgres:
            wanted = (
                func.unnest(bindparam("values", sorted(values), type_=ARRAY(String)))
                .table_valued("value")
                .render_derived()
            )
            query = select(Identity.value, Identity.customer_id).join_from(
                wanted, Identity, and_(*scope, Identity.value == wanted.c.value)
            )
            for value, customer_id in session.execute(query):
                found[(type_, value)] = customer_id
            continue
        # SQLite caps the bound values of one statement (250,000 by default): ask in slices.
        ordered = sorted(values)
        for start in range(0, len(ordered), _IN_SLICE):
            query = select(Identity.value, Identity.customer_id).where(
                *scope, Identity.value.in_(ordered[start : start + _IN_SLICE])
            )
            for value, customer_id in session.execute(query):
                found[(type_, value)] = customer_id
    return found


def identities_of(session: Session, customer_id: int) -> Sequence[Identity]:
    return session.scalars(
        select(Identity).where(Identity.customer_id == customer_id).order_by(Identity.type, Identity.id)
    ).all()
