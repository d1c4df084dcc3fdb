"""Customer merges: one person, one loyalty account.

When the merged customer has a member row, it follows the survivor: moved whole if the survivor has
none, else folded into the survivor's — its points entries, lots, redemptions, task completions and
tier history move over (slots that collide get the next free number), the cached balance is
recomputed from the ledger, debts and earned totals add up, the higher tier is kept and the fold is
recorded as a tier change (source `merge:{merged customer id}`). Purchase flags (first order,
orders count, spend) are the orders area's and are recomputed by its own merge listener.

A fold cannot be undone by undoing the merge: the points history stays with the survivor.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.customers.service.merge import register_merge_listener
from siyu.kit.clock import Clock
from siyu.loyalty.members import get_member, lock_member
from siyu.loyalty.points.ledger import balance_from_ledger
from siyu.loyalty.tiers.service import earned_tier_of, higher_tier, refresh_effective
from siyu.models import (
    PointsEntry,
    PointsLot,
    Redemption,
    TaskCompletion,
    TierChange,
    TierChangeReason,
)


def fold_members(session: Session, *, workspace_id: int, survivor_id: int, merged_id: int, clock: Clock) -> None:
    """Merge listener (see the module docstring)."""
    merged_row = get_member(session, workspace_id, merged_id)
    if merged_row is None:
        return
    survivor_row = get_member(session, workspace_id, survivor_id)
    now = clock.now()
    if survivor_row is None:
        member = lock_member(session, workspace_id, merged_row.id)
        member.customer_id = survivor_id
        member.updated_at = now
        session.flush()
        return
    first, second = sorted([survivor_row.id, merged_row.id])
    locked = {m.id: m for m in (lock_member(session, workspace_id, first), lock_member(session, workspace_id, second))}
    survivor, merged = locked[survivor_row.id], locked[merged_row.id]

    survivor_earned, merged_earned = earned_tier_of(session, survivor), earned_tier_of(session, merged)
    before = survivor_earned
    for model in (PointsEntry, PointsLot, TierChange):
        session.execute(
            update(model)
            .where(model.workspace_id == workspace_id, model.member_id == merged.id)
            .values(member_id=survivor.id),
            execution_options={"synchronize_session": False},
        )
    _move_slotted(session, TaskCompletion, ("task_id", "period_key"), survivor.id, merged.id)
    _move_slotted(session, Redemption, ("reward_id",), survivor.id, merged.id)

    survivor.points_balance = balance_from_ledger(session, survivor.id)
    survivor.points_debt += merged.points_debt
    survivor.points_earned_total += merged.points_earned_total
    if merged.last_checkin_on is not None and (
        survivor.last_checkin_on is None or merged.last_checkin_on > survivor.last_checkin_on
    ):
        survivor.last_checkin_on, survivor.checkin_streak = merged.last_checkin_on, merged.checkin_streak
    kept = higher_tier(survivor_earned, merged_earned)
    if kept is not None and merged_earned is not None and kept.id == merged_earned.id and kept is not survivor_earned:
        survivor.grace_until = merged.grace_until
    survivor.earned_tier_id = kept.id if kept else None
    if (
        merged.paid_tier_id is not None
        and merged.paid_tier_until is not None
        and (survivor.paid_tier_until is None or merged.paid_tier_until > survivor.paid_tier_until)
    ):
        survivor.paid_tier_id, survivor.paid_tier_until = merged.paid_tier_id, merged.paid_tier_until
    refresh_effective(session, survivor, now)
    session.add(
        TierChange(
            workspace_id=workspace_id,
            member_id=survivor.id,
            from_tier_id=before.id if before else None,
            to_tier_id=kept.id if kept else None,
            reason=TierChangeReason.MANUAL,
            detail=f"合并客户 {merged_id}：保留两者中较高的等级",
            source_ref=f"merge:{merged_id}",
            actor=None,
            changed_at=now,
        )
    )
    session.flush()
    session.delete(merged)
    session.flush()


def _move_slotted(session: Session, model: Any, key: tuple[str, ...], survivor_id: int, merged_id: int) -> None:
    """Move rows whose unique key includes (…, member_id, slot): colliding slots get the next free one."""
    used: dict[tuple[Any, ...], set[int]] = defaultdict(set)
    for row in session.scalars(select(model).where(model.member_id == survivor_id)):
        used[tuple(getattr(row, k) for k in key)].add(row.slot)
    for row in session.scalars(select(model).where(model.member_id == merged_id).order_by(model.id)):
        taken = used[tuple(getattr(row, k) for k in key)]
        if row.slot in taken:
            row.slot = max(taken) + 1
        taken.add(row.slot)
        row.member_id = survivor_id
    session.flush()


register_merge_listener(fold_members)
