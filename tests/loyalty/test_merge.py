"""Customer merges fold the merged customer's loyalty account into the survivor's."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

import siyu.loyalty.merge  # noqa: F401 - registers the fold
from siyu.customers.service.merge import merge_customers
from siyu.kit.clock import FrozenClock
from siyu.loyalty.members import get_member
from siyu.loyalty.points import ledger
from siyu.loyalty.purchases import apply_order
from siyu.models import LoyaltyTask, Member, PointsLot, TaskCompletion, TaskKind, TierChange
from tests.factories import actor_for, make_workspace
from tests.loyalty.tiers.factories import make_ladder, new_customer, place_order


def _check_in(db: Session, task: LoyaltyTask, member: Member, clock: FrozenClock) -> None:
    db.add(
        TaskCompletion(
            workspace_id=member.workspace_id,
            task_id=task.id,
            member_id=member.id,
            period_key="2026-11-23",
            slot=1,
            streak=1,
            completed_at=clock.now(),
        )
    )
    db.flush()


def test_both_accounts_fold_into_the_survivor(db: Session, clock: FrozenClock) -> None:
    # given a 高级 survivor (1,500 points) and a 尊享 duplicate (6,000 points), both checked in today
    ws = make_workspace(db, clock=clock)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    survivor, duplicate = new_customer(db, workspace=ws, clock=clock), new_customer(db, workspace=ws, clock=clock)
    apply_order(db, order=place_order(db, customer=survivor, clock=clock, total_fen=150_000), clock=clock)
    apply_order(db, order=place_order(db, customer=duplicate, clock=clock, total_fen=600_000), clock=clock)
    task = LoyaltyTask(
        workspace_id=ws.id,
        key="check_in",
        kind=TaskKind.CHECK_IN,
        name="每日签到",
        points=5,
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    db.add(task)
    db.flush()
    kept, folded = get_member(db, ws.id, survivor.id), get_member(db, ws.id, duplicate.id)
    assert kept is not None and folded is not None
    folded_id = folded.id
    _check_in(db, task, kept, clock)
    _check_in(db, task, folded, clock)
    # when the duplicate is merged into the survivor
    merge_customers(
        db, actor=actor_for(ws), survivor_id=survivor.id, merged_id=duplicate.id, reason="同一手机号", clock=clock
    )
    # then one account holds 7,500 points (= its ledger = its lots), in the higher tier, with both check-ins
    member = get_member(db, ws.id, survivor.id)
    assert member is not None and member.id == kept.id
    assert get_member(db, ws.id, duplicate.id) is None and db.get(Member, folded_id) is None
    assert member.points_balance == 7500 == ledger.balance_from_ledger(db, member.id)
    assert sum(lot.remaining for lot in db.scalars(select(PointsLot).where(PointsLot.member_id == member.id))) == 7500
    assert (member.tier_id, member.earned_tier_id) == (ladder.gold.id, ladder.gold.id)
    slots = db.scalars(
        select(TaskCompletion.slot).where(TaskCompletion.member_id == member.id).order_by(TaskCompletion.slot)
    )
    assert list(slots) == [1, 2]
    last = db.scalars(
        select(TierChange).where(TierChange.member_id == member.id).order_by(TierChange.id.desc())
    ).first()
    assert last is not None
    assert (str(last.reason), last.from_tier_id, last.to_tier_id, last.source_ref) == (
        "manual",
        ladder.silver.id,
        ladder.gold.id,
        f"merge:{duplicate.id}",
    )


def test_an_account_of_the_merged_customer_alone_moves_over(db: Session, clock: FrozenClock) -> None:
    # given only the duplicate has an account (300 points)
    ws = make_workspace(db, clock=clock)
    make_ladder(db, workspace=ws, clock=clock)
    survivor, duplicate = new_customer(db, workspace=ws, clock=clock), new_customer(db, workspace=ws, clock=clock)
    apply_order(db, order=place_order(db, customer=duplicate, clock=clock, total_fen=30_000), clock=clock)
    # when they are merged
    merge_customers(
        db, actor=actor_for(ws), survivor_id=survivor.id, merged_id=duplicate.id, reason="同一人", clock=clock
    )
    # then the survivor has the account and its 300 points
    member = get_member(db, ws.id, survivor.id)
    assert member is not None and member.points_balance == 300
    assert get_member(db, ws.id, duplicate.id) is None
