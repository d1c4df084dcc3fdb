"""Program changes and manual tier changes: when the new review period starts, idempotent and
permission-checked manual changes."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.kit.errors import PermissionDenied
from siyu.loyalty.members import get_member
from siyu.loyalty.tiers.catalogue import update_program
from siyu.loyalty.tiers.review import run_review
from siyu.loyalty.tiers.schemas import ProgramIn
from siyu.loyalty.tiers.service import set_tier
from siyu.models import ExpiryPolicy, ReviewPeriod, Role, TierBasis, TierChange, TierWindow
from tests.factories import actor_for, make_workspace
from tests.loyalty.tiers.factories import make_ladder, make_program, new_customer


def _program(period: ReviewPeriod) -> ProgramIn:
    return ProgramIn(
        points_per_yuan=1,
        expiry_policy=ExpiryPolicy.YEAR_END,
        expiry_n=1,
        tier_basis=TierBasis.SPEND,
        tier_window=TierWindow.ROLLING,
        review_period=period,
    )


def test_a_new_review_period_starts_at_its_next_review_date(db: Session, clock: FrozenClock) -> None:
    # given a yearly-reviewed program last reviewed on 1 January
    ws = make_workspace(db, clock=clock)
    make_program(db, workspace=ws, clock=clock, review_period=ReviewPeriod.YEARLY, last_review_on=date(2026, 1, 1))
    # when it switches to monthly on 23 November
    program = update_program(
        db, actor=actor_for(ws, role=Role.OPERATOR), data=_program(ReviewPeriod.MONTHLY), clock=clock
    )
    # then 1 November counts as done: nothing is reviewed until 1 December
    assert program.last_review_on == date(2026, 11, 1)
    assert run_review(db, workspace_id=ws.id, clock=clock).reviewed is False


def test_a_manual_tier_change_is_idempotent_and_needs_the_scope(db: Session, clock: FrozenClock) -> None:
    # given the ladder and a customer
    ws = make_workspace(db, clock=clock)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    # when a staff member tries, then an operator sets 尊享 twice with the same key
    with pytest.raises(PermissionDenied):
        set_tier(
            db,
            actor=actor_for(ws, role=Role.STAFF),
            customer_id=customer.id,
            tier_id=ladder.gold.id,
            reason="x",
            clock=clock,
        )
    assert get_member(db, ws.id, customer.id) is None
    operator = actor_for(ws, role=Role.OPERATOR)
    first = set_tier(
        db,
        actor=operator,
        customer_id=customer.id,
        tier_id=ladder.gold.id,
        reason="签约大客户",
        clock=clock,
        idempotency_key="m1",
    )
    again = set_tier(
        db,
        actor=operator,
        customer_id=customer.id,
        tier_id=ladder.gold.id,
        reason="签约大客户",
        clock=clock,
        idempotency_key="m1",
    )
    # then one manual change names the operator and the reason
    member = get_member(db, ws.id, customer.id)
    assert member is not None and member.tier_id == ladder.gold.id
    assert first.id == again.id
    assert (first.detail, first.actor, first.from_tier_id) == ("签约大客户", "operator@test", ladder.base.id)
    assert db.scalar(select(func.count()).where(TierChange.member_id == member.id, TierChange.reason == "manual")) == 1
