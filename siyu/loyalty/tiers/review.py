"""Tier reviews: the only time members go down.

On each review date (the 1st of the month, quarter or year in the brand's zone, per the program) a
member whose qualifying value is below their earned tier's threshold gets a grace period
(`grace_until` = the review date + `grace_days`). When the grace period ends (checked daily) a member
still below goes down to the highest tier they meet; one who qualifies again leaves grace. The
program's `last_review_on` makes each review date run once however often the daily job runs.

The window a review judges (`review_windows`): a rolling window is the last N days as of now. A
calendar-year window is not "the year so far" at a review — on 1 January that would be nothing — but
the calendar year that ended before the review on 1 January, and at a review within the year the
better of the previous full year and this year so far. The grace end judges the same windows (the
review is the one whose date plus `grace_days` is `grace_until`), plus this year so far, as a
qualifying order in the grace does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock, as_utc
from siyu.loyalty.program import brand_zone, get_program, local_midnight
from siyu.loyalty.tiers import rules
from siyu.loyalty.tiers.service import basis_label, change_earned_tier, earned_tier_of
from siyu.models import LoyaltyProgram, Member, Tier, TierChangeReason, TierWindow

BATCH = 500


@dataclass
class ReviewResult:
    review_on: date
    """The latest review date (brand-local) on or before today."""
    reviewed: bool = False
    """True when this call ran that review (False: it had run already)."""
    graced: int = 0
    downgraded: int = 0
    cleared: int = 0
    """Members in grace who qualify again."""


def run_review(session: Session, *, workspace_id: int, clock: Clock) -> ReviewResult:
    """Run the latest review date's review if it has not run yet, then end the grace periods that
    are over. A program's first run only records the current review date: its first review is the next."""
    now = clock.now()
    zone = brand_zone(session, workspace_id)
    get_program(session, workspace_id, clock=clock)
    program = session.scalars(
        select(LoyaltyProgram)
        .where(LoyaltyProgram.workspace_id == workspace_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    today = as_utc(now).astimezone(zone).date()
    result = ReviewResult(review_on=rules.review_date(program.review_period, today))
    ladder = rules.earned_tiers(session, workspace_id)
    if program.last_review_on is None:
        # A new program: reviews start with the next review date, not the one already passed.
        program.last_review_on = result.review_on
    elif program.last_review_on < result.review_on:
        result.reviewed = True
        grace_until = local_midnight(result.review_on, zone) + timedelta(days=max(program.grace_days, 0))
        windows = review_windows(program, result.review_on, now, zone)
        for members in _batches(session, workspace_id, above_base=True):
            values = _best_values(session, program, members, windows)
            for member in members:
                earned = earned_tier_of(session, member)
                if earned is None or earned.rank == 0:
                    continue
                if values[member.id][0] >= earned.threshold:
                    if member.grace_until is not None:
                        member.grace_until = None
                        result.cleared += 1
                elif member.grace_until is None:
                    member.grace_until = grace_until
                    member.updated_at = now
                    result.graced += 1
        program.last_review_on = result.review_on
        session.flush()
    for members in _batches(session, workspace_id, grace_over=True, now=now):
        values = _grace_end_values(session, program, members, now, zone)
        for member in members:
            earned = earned_tier_of(session, member)
            value, win = values[member.id]
            if earned is None or value >= earned.threshold:
                member.grace_until = None
                result.cleared += 1
                continue
            target = rules.tier_met(ladder, value)
            _downgrade(session, member, program, earned, target, value, win, clock)
            result.downgraded += 1
    session.flush()
    return result


def review_windows(program: LoyaltyProgram, review_on: date, now: datetime, zone: ZoneInfo) -> list[rules.Window]:
    """The windows the review of `review_on` judges a member on (their best value counts): the
    rolling window as of `now`; for a calendar-year program the year before `review_on`'s year, and
    (a review after 1 January) that year so far, up to `now` but not past its end."""
    if program.tier_window != TierWindow.CALENDAR_YEAR:
        return [rules.window(program, now, zone)]
    year_start = local_midnight(date(review_on.year, 1, 1), zone)
    # `rules` counts both ends of a window: stop a microsecond before the next year's first instant
    previous = rules.Window(
        start=local_midnight(date(review_on.year - 1, 1, 1), zone),
        end=year_start - timedelta(microseconds=1),
        label=f"{review_on.year - 1}年",
    )
    if review_on == date(review_on.year, 1, 1):
        return [previous]
    year_end = local_midnight(date(review_on.year + 1, 1, 1), zone) - timedelta(microseconds=1)
    so_far = rules.Window(start=year_start, end=min(as_utc(now), year_end), label=f"{review_on.year}年")
    return [previous, so_far]


def grace_review_date(program: LoyaltyProgram, grace_until: datetime, zone: ZoneInfo) -> date:
    """The review date that set `grace_until` (its brand midnight + `grace_days`), snapped to the
    review calendar so a later, shorter `grace_days` still finds it."""
    started = (as_utc(grace_until) - timedelta(days=max(program.grace_days, 0))).astimezone(zone).date()
    return rules.review_date(program.review_period, started)


def _best_values(
    session: Session, program: LoyaltyProgram, members: list[Member], windows: list[rules.Window]
) -> dict[int, tuple[int, rules.Window]]:
    """Each member's highest qualifying value over `windows`, and the window that gave it (the
    first one on a tie)."""
    best: dict[int, tuple[int, rules.Window]] = {}
    for win in windows:
        values = rules.qualifying_values(session, program, members, win)
        for member in members:
            if member.id not in best or values[member.id] > best[member.id][0]:
                best[member.id] = (values[member.id], win)
    return best


def _grace_end_values(
    session: Session, program: LoyaltyProgram, members: list[Member], now: datetime, zone: ZoneInfo
) -> dict[int, tuple[int, rules.Window]]:
    """What the grace end judges: the windows of the review that set each member's grace, and (a
    calendar-year program) this year so far, as a qualifying order during the grace does."""
    current = rules.window(program, now, zone)
    if program.tier_window != TierWindow.CALENDAR_YEAR:
        return _best_values(session, program, members, [current])
    by_review: dict[date, list[Member]] = {}
    for member in members:
        ended = member.grace_until or now  # `_batches(grace_over=True)` selects members in grace only
        by_review.setdefault(grace_review_date(program, ended, zone), []).append(member)
    best: dict[int, tuple[int, rules.Window]] = {}
    for review_on, group in by_review.items():
        windows = review_windows(program, review_on, now, zone)
        if all((w.start, w.end) != (current.start, current.end) for w in windows):
            windows.append(current)
        best.update(_best_values(session, program, group, windows))
    return best


def _downgrade(
    session: Session,
    member: Member,
    program: LoyaltyProgram,
    earned: Tier,
    target: Tier | None,
    value: int,
    win: rules.Window,
    clock: Clock,
) -> None:
    review_on = program.last_review_on.isoformat() if program.last_review_on else None
    detail = (
        f"{win.label}{basis_label(program)} {rules.describe(program, value)} < "
        f"{rules.describe(program, earned.threshold)}，宽限期已过"
    )
    change_earned_tier(
        session,
        member,
        to=target,
        reason=TierChangeReason.REVIEW_DOWNGRADE,
        detail=detail,
        source_ref=f"review:{review_on}" if review_on else None,
        clock=clock,
    )


def _batches(
    session: Session,
    workspace_id: int,
    *,
    above_base: bool = False,
    grace_over: bool = False,
    now: datetime | None = None,
) -> Iterator[list[Member]]:
    """Members to look at, locked in id order, a batch at a time."""
    query = select(Member).where(Member.workspace_id == workspace_id)
    if above_base:
        ranked = select(Tier.id).where(Tier.workspace_id == workspace_id, Tier.rank > 0)
        query = query.where(
            (Member.earned_tier_id.in_(ranked)) | (Member.earned_tier_id.is_(None) & Member.tier_id.in_(ranked))
        )
    if grace_over:
        query = query.where(Member.grace_until.is_not(None), Member.grace_until <= now)
    after = 0
    while True:
        rows = list(session.scalars(query.where(Member.id > after).order_by(Member.id).limit(BATCH).with_for_update()))
        if not rows:
            return
        yield rows
        after = rows[-1].id
