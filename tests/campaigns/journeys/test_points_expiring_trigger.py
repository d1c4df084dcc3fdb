"""The `points_expiring` journey trigger: members with points expiring within N days, once per expiry date."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from siyu.campaigns.journeys.engine import run_journeys
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.loyalty.points.service import award_points
from siyu.models import ExpiryPolicy, PointsReason
from tests.campaigns.journeys.factories import enrolments_of, make_journey
from tests.factories import make_workspace
from tests.loyalty.tiers.factories import make_program, new_customer


def test_members_enter_once_per_expiry_date(db: Session, database: Database, clock: FrozenClock) -> None:
    # given points expiring 10 days after they are earned: 80 earned today, 20 earned 5 days ago
    ws = make_workspace(db, clock=clock)
    make_program(db, workspace=ws, clock=clock, expiry_policy=ExpiryPolicy.DAYS, expiry_n=10)
    soon, later = new_customer(db, workspace=ws, clock=clock), new_customer(db, workspace=ws, clock=clock)
    clock.advance(timedelta(days=-5))
    award_points(
        db,
        workspace_id=ws.id,
        customer_id=soon.id,
        points=20,
        reason=PointsReason.TASK,
        description="分享",
        idempotency_key="s1",
        clock=clock,
    )
    clock.advance(timedelta(days=5))
    award_points(
        db,
        workspace_id=ws.id,
        customer_id=later.id,
        points=80,
        reason=PointsReason.TASK,
        description="分享",
        idempotency_key="s2",
        clock=clock,
    )
    # and an active journey on points expiring within 7 days, with re-entry
    journey = make_journey(
        db,
        workspace=ws,
        clock=clock,
        trigger={"type": "points_expiring", "within_days": 7},
        steps=[{"id": "w", "type": "wait", "days": 1}],
        reentry=True,
    )
    # when the engine runs today (twice) and again 5 days later
    run_journeys(database, clock)
    first = len(enrolments_of(db, journey))
    run_journeys(database, clock)
    assert len(enrolments_of(db, journey)) == first
    clock.advance(timedelta(days=5))
    run_journeys(database, clock)
    second = len(enrolments_of(db, journey)) - first
    # then the 20 points (last day 28 Nov) enrolled first, the 80 (last day 3 Dec) five days later
    assert (first, second) == (1, 1)
    entries = [(e.customer_id, e.entry_key, e.context) for e in enrolments_of(db, journey)]
    assert entries == [
        (soon.id, "points_expiring:2026-11-28", {"expires_on": "2026-11-28", "points": 20}),
        (later.id, "points_expiring:2026-12-03", {"expires_on": "2026-12-03", "points": 80}),
    ]
