"""Which window a tier review judges a calendar-year program on: on 1 January the year that just
ended (not the new year's empty days), within the year the better of the previous full year and
the year so far, and at the grace end the same windows as the review that set the grace."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.loyalty.members import get_member
from siyu.loyalty.purchases import apply_order
from siyu.loyalty.tiers.review import run_review
from siyu.models import Customer, Member, ReviewPeriod, TierChange, TierWindow, Workspace
from tests.factories import make_workspace
from tests.loyalty.tiers.factories import Ladder, make_ladder, make_program, new_customer, place_order

CST = timedelta(hours=8)


def _at(year: int, month: int, day: int, hour: int = 10) -> datetime:
    """A Shanghai wall-clock time as a UTC instant."""
    return datetime(year, month, day, hour, tzinfo=UTC) - CST


def _member(db: Session, workspace_id: int, customer_id: int) -> Member:
    member = get_member(db, workspace_id, customer_id)
    assert member is not None
    return member


def _buy(db: Session, clock: FrozenClock, customer: Customer, total_fen: int, paid_at: datetime) -> None:
    """An order paid at `paid_at`, applied with the clock at that moment (then put back)."""
    now = clock.now()
    clock.set(paid_at)
    apply_order(db, order=place_order(db, customer=customer, clock=clock, total_fen=total_fen), clock=clock)
    clock.set(now)


def _last_change(db: Session, member: Member) -> TierChange:
    change = db.scalars(
        select(TierChange).where(TierChange.member_id == member.id).order_by(TierChange.id.desc())
    ).first()
    assert change is not None
    return change


def _calendar_program(db: Session, clock: FrozenClock, period: ReviewPeriod) -> tuple[Workspace, Ladder]:
    ws = make_workspace(db, clock=clock)
    make_program(db, workspace=ws, clock=clock, tier_window=TierWindow.CALENDAR_YEAR, review_period=period)
    return ws, make_ladder(db, workspace=ws, clock=clock)


def test_the_1_january_review_keeps_a_member_who_qualified_over_the_year_that_ended(
    db: Session, clock: FrozenClock
) -> None:
    # given a calendar-year program reviewed yearly (30 days' grace) and a member who paid ¥6,000
    # on 23 Nov 2026: 尊享 (¥5,000)
    ws, ladder = _calendar_program(db, clock, ReviewPeriod.YEARLY)
    customer = new_customer(db, workspace=ws, clock=clock)
    _buy(db, clock, customer, 600_000, clock.now())
    member = _member(db, ws.id, customer.id)
    assert member.tier_id == ladder.gold.id
    assert run_review(db, workspace_id=ws.id, clock=clock).reviewed is False  # the program's baseline
    # when the 2027-01-01 review runs, with nothing bought in 2027
    clock.set(_at(2027, 1, 1, 1))
    review = run_review(db, workspace_id=ws.id, clock=clock)
    # then it judges 2026's ¥6,000: no grace, still 尊享
    assert (review.review_on, review.reviewed, review.graced, review.downgraded) == (date(2027, 1, 1), True, 0, 0)
    assert (member.tier_id, member.earned_tier_id, member.grace_until) == (ladder.gold.id, ladder.gold.id, None)
    # when the date a grace would have ended has passed, nothing moves either
    clock.set(_at(2027, 2, 1, 1))
    after = run_review(db, workspace_id=ws.id, clock=clock)
    assert (after.reviewed, after.graced, after.downgraded, after.cleared) == (False, 0, 0, 0)
    assert (member.tier_id, member.grace_until) == (ladder.gold.id, None)


def test_the_1_january_review_graces_then_downgrades_a_member_below_in_the_year_that_ended(
    db: Session, clock: FrozenClock
) -> None:
    # given a yearly-reviewed calendar-year program; a member made 尊享 by ¥6,000 on 20 Dec 2025 who
    # paid only ¥4,999 in 2026, and ¥1 at the brand's 2027 midnight exactly (that is 2027's)
    ws, ladder = _calendar_program(db, clock, ReviewPeriod.YEARLY)
    customer = new_customer(db, workspace=ws, clock=clock)
    _buy(db, clock, customer, 600_000, _at(2025, 12, 20))
    _buy(db, clock, customer, 499_900, _at(2026, 11, 1))
    member = _member(db, ws.id, customer.id)
    assert member.tier_id == ladder.gold.id
    run_review(db, workspace_id=ws.id, clock=clock)  # baseline: last review 2026-01-01
    _buy(db, clock, customer, 100, _at(2027, 1, 1, 0))
    # when the 2027-01-01 review runs
    clock.set(_at(2027, 1, 1, 1))
    review = run_review(db, workspace_id=ws.id, clock=clock)
    # then 2026's ¥4,999 is below ¥5,000: a grace to 31 January, brand midnight
    assert (review.reviewed, review.graced, review.downgraded) == (True, 1, 0)
    assert (member.tier_id, member.grace_until) == (ladder.gold.id, _at(2027, 1, 31, 0))
    # when the grace ends (nothing more bought), the same year is judged: down to 高级 (¥1,000)
    clock.set(_at(2027, 1, 31, 1))
    end = run_review(db, workspace_id=ws.id, clock=clock)
    assert (end.reviewed, end.graced, end.downgraded, end.cleared) == (False, 0, 1, 0)
    assert (member.tier_id, member.earned_tier_id, member.grace_until) == (ladder.silver.id, ladder.silver.id, None)
    change = _last_change(db, member)
    assert (str(change.reason), change.from_tier_id, change.to_tier_id) == (
        "review_downgrade",
        ladder.gold.id,
        ladder.silver.id,
    )
    assert change.detail == "2026年消费 ¥4,999.00 < ¥5,000.00，宽限期已过"
    assert change.source_ref == "review:2027-01-01"


def test_a_review_within_the_year_takes_the_better_of_last_year_and_this_year_so_far(
    db: Session, clock: FrozenClock
) -> None:
    # given a quarterly-reviewed calendar-year program (30 days' grace) and three 尊享 members:
    # A paid ¥6,000 in 2026 and nothing in 2027, B ¥5,000 in 2026 (made 尊享 by ¥5,000 in Dec 2025)
    # and ¥5,000 in Q1 2027, C ¥2,000 in 2026 and ¥1,000 in 2027 (尊享 from Dec 2025)
    ws, ladder = _calendar_program(db, clock, ReviewPeriod.QUARTERLY)
    a, b, c = (new_customer(db, workspace=ws, clock=clock) for _ in range(3))
    _buy(db, clock, a, 600_000, _at(2026, 6, 1))
    _buy(db, clock, b, 500_000, _at(2025, 12, 20))
    _buy(db, clock, b, 100_000, _at(2026, 6, 1))
    _buy(db, clock, b, 500_000, _at(2027, 2, 1))
    _buy(db, clock, c, 500_000, _at(2025, 12, 20))
    _buy(db, clock, c, 200_000, _at(2026, 6, 1))
    _buy(db, clock, c, 100_000, _at(2027, 2, 1))
    members = [_member(db, ws.id, x.id) for x in (a, b, c)]
    assert [m.tier_id for m in members] == [ladder.gold.id] * 3
    run_review(db, workspace_id=ws.id, clock=clock)  # baseline: last review 2026-10-01
    # when the 2027-04-01 review runs
    clock.set(_at(2027, 4, 1, 1))
    review = run_review(db, workspace_id=ws.id, clock=clock)
    # then A keeps 尊享 on 2026, B on 2027 so far, C (¥2,000 / ¥1,000) is graced to 1 May
    assert (review.review_on, review.reviewed, review.graced) == (date(2027, 4, 1), True, 1)
    assert [m.grace_until for m in members] == [None, None, _at(2027, 5, 1, 0)]
    # when the grace ends, C goes to 高级 on the better of the two years (2026's ¥2,000)
    clock.set(_at(2027, 5, 1, 1))
    end = run_review(db, workspace_id=ws.id, clock=clock)
    assert (end.downgraded, end.cleared) == (1, 0)
    assert [m.tier_id for m in members] == [ladder.gold.id, ladder.gold.id, ladder.silver.id]
    assert _last_change(db, members[2]).detail == "2026年消费 ¥2,000.00 < ¥5,000.00，宽限期已过"


def test_a_member_who_qualifies_again_in_the_new_year_leaves_grace_at_its_end(db: Session, clock: FrozenClock) -> None:
    # given a member graced by the 2027-01-01 review (¥1,500 in 2026, 尊享 from Dec 2025)
    ws, ladder = _calendar_program(db, clock, ReviewPeriod.YEARLY)
    customer = new_customer(db, workspace=ws, clock=clock)
    _buy(db, clock, customer, 600_000, _at(2025, 12, 20))
    _buy(db, clock, customer, 150_000, _at(2026, 11, 1))
    run_review(db, workspace_id=ws.id, clock=clock)
    clock.set(_at(2027, 1, 1, 1))
    assert run_review(db, workspace_id=ws.id, clock=clock).graced == 1
    member = _member(db, ws.id, customer.id)
    # when ¥5,000 paid in January 2027 is written without a tier evaluation (a late import, say)
    place_order(db, customer=customer, clock=clock, total_fen=500_000, paid_at=_at(2027, 1, 20))
    # then the grace end counts 2027 so far too, as a qualifying order would: the grace just ends
    clock.set(_at(2027, 1, 31, 1))
    end = run_review(db, workspace_id=ws.id, clock=clock)
    assert (end.downgraded, end.cleared) == (0, 1)
    assert (member.tier_id, member.grace_until) == (ladder.gold.id, None)
