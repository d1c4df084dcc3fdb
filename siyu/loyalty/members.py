"""Members: a customer's loyalty account, created on first use and locked by every points movement."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.kit.sql import insert_or_ignore
from siyu.loyalty.errors import MemberNotFound
from siyu.models import Customer, Member, Tier, TierChange, TierChangeReason


def get_member(session: Session, workspace_id: int, customer_id: int) -> Member | None:
    """The customer's member row without locking it (for reads)."""
    return session.scalar(select(Member).where(Member.workspace_id == workspace_id, Member.customer_id == customer_id))


def lock_member(session: Session, workspace_id: int, member_id: int) -> Member:
    """Lock one member row (`FOR UPDATE`; SQLite serialises writers) and return it fresh.

    Lock order, for code that locks several things: member rows in id order, then rewards or
    coupon templates. Every points movement holds the member's lock until the transaction ends.
    """
    member = session.scalar(
        select(Member)
        .where(Member.workspace_id == workspace_id, Member.id == member_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if member is None:
        raise MemberNotFound(f"member {member_id} not found", details={"member_id": member_id})
    return member


def ensure_member(session: Session, *, workspace_id: int, customer_id: int, clock: Clock) -> Member:
    """The customer's member row, created (in the base tier, rank 0, if one exists) and locked.

    Concurrent first purchases race on the unique (workspace, customer) key; one inserts, both lock.
    """
    existing = session.scalar(
        select(Member)
        .where(Member.workspace_id == workspace_id, Member.customer_id == customer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if existing is not None:
        return existing  # found and locked in one query
    customer = session.execute(
        select(Customer.merged_into_id, Customer.erased_at).where(
            Customer.workspace_id == workspace_id, Customer.id == customer_id
        )
    ).first()
    if customer is None or customer.erased_at is not None:
        raise MemberNotFound(f"customer {customer_id} not found", details={"customer_id": customer_id})
    if customer.merged_into_id is not None:
        # A link, cookie or API call that still names a merged-away profile: the points go to the
        # person's surviving account, never to a new orphan one.
        return ensure_member(session, workspace_id=workspace_id, customer_id=customer.merged_into_id, clock=clock)
    now = clock.now()
    base_tier = session.scalar(select(Tier).where(Tier.workspace_id == workspace_id, Tier.rank == 0))
    inserted = insert_or_ignore(
        session,
        Member,
        _new_member(workspace_id, customer_id, base_tier, now),
        ["workspace_id", "customer_id"],
    )
    member_id = session.scalars(
        select(Member.id).where(Member.workspace_id == workspace_id, Member.customer_id == customer_id)
    ).one()
    member = lock_member(session, workspace_id, member_id)
    if inserted and base_tier is not None:
        session.add(_joined(member, base_tier, now))
    return member


def ensure_members(
    session: Session, *, workspace_id: int, customer_ids: Collection[int], clock: Clock
) -> dict[int, Member]:
    """`ensure_member` for many customers at once, by customer id: the existing members locked in id
    order with one query, the missing ones created (base tier, a "joined" change each) and locked
    after them. Raises `MemberNotFound` for a customer that does not exist, like `ensure_member`."""
    wanted = sorted(set(customer_ids))
    if not wanted:
        return {}
    found = {
        member.customer_id: member
        for member in session.scalars(
            select(Member)
            .where(Member.workspace_id == workspace_id, Member.customer_id.in_(wanted))
            .order_by(Member.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    missing = [cid for cid in wanted if cid not in found]
    if not missing:
        return found
    known = set(
        session.scalars(
            select(Customer.id).where(
                Customer.workspace_id == workspace_id,
                Customer.id.in_(missing),
                Customer.merged_into_id.is_(None),
                Customer.erased_at.is_(None),
            )
        )
    )
    for customer_id in missing:
        if customer_id not in known:
            raise MemberNotFound(f"customer {customer_id} not found", details={"customer_id": customer_id})
    now = clock.now()
    base_tier = session.scalar(select(Tier).where(Tier.workspace_id == workspace_id, Tier.rank == 0))
    inserted = _insert_members(session, [_new_member(workspace_id, cid, base_tier, now) for cid in missing])
    joined = []
    for member in session.scalars(
        select(Member)
        .where(Member.workspace_id == workspace_id, Member.customer_id.in_(missing))
        .order_by(Member.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ):
        found[member.customer_id] = member
        if member.customer_id in inserted and base_tier is not None:
            joined.append(_joined_row(member, base_tier, now))
    if joined:  # rows nobody reads back here: one executemany rather than a flush of objects
        session.execute(insert(cast(Table, TierChange.__table__)), joined)
    return found


def _new_member(workspace_id: int, customer_id: int, base_tier: Tier | None, now: datetime) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "customer_id": customer_id,
        "tier_id": base_tier.id if base_tier else None,
        "earned_tier_id": base_tier.id if base_tier else None,
        "tier_since": now if base_tier else None,
        "points_balance": 0,
        "points_debt": 0,
        "points_earned_total": 0,
        "spend_fen": 0,
        "orders_count": 0,
        "is_repurchaser": False,
        "checkin_streak": 0,
        "created_at": now,
        "updated_at": now,
    }


def _joined_row(member: Member, base_tier: Tier, now: datetime) -> dict[str, Any]:
    """The "joined" tier change of a new member (in the base tier)."""
    return {
        "workspace_id": member.workspace_id,
        "member_id": member.id,
        "from_tier_id": None,
        "to_tier_id": base_tier.id,
        "reason": TierChangeReason.JOINED,
        "detail": None,
        "source_ref": None,
        "actor": None,
        "idempotency_key": None,
        "changed_at": now,
    }


def _joined(member: Member, base_tier: Tier, now: datetime) -> TierChange:
    return TierChange(**_joined_row(member, base_tier, now))


def _insert_members(session: Session, rows: list[dict[str, Any]]) -> set[int]:
    """Insert member rows, skipping customers that have one (a concurrent first purchase): the
    customer ids inserted, with one INSERT … ON CONFLICT DO NOTHING for them all."""
    upsert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    table = cast(Table, Member.__table__)
    inserted: set[int] = set()
    if rows:  # one executemany (batched by the dialect), the RETURNING rows only for those inserted
        statement = (
            upsert(table)
            .on_conflict_do_nothing(index_elements=["workspace_id", "customer_id"])
            .returning(table.c.customer_id)
        )
        inserted.update(session.connection().execute(statement, rows).scalars())
    return inserted
