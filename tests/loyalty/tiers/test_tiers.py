"""Tier rules across review dates with the clock: upgrade at once, downgrade only at a review after
the grace period, calendar year vs rolling window, points basis, paid tiers and their expiry."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.loyalty.members import get_member
from siyu.loyalty.points.service import award_points
from siyu.loyalty.purchases import apply_order
from siyu.loyalty.tiers.review import run_review
from siyu.loyalty.tiers.service import buy_paid_tier, expire_paid_tiers, tier_progress
from siyu.models import Member, PointsReason, ReviewPeriod, TierBasis, TierChange, TierChangeReason, TierWindow
from tests.factories import make_workspace
from tests.loyalty.tiers.factories import make_ladder, make_program, new_customer, place_order

CST = timedelta(hours=8)


def _at(year: int, month: int, day: int, hour: int = 10) -> datetime:
    """A Shanghai wall-clock time as a UTC instant."""
    return datetime(year, month, day, hour, tzinfo=UTC) - CST


def _member(db: Session, workspace_id: int, customer_id: int) -> Member:
    member = get_member(db, workspace_id, customer_id)
    assert member is not None
    return member


def _reasons(db: Session, member: Member) -> list[tuple[str, int | None, int | None, str | None]]:
    rows = db.scalars(select(TierChange).where(TierChange.member_id == member.id).order_by(TierChange.id))
    return [(str(c.reason), c.from_tier_id, c.to_tier_id, c.source_ref) for c in rows]


def test_a_member_below_their_tier_keeps_it_until_the_grace_after_a_review(db: Session, clock: FrozenClock) -> None:
    # given a 30-day window, quarterly reviews with 30 days' grace, and a member made 高级 on 23 Nov
    ws = make_workspace(db, clock=clock)
    make_program(db, workspace=ws, clock=clock, tier_window_days=30, review_period=ReviewPeriod.QUARTERLY)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    apply_order(db, order=place_order(db, customer=customer, clock=clock, total_fen=150_000), clock=clock)
    member = _member(db, ws.id, customer.id)
    first = run_review(db, workspace_id=ws.id, clock=clock)  # the program's first run: a baseline only
    assert (first.review_on, first.reviewed, first.graced) == (date(2026, 10, 1), False, 0)
    # when the clock passes 31 Dec: the order is out of the window, but no review date yet
    clock.set(_at(2026, 12, 31, 23))
    assert run_review(db, workspace_id=ws.id, clock=clock).reviewed is False
    assert member.tier_id == ladder.silver.id
    # when the 1 January review runs (twice: the job runs hourly)
    clock.set(_at(2027, 1, 1, 0) + timedelta(minutes=5))
    review = run_review(db, workspace_id=ws.id, clock=clock)
    again = run_review(db, workspace_id=ws.id, clock=clock)
    # then the member keeps 高级 with a grace period to 31 January (brand midnight), given once
    assert (review.reviewed, review.graced, again.reviewed, again.graced) == (True, 1, False, 0)
    assert member.tier_id == ladder.silver.id
    assert member.grace_until == _at(2027, 1, 31, 0)
    # when the grace is not over yet, nothing moves; once it is, they go down to 普通
    clock.set(_at(2027, 1, 30, 23))
    assert run_review(db, workspace_id=ws.id, clock=clock).downgraded == 0
    clock.set(_at(2027, 1, 31, 1))
    assert run_review(db, workspace_id=ws.id, clock=clock).downgraded == 1
    assert (member.tier_id, member.earned_tier_id, member.grace_until) == (ladder.base.id, ladder.base.id, None)
    assert _reasons(db, member)[-1] == ("review_downgrade", ladder.silver.id, ladder.base.id, "review:2027-01-01")


def test_buying_again_in_grace_ends_the_grace(db: Session, clock: FrozenClock) -> None:
    # given a 高级 member put in grace by the 1 January review (monthly reviews, 30-day window)
    ws = make_workspace(db, clock=clock)
    make_program(db, workspace=ws, clock=clock, tier_window_days=30, review_period=ReviewPeriod.MONTHLY)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    apply_order(db, order=place_order(db, customer=customer, clock=clock, total_fen=100_000), clock=clock)
    run_review(db, workspace_id=ws.id, clock=clock)
    clock.set(_at(2027, 1, 1))
    assert run_review(db, workspace_id=ws.id, clock=clock).graced == 1
    member = _member(db, ws.id, customer.id)
    # when they spend ¥1,000 again within the grace
    clock.set(_at(2027, 1, 10))
    apply_order(db, order=place_order(db, customer=customer, clock=clock, total_fen=100_000), clock=clock)
    # then the grace is gone and the grace end downgrades nobody
    assert member.grace_until is None
    clock.set(_at(2027, 2, 1, 1))
    result = run_review(db, workspace_id=ws.id, clock=clock)
    assert (result.reviewed, result.graced, result.downgraded) == (True, 0, 0)
    assert member.tier_id == ladder.silver.id


def test_a_downgrade_goes_to_the_highest_tier_still_met(db: Session, clock: FrozenClock) -> None:
    # given a 尊享 member (¥6,000 paid 20 Dec 2025, ¥1,500 on 23 Nov), yearly reviews with no grace, a 365-day window
    ws = make_workspace(db, clock=clock)
    make_program(db, workspace=ws, clock=clock, review_period=ReviewPeriod.YEARLY, grace_days=0)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    big = place_order(db, customer=customer, clock=clock, total_fen=600_000, paid_at=_at(2025, 12, 20))
    apply_order(db, order=big, clock=clock)
    apply_order(db, order=place_order(db, customer=customer, clock=clock, total_fen=150_000), clock=clock)
    member = _member(db, ws.id, customer.id)
    assert member.tier_id == ladder.gold.id
    run_review(db, workspace_id=ws.id, clock=clock)
    # when the 2027 review finds only the ¥1,500 order of 23 Nov in the window
    clock.set(_at(2027, 1, 1, 9))
    result = run_review(db, workspace_id=ws.id, clock=clock)
    # then with no grace they go straight down to 高级, not to 普通
    assert (result.graced, result.downgraded) == (1, 1)
    assert member.tier_id == ladder.silver.id
    change = db.scalars(
        select(TierChange).where(TierChange.member_id == member.id).order_by(TierChange.id.desc())
    ).first()
    assert change is not None and change.detail == "近365天消费 ¥1,500.00 < ¥5,000.00，宽限期已过"


def test_calendar_year_counts_from_brand_new_year_rolling_counts_back(db: Session, clock: FrozenClock) -> None:
    # given ¥600 paid at 23:30 on 31 Dec and ¥600 at 00:30 on 1 Jan (Shanghai)
    ws = make_workspace(db, clock=clock)
    program = make_program(db, workspace=ws, clock=clock, tier_window=TierWindow.CALENDAR_YEAR)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    clock.set(_at(2027, 1, 1, 1))
    place_order(
        db, customer=customer, clock=clock, total_fen=60_000, paid_at=_at(2026, 12, 31, 23) + timedelta(minutes=30)
    )
    apply_order(
        db,
        order=place_order(
            db, customer=customer, clock=clock, total_fen=60_000, paid_at=_at(2027, 1, 1, 0) + timedelta(minutes=30)
        ),
        clock=clock,
    )
    member = _member(db, ws.id, customer.id)
    # then the calendar year counts only 2027's ¥600: still 普通, ¥400 to 高级
    progress = tier_progress(db, member=member, clock=clock)
    assert (progress.qualifying_value, progress.window.label, progress.to_next) == (60_000, "2027年", 40_000)
    assert progress.window.start == _at(2027, 1, 1, 0)
    assert progress.next_tier is not None and progress.next_tier.id == ladder.silver.id
    assert member.tier_id == ladder.base.id
    # when the program counts a rolling 365 days instead, the same next order finds ¥1,200: 高级
    program.tier_window = TierWindow.ROLLING
    apply_order(db, order=place_order(db, customer=customer, clock=clock, total_fen=1), clock=clock)
    assert member.tier_id == ladder.silver.id
    assert tier_progress(db, member=member, clock=clock).qualifying_value == 120_001


def test_points_basis_counts_points_earned_in_the_window(db: Session, clock: FrozenClock) -> None:
    # given tiers on earned points (高级 at 1,000 points)
    ws = make_workspace(db, clock=clock)
    make_program(db, workspace=ws, clock=clock, tier_basis=TierBasis.POINTS)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    ladder.silver.threshold, ladder.gold.threshold = 1_000, 5_000
    customer = new_customer(db, workspace=ws, clock=clock)
    # when a ¥900 order earns 900 and a task 100 more
    apply_order(db, order=place_order(db, customer=customer, clock=clock, total_fen=90_000), clock=clock)
    member = _member(db, ws.id, customer.id)
    assert member.tier_id == ladder.base.id
    award_points(
        db,
        workspace_id=ws.id,
        customer_id=customer.id,
        points=100,
        reason=PointsReason.TASK,
        description="完善资料",
        idempotency_key="task:profile",
        clock=clock,
        source_ref="task:1",
    )
    # then 1,000 earned points make them 高级, with the task as the cause
    assert member.tier_id == ladder.silver.id
    assert _reasons(db, member)[-1] == ("qualified", ladder.base.id, ladder.silver.id, "task:1")


def test_a_paid_tier_lasts_its_validity_then_the_earned_tier_returns(db: Session, clock: FrozenClock) -> None:
    # given a 高级 member
    ws = make_workspace(db, clock=clock)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    apply_order(db, order=place_order(db, customer=customer, clock=clock, total_fen=100_000), clock=clock)
    # when they buy the 黑卡 (twice: a retry) and order ¥100
    for _ in range(2):
        buy_paid_tier(
            db,
            workspace_id=ws.id,
            customer_id=customer.id,
            tier_id=ladder.black.id,
            idempotency_key="pay-1",
            clock=clock,
        )
    member = _member(db, ws.id, customer.id)
    apply_order(db, order=place_order(db, customer=customer, clock=clock, total_fen=10_000), clock=clock)
    # then they have 黑卡 for 365 days, earn at 2×, and keep 高级 as their earned tier
    assert (member.tier_id, member.earned_tier_id, member.paid_tier_id) == (
        ladder.black.id,
        ladder.silver.id,
        ladder.black.id,
    )
    assert member.paid_tier_until == clock.now() + timedelta(days=365)
    assert member.points_balance == 1000 + 200
    paid_rows = [r for r in _reasons(db, member) if r[0] == "paid"]
    assert paid_rows == [("paid", ladder.silver.id, ladder.black.id, f"tier:{ladder.black.id}")]
    # when a day before the end nothing expires; after it, the paid tier ends
    clock.advance(timedelta(days=364))
    assert expire_paid_tiers(db, workspace_id=ws.id, clock=clock) == 0
    clock.advance(timedelta(days=1, seconds=1))
    assert expire_paid_tiers(db, workspace_id=ws.id, clock=clock) == 1
    assert (member.tier_id, member.paid_tier_id, member.paid_tier_until) == (ladder.silver.id, None, None)
    assert _reasons(db, member)[-1] == ("paid_expired", ladder.black.id, ladder.silver.id, f"tier:{ladder.black.id}")


def test_renewing_a_valid_paid_tier_extends_it(db: Session, clock: FrozenClock) -> None:
    # given a 黑卡 bought today
    ws = make_workspace(db, clock=clock)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    start = clock.now()
    buy_paid_tier(
        db, workspace_id=ws.id, customer_id=customer.id, tier_id=ladder.black.id, idempotency_key="a", clock=clock
    )
    # when it is renewed 100 days later
    clock.advance(timedelta(days=100))
    member = buy_paid_tier(
        db, workspace_id=ws.id, customer_id=customer.id, tier_id=ladder.black.id, idempotency_key="b", clock=clock
    )
    # then it runs to 730 days after the first purchase
    assert member.paid_tier_until == start + timedelta(days=730)
    details = [
        c.detail
        for c in db.scalars(
            select(TierChange)
            .where(TierChange.member_id == member.id, TierChange.reason == TierChangeReason.PAID)
            .order_by(TierChange.id)
        )
    ]
    assert details == ["购买 黑卡，有效至 2027-11-23", "续费 黑卡，有效至 2028-11-22"]


def test_an_earned_tier_cannot_be_bought(db: Session, clock: FrozenClock) -> None:
    from siyu.loyalty.errors import InvalidTier

    ws = make_workspace(db, clock=clock)
    ladder = make_ladder(db, workspace=ws, clock=clock)
    customer = new_customer(db, workspace=ws, clock=clock)
    with pytest.raises(InvalidTier) as caught:
        buy_paid_tier(
            db, workspace_id=ws.id, customer_id=customer.id, tier_id=ladder.gold.id, idempotency_key="x", clock=clock
        )
    assert caught.value.details == {"field": "tier_id"}
    assert get_member(db, ws.id, customer.id) is None
