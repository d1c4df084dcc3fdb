"""The loyalty sweeps go workspace by workspace: one workspace failing is logged and the others
still get their points expired and their paid tiers ended."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

import siyu.loyalty.tasks as loyalty_tasks
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.loyalty.members import get_member
from siyu.loyalty.points.service import award_points
from siyu.loyalty.tasks import expire_paid, expire_points
from siyu.loyalty.tiers.service import buy_paid_tier
from siyu.models import ExpiryPolicy, Member, PointsReason, Workspace
from tests.factories import make_workspace
from tests.loyalty.tiers.factories import make_ladder, make_program, new_customer


def _member(db: Session, workspace_id: int, customer_id: int) -> Member:
    member = get_member(db, workspace_id, customer_id)
    assert member is not None
    db.refresh(member)
    return member


def _two_workspaces(db: Session, clock: FrozenClock) -> tuple[Workspace, Workspace, list[int]]:
    """Two brands with a member each: 100 points expiring after 10 days, and a 黑卡 bought now."""
    brands = [make_workspace(db, clock=clock, name=name) for name in ("甲", "乙")]
    customer_ids = []
    for ws in brands:
        make_program(db, workspace=ws, clock=clock, expiry_policy=ExpiryPolicy.DAYS, expiry_n=10)
        ladder = make_ladder(db, workspace=ws, clock=clock)
        customer = new_customer(db, workspace=ws, clock=clock)
        award_points(
            db,
            workspace_id=ws.id,
            customer_id=customer.id,
            points=100,
            reason=PointsReason.REFERRAL,
            description="邀请好友奖励",
            idempotency_key="referral:1",
            clock=clock,
        )
        buy_paid_tier(
            db, workspace_id=ws.id, customer_id=customer.id, tier_id=ladder.black.id, idempotency_key="k", clock=clock
        )
        customer_ids.append(customer.id)
    db.commit()
    return brands[0], brands[1], customer_ids


def test_a_failing_workspace_does_not_stop_the_points_expiry_of_the_others(
    db: Session,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given two brands whose members' 100 points are due, and the first brand's expiry failing
    first, second, (_c1, c2) = _two_workspaces(db, clock)
    real = loyalty_tasks.expire_all_due

    def failing(session: Session, *, workspace_id: int, **kwargs: object) -> int:
        if workspace_id == first.id:
            raise RuntimeError("boom")
        return real(session, workspace_id=workspace_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loyalty_tasks, "expire_all_due", failing)
    monkeypatch.setattr(loyalty_tasks, "_workspaces", lambda _db, _ws: [first.id, second.id])
    clock.set(clock.now() + timedelta(days=11))
    # when the sweep runs
    with caplog.at_level(logging.ERROR, logger="siyu.loyalty.tasks"):
        totals = expire_points(database, clock)
    # then the second brand's points expired, and the first brand's failure was logged
    assert totals == {"workspaces": 1, "entries": 1}
    assert _member(db, second.id, c2).points_balance == 0
    assert [(r.message, getattr(r, "workspace_id", None)) for r in caplog.records] == [
        ("points expiry failed", first.id)
    ]


def test_a_failing_workspace_does_not_stop_the_paid_tier_expiry_of_the_others(
    db: Session,
    database: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given two brands whose 黑卡 (a year) has run out, and the first brand's expiry failing
    first, second, (_c1, c2) = _two_workspaces(db, clock)
    real = loyalty_tasks.expire_paid_tiers

    def failing(session: Session, *, workspace_id: int, **kwargs: object) -> int:
        if workspace_id == first.id:
            raise RuntimeError("boom")
        return real(session, workspace_id=workspace_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loyalty_tasks, "expire_paid_tiers", failing)
    monkeypatch.setattr(loyalty_tasks, "_workspaces", lambda _db, _ws: [first.id, second.id])
    clock.set(datetime(2027, 11, 24, 2, tzinfo=UTC))
    # when the sweep runs
    with caplog.at_level(logging.ERROR, logger="siyu.loyalty.tasks"):
        totals = expire_paid(database, clock)
    # then the second brand's card ended, and the first brand's failure was logged
    assert totals == {"workspaces": 1, "ended": 1}
    assert _member(db, second.id, c2).paid_tier_id is None
    assert [(r.message, getattr(r, "workspace_id", None)) for r in caplog.records] == [
        ("paid tier expiry failed", first.id)
    ]
