"""The demo brand's purchase points and tier upgrades, written in bulk from its orders.

The rules are the loyalty module's (`siyu.loyalty.purchases`): an order earns floor(net fen ×
points_per_yuan × the multiplier of the tier held before it / 10000) points, as a lot expiring per
the program; the member is upgraded at once when the net spend of the 365 days up to the order
reaches a tier's threshold (a `TierChange` "qualified" naming the order). Twenty thousand customers'
orders through the ledger one by one would take minutes, so the entries, lots and tier changes are
computed here and inserted in bulk — the same rows the ledger writes (keys `order:{id}:earn`, a
running `balance_after`), so the cached balance equals the ledger. Members and their pool flags
come from the orders service (`siyu.commerce.orders.flags.recompute`); lots already past their
expiry are then expired through the ledger itself.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.commerce.orders import flags
from siyu.demo.bulk import insert_returning_ids, insert_rows
from siyu.kit.clock import Clock, as_utc
from siyu.loyalty.members import lock_member
from siyu.loyalty.points import ledger
from siyu.loyalty.program import brand_zone, get_program, lot_expiry
from siyu.loyalty.purchases import earn_key, order_points
from siyu.models import (
    Member,
    Order,
    PointsEntry,
    PointsKind,
    PointsLot,
    PointsReason,
    Tier,
    TierChange,
    TierChangeReason,
)

WINDOW = timedelta(days=365)
CHUNK = 2_000


@dataclass
class _Account:
    """One member's history as it is computed."""

    member_id: int
    rank: int = 0
    balance: int = 0
    earned: int = 0
    tier_since: datetime | None = None
    recent: deque[tuple[datetime, int]] = field(default_factory=deque)
    """(paid at, net fen) of the orders inside the rolling window."""


def _yuan(fen: int) -> str:
    return f"{fen / 100:,.2f}"


def build_purchase_history(session: Session, *, workspace_id: int, clock: Clock) -> dict[str, int]:
    """Members for every buyer, purchase points and tier upgrades from all the brand's orders."""
    buyers = sorted(set(session.scalars(select(Order.customer_id).where(Order.workspace_id == workspace_id))))
    for start in range(0, len(buyers), CHUNK):
        flags.recompute(session, workspace_id=workspace_id, customer_ids=buyers[start : start + CHUNK], clock=clock)
    program = get_program(session, workspace_id, clock=clock)
    zone = brand_zone(session, workspace_id)
    tiers = sorted(
        session.scalars(select(Tier).where(Tier.workspace_id == workspace_id, Tier.is_paid.is_(False))),
        key=lambda t: t.rank,
    )
    members = {
        customer_id: _Account(member_id)
        for customer_id, member_id in session.execute(
            select(Member.customer_id, Member.id).where(Member.workspace_id == workspace_id)
        )
    }
    orders = session.execute(
        select(
            Order.id,
            Order.customer_id,
            Order.platform,
            Order.external_id,
            Order.total_fen,
            Order.refunded_fen,
            Order.paid_at,
        )
        .where(Order.workspace_id == workspace_id)
        .order_by(Order.paid_at, Order.id)
    ).all()
    entries: list[dict[str, Any]] = []
    lots: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    for order_id, customer_id, platform, external_id, total, refunded, paid_at in orders:
        account = members.get(customer_id)
        if account is None:
            continue
        paid_at = as_utc(paid_at)
        net = total - refunded
        rate = program.points_per_yuan * tiers[account.rank].points_multiplier_pct
        points = order_points(net, rate)
        if points > 0:
            account.balance += points
            account.earned += points
            entries.append(
                {
                    "workspace_id": workspace_id,
                    "member_id": account.member_id,
                    "amount": points,
                    "kind": PointsKind.EARN,
                    "reason": PointsReason.PURCHASE,
                    "description": f"订单 {platform} {external_id} 消费得积分",
                    "source_ref": f"order:{order_id}:x{rate}",
                    "idempotency_key": earn_key(order_id),
                    "reverses_entry_id": None,
                    "shortfall": 0,
                    "balance_after": account.balance,
                    "actor": None,
                    "occurred_at": paid_at,
                }
            )
            lots.append(
                {
                    "workspace_id": workspace_id,
                    "member_id": account.member_id,
                    "amount": points,
                    "remaining": points,
                    "earned_at": paid_at,
                    "expires_at": lot_expiry(program.expiry_policy, program.expiry_n, paid_at, zone),
                }
            )
        account.recent.append((paid_at, net))
        while account.recent and account.recent[0][0] < paid_at - WINDOW:
            account.recent.popleft()
        spent = sum(fen for _, fen in account.recent)
        met = max((t.rank for t in tiers if spent >= t.threshold), default=0)
        if met > account.rank:
            changes.append(
                {
                    "workspace_id": workspace_id,
                    "member_id": account.member_id,
                    "from_tier_id": tiers[account.rank].id,
                    "to_tier_id": tiers[met].id,
                    "reason": TierChangeReason.QUALIFIED,
                    "detail": f"近365天消费 {_yuan(spent)} 元 ≥ {_yuan(tiers[met].threshold)} 元",
                    "source_ref": f"order:{order_id}",
                    "actor": None,
                    "changed_at": paid_at,
                }
            )
            account.rank, account.tier_since = met, paid_at
    entry_ids = insert_returning_ids(session, PointsEntry, entries)
    for lot, entry_id in zip(lots, entry_ids, strict=True):
        lot["entry_id"] = entry_id
    insert_rows(session, PointsLot, lots)
    insert_rows(session, TierChange, changes)
    for upgraded in (True, False):  # bulk UPDATEs by primary key, each group with the same columns
        rows = [
            {
                "id": account.member_id,
                "points_balance": account.balance,
                "points_earned_total": account.earned,
                "tier_id": tiers[account.rank].id,
                "earned_tier_id": tiers[account.rank].id,
            }
            | ({"tier_since": account.tier_since} if upgraded else {})
            for account in members.values()
            if (account.tier_since is not None) == upgraded
        ]
        if rows:
            session.execute(update(Member), rows)
    session.expire_all()
    expired = _expire_past_lots(session, workspace_id=workspace_id, clock=clock)
    return {"members": len(members), "entries": len(entries), "tier_changes": len(changes), "expired_lots": expired}


def _expire_past_lots(session: Session, *, workspace_id: int, clock: Clock) -> int:
    """Lots whose expiry has passed go through the ledger's own expiry (a handful at most)."""
    due = sorted(
        set(
            session.scalars(
                select(PointsLot.member_id).where(
                    PointsLot.workspace_id == workspace_id,
                    PointsLot.remaining > 0,
                    PointsLot.expires_at <= clock.now(),
                )
            )
        )
    )
    expired = 0
    for member_id in due:
        member = lock_member(session, workspace_id, member_id)
        expired += len(ledger.expire_due(session, member=member, clock=clock))
    return expired


def balances(session: Session, workspace_id: int) -> dict[int, int]:
    """Customer id → points balance, for picking who redeems."""
    return defaultdict(
        int,
        session.execute(
            select(Member.customer_id, Member.points_balance).where(Member.workspace_id == workspace_id)
        ).all(),
    )
