"""The points service: awards, audited adjustments, history, the expiry sweep and its job."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import PermissionDenied
from siyu.loyalty.errors import InsufficientPoints, InvalidPoints
from siyu.loyalty.members import get_member
from siyu.loyalty.points import ledger
from siyu.loyalty.points.service import adjust_points, award_points, expire_all_due, expiring, points_history
from siyu.loyalty.tasks import expire_points
from siyu.models import AuditEntry, ExpiryPolicy, PointsEntry, PointsReason, Role
from tests.factories import actor_for, make_workspace
from tests.loyalty.tiers.factories import make_program, new_customer


def _audits(db: Session, workspace_id: int) -> int:
    return int(
        db.scalar(
            select(func.count()).where(AuditEntry.workspace_id == workspace_id, AuditEntry.action == "points.adjust")
        )
        or 0
    )


def test_award_creates_the_member_and_a_retry_changes_nothing(db: Session, clock: FrozenClock) -> None:
    # given a customer without a loyalty account
    ws = make_workspace(db, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    # when a referral bonus is awarded twice with the same key
    kwargs = dict(
        workspace_id=ws.id,
        customer_id=customer.id,
        points=50,
        reason=PointsReason.REFERRAL,
        description="邀请好友奖励",
        idempotency_key="referral:9",
        clock=clock,
    )
    first = award_points(db, **kwargs)  # type: ignore[arg-type]
    second = award_points(db, **kwargs)  # type: ignore[arg-type]
    # then one entry of 50 exists and the member holds 50
    member = get_member(db, ws.id, customer.id)
    assert member is not None and first.id == second.id
    assert (member.points_balance, member.points_earned_total) == (50, 50)
    assert db.scalar(select(func.count()).where(PointsEntry.member_id == member.id)) == 1


def test_an_operator_adjusts_with_a_reason_and_it_is_audited_once(db: Session, clock: FrozenClock) -> None:
    # given a member with 100 points
    ws = make_workspace(db, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    operator = actor_for(ws, role=Role.OPERATOR)
    adjust_points(
        db,
        actor=operator,
        customer_id=customer.id,
        points=100,
        reason="补发活动积分",
        idempotency_key="a1",
        clock=clock,
    )
    # when they take 30 away (sent twice) and try to take 500
    entry = adjust_points(
        db, actor=operator, customer_id=customer.id, points=-30, reason="误发扣回", idempotency_key="a2", clock=clock
    )
    adjust_points(
        db, actor=operator, customer_id=customer.id, points=-30, reason="误发扣回", idempotency_key="a2", clock=clock
    )
    with pytest.raises(InsufficientPoints):
        adjust_points(
            db, actor=operator, customer_id=customer.id, points=-500, reason="扣回", idempotency_key="a3", clock=clock
        )
    # then 70 are left, the entry reads the reason, names the operator, and two adjustments are audited
    member = get_member(db, ws.id, customer.id)
    assert member is not None and member.points_balance == 70 == ledger.balance_from_ledger(db, member.id)
    assert (entry.amount, entry.description, entry.actor, str(entry.reason)) == (
        -30,
        "误发扣回",
        "operator@test",
        "adjust",
    )
    assert _audits(db, ws.id) == 2


def test_an_adjustment_needs_a_reason_and_the_scope(db: Session, clock: FrozenClock) -> None:
    # given a customer, an operator and a staff member (no loyalty:adjust)
    ws = make_workspace(db, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    operator = actor_for(ws, role=Role.OPERATOR)
    staff = actor_for(ws, role=Role.STAFF, staff_id=None)
    # when the reason is blank, or the staff member adjusts
    with pytest.raises(InvalidPoints) as blank:
        adjust_points(
            db, actor=operator, customer_id=customer.id, points=10, reason="  ", idempotency_key="b1", clock=clock
        )
    with pytest.raises(PermissionDenied):
        adjust_points(
            db, actor=staff, customer_id=customer.id, points=10, reason="送积分", idempotency_key="b2", clock=clock
        )
    # then the field is named and nothing was written
    assert blank.value.details == {"field": "reason"}
    assert get_member(db, ws.id, customer.id) is None
    assert _audits(db, ws.id) == 0


def test_history_pages_newest_first(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    for n in range(1, 6):
        award_points(
            db,
            workspace_id=ws.id,
            customer_id=customer.id,
            points=n,
            reason=PointsReason.TASK,
            description=f"任务 {n}",
            idempotency_key=f"t{n}",
            clock=clock,
        )
    member = get_member(db, ws.id, customer.id)
    assert member is not None
    first = points_history(db, member=member, limit=3)
    rest = points_history(db, member=member, limit=3, cursor=first.next_cursor)
    assert [e.amount for e in first.items] == [5, 4, 3]
    assert [e.amount for e in rest.items] == [2, 1] and rest.next_cursor is None


def test_the_sweep_expires_due_points_in_batches_and_resumes(db: Session, clock: FrozenClock) -> None:
    # given points that expire 10 days after they are earned, for three members
    ws = make_workspace(db, clock=clock)
    make_program(db, workspace=ws, clock=clock, expiry_policy=ExpiryPolicy.DAYS, expiry_n=10)
    customers = [new_customer(db, workspace=ws, clock=clock) for _ in range(3)]
    for i, customer in enumerate(customers):
        award_points(
            db,
            workspace_id=ws.id,
            customer_id=customer.id,
            points=100 + i,
            reason=PointsReason.CHECK_IN,
            description="签到",
            idempotency_key=f"c{i}",
            clock=clock,
        )
    member = get_member(db, ws.id, customers[0].id)
    assert member is not None
    # then 9 days later they show as expiring soon, with their instant
    clock.advance(timedelta(days=9))
    assert [(e.points, e.expires_at) for e in expiring(db, member=member, clock=clock)] == [
        (100, clock.now() + timedelta(days=1))
    ]
    # when the sweep runs two members at a time after the 10th day
    clock.advance(timedelta(days=1))
    assert expire_all_due(db, workspace_id=ws.id, clock=clock, limit=2) == 2
    assert expire_all_due(db, workspace_id=ws.id, clock=clock, limit=2) == 1
    assert expire_all_due(db, workspace_id=ws.id, clock=clock, limit=2) == 0
    # then every balance is 0 and equals its ledger
    for customer in customers:
        m = get_member(db, ws.id, customer.id)
        assert m is not None and m.points_balance == 0 == ledger.balance_from_ledger(db, m.id)


def test_the_expiry_job_sweeps_every_workspace(db: Session, database: Database, clock: FrozenClock) -> None:
    # given two workspaces with points expiring after 1 day
    counts = []
    for _ in range(2):
        ws = make_workspace(db, clock=clock)
        make_program(db, workspace=ws, clock=clock, expiry_policy=ExpiryPolicy.DAYS, expiry_n=1)
        for i in range(3):
            award_points(
                db,
                workspace_id=ws.id,
                customer_id=new_customer(db, workspace=ws, clock=clock).id,
                points=10,
                reason=PointsReason.TASK,
                description="分享",
                idempotency_key=f"s{i}",
                clock=clock,
            )
        counts.append(ws.id)
    db.commit()
    # when the job runs two days later, in batches of 2, and again
    clock.advance(timedelta(days=2))
    first = expire_points(database, clock, batch=2)
    second = expire_points(database, clock, batch=2)
    # then six lots expired once (other workspaces in the run may exist: count only these)
    assert first["entries"] >= 6 and second["entries"] == 0
    expired = db.scalar(
        select(func.count()).where(PointsEntry.workspace_id.in_(counts), PointsEntry.reason == PointsReason.EXPIRE)
    )
    assert expired == 6
