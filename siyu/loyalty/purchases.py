"""What an order and its refunds do to a member: purchase points at the tier's multiplier, an
immediate tier upgrade, and exactly undoing both when the order is refunded.

Points for an order = floor(net fen × points_per_yuan × multiplier_pct / 10000), with the
program and the member's tier at the time the order is applied. That rate (points_per_yuan ×
multiplier_pct) is kept on the earn entry's `source_ref` ("order:123:x150"), so a refund recomputes
what the order's new net earns at the same rate, whatever changed since, and takes back exactly
the difference.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from siyu.kit.clock import Clock, as_utc
from siyu.loyalty.members import ensure_members, get_member, lock_member
from siyu.loyalty.points import ledger
from siyu.loyalty.program import brand_zone, get_program, lot_expiry
from siyu.loyalty.tiers import rules
from siyu.loyalty.tiers.service import earned_tier_of, paid_tier_of, undo_order_upgrade, upgrade_if_met, welcome_check
from siyu.models import LoyaltyProgram, Member, Order, PointsEntry, PointsReason, Refund, TierBasis

_RATE = re.compile(r"^order:\d+:x(\d+)$")
_WRITTEN = ("tier_id", "earned_tier_id", "tier_since", "grace_until", "points_balance", "points_earned_total")
"""Member columns a batch may change (besides `updated_at`)."""


def earn_key(order_id: int) -> str:
    """The idempotency key of an order's purchase points."""
    return f"order:{order_id}:earn"


def order_points(net_fen: int, rate: int) -> int:
    """Points a net amount earns at `rate` = points_per_yuan × multiplier_pct (fractions dropped)."""
    return max(net_fen, 0) * rate // 10_000


def purchase_rate(session: Session, member: Member, clock: Clock) -> int:
    """points_per_yuan × the multiplier (%) of the tier the member has now."""
    program = get_program(session, member.workspace_id, clock=clock)
    return _rate(session, member, program, clock.now())


def _rate(session: Session, member: Member, program: LoyaltyProgram, now: datetime) -> int:
    earned = earned_tier_of(session, member)
    paid = paid_tier_of(session, member, now)
    tier = paid if paid is not None and (earned is None or paid.rank > earned.rank) else earned
    multiplier = tier.points_multiplier_pct if tier is not None else 100
    return int(program.points_per_yuan) * int(multiplier)


def _entry(session: Session, workspace_id: int, key: str) -> PointsEntry | None:
    return session.scalar(
        select(PointsEntry).where(PointsEntry.workspace_id == workspace_id, PointsEntry.idempotency_key == key)
    )


def apply_order(session: Session, *, order: Order, clock: Clock) -> None:
    """Give the buyer their purchase points and upgrade their tier if they now qualify. Safe to call
    again for the same order: the points are keyed `order:{id}:earn` and an upgrade happens once."""
    apply_orders(session, orders=[order], clock=clock)


def apply_orders(session: Session, *, orders: Sequence[Order], clock: Clock) -> None:
    """`apply_order` for a batch of written orders, with the same result as applying each right after
    it was written, in the order given: purchase points at the tier the member has at that moment,
    and an upgrade named after the order whose spend (or points) crossed the threshold.

    The batch reads what it needs once: the program, zone and earned tiers, the members (created
    where missing, locked in id order), the earn keys already used, and the qualifying values of
    all its members in one grouped query; per order only the ledger writes (and upgrades) remain.
    Safe to call again: earned orders are skipped, an upgrade happens once."""
    by_workspace: dict[int, list[Order]] = {}
    for order in orders:
        by_workspace.setdefault(order.workspace_id, []).append(order)
    for workspace_id, group in by_workspace.items():
        _apply_batch(session, workspace_id, group, clock)


def _apply_batch(session: Session, workspace_id: int, orders: list[Order], clock: Clock) -> None:
    members = ensure_members(
        session, workspace_id=workspace_id, customer_ids={o.customer_id for o in orders}, clock=clock
    )
    program = get_program(session, workspace_id, clock=clock)
    zone = brand_zone(session, workspace_id)
    ladder = rules.earned_tiers(session, workspace_id)
    welcomes = welcome_check(session, workspace_id)
    now = clock.now()
    win = rules.window(program, now, zone)
    keys = [earn_key(o.id) for o in orders]
    earned_keys = set(
        session.scalars(
            select(PointsEntry.idempotency_key).where(
                PointsEntry.workspace_id == workspace_id, PointsEntry.idempotency_key.in_(keys)
            )
        )
    )
    by_points = program.tier_basis == TierBasis.POINTS
    # The qualifying value before the batch: its orders are written already, so their spend is
    # taken out here and added back one order at a time (points are earned one order at a time).
    value = rules.qualifying_values(session, program, list(members.values()), win)
    if not by_points:
        for order in orders:
            value[members[order.customer_id].id] -= _spend_in(order, win)
    earnings: list[ledger.Earning] = []
    for order in orders:
        member = members[order.customer_id]
        key = earn_key(order.id)
        if key not in earned_keys:
            earned_keys.add(key)
            at = clock.now()
            rate = _rate(session, member, program, at)
            points = order_points(order.total_fen - order.refunded_fen, rate)
            if points > 0:
                earnings.append(
                    ledger.Earning(
                        member=member,
                        points=points,
                        reason=PointsReason.PURCHASE,
                        description=f"订单 {order.platform} {order.external_id} 消费得积分",
                        idempotency_key=key,
                        # Points expire counting from the payment, not from when siyu heard of it:
                        # an imported or late order's points are as old as the order.
                        expires_at=lot_expiry(program.expiry_policy, program.expiry_n, min(order.paid_at, at), zone),
                        source_ref=f"order:{order.id}:x{rate}",
                    )
                )
                if by_points:
                    value[member.id] += points
        if not by_points:
            value[member.id] += _spend_in(order, win)
        upgrade_if_met(
            session,
            member=member,
            program=program,
            ladder=ladder,
            win=win,
            value=value[member.id],
            clock=clock,
            source_ref=f"order:{order.id}",
            welcomes=welcomes,
            flush=False,
        )
    # The points go in after the loop: nothing in it reads them (the rate depends on the tier only).
    for member in members.values():  # one UPDATE shape for all: the flush sends them as one executemany
        for name in _WRITTEN:
            flag_modified(member, name)
    ledger.earn_many(session, earnings=earnings, clock=clock)
    # An old order's points may be past their expiry already: they show as earned, then expired.
    for member in {
        id(e.member): e.member for e in earnings if e.expires_at is not None and e.expires_at <= now
    }.values():
        ledger.expire_due(session, member=member, clock=clock)
    session.flush()  # the members and tier changes, in one go


def _spend_in(order: Order, win: rules.Window) -> int:
    """What the order adds to its buyer's spend in the window (`rules.spend_by_customer`)."""
    paid_at = as_utc(order.paid_at)
    return order.total_fen - order.refunded_fen if win.start <= paid_at <= win.end else 0


def apply_refund(session: Session, *, order: Order, refund: Refund, clock: Clock) -> None:
    """Take back what the refunded part of the order earned: the order's points are recomputed on its
    new net (`order.refunded_fen` already includes this refund) at the rate it earned with, and the
    difference is reversed (key `refund:{refund.id}:points`); points already spent become debt. If
    the order's upgrade no longer qualifies, the member goes back (reason refund). Safe to call again."""
    found = get_member(session, order.workspace_id, order.customer_id)
    if found is None:
        return  # no loyalty account: the order earned nothing
    member = lock_member(session, order.workspace_id, found.id)
    key = f"refund:{refund.id}:points"
    earned = _entry(session, order.workspace_id, earn_key(order.id))
    if earned is not None and _entry(session, order.workspace_id, key) is None:
        match = _RATE.match(earned.source_ref or "")
        rate = int(match.group(1)) if match else None
        left = earned.amount - ledger.reversed_total(session, earned.id)
        if rate is None:  # an entry written without its rate: keep the proportion instead
            target = earned.amount * max(order.total_fen - order.refunded_fen, 0) // max(order.total_fen, 1)
        else:
            target = order_points(order.total_fen - order.refunded_fen, rate)
        if left > target:
            ledger.reverse_earn(
                session,
                member=member,
                entry_id=earned.id,
                points=left - target,
                description=f"订单 {order.platform} {order.external_id} 退款扣回积分",
                idempotency_key=key,
                clock=clock,
                reason=PointsReason.REFUND,
                source_ref=f"refund:{refund.id}",
            )
    undo_order_upgrade(session, member=member, order_id=order.id, refund_id=refund.id, clock=clock)
