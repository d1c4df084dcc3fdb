"""Cohort tables on the hand-built history of `factories.seed_history` (figures worked by hand)."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from siyu.analytics.periods import Period
from siyu.analytics.retention.schemas import parse_config
from siyu.analytics.retention.service import (
    LIFECYCLE_EVENT_TYPES,
    cell_members,
    cohort_table,
    rate_table,
    resolve_period,
)
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import Role, Workspace
from tests.analytics.retention.factories import at, event, order, seed_history
from tests.factories import actor_for, make_customer, make_relationship, make_staff, make_workspace

NOV = Period(date(2026, 11, 2), date(2026, 11, 15))  # cohorts W1 = 11-02, W2 = 11-09


@pytest.fixture
def workspace(db: Session, clock: FrozenClock) -> Workspace:
    return make_workspace(db, clock=clock)


def _run(db: Session, ws: Workspace, clock: FrozenClock, **config: Any) -> Any:
    return cohort_table(db, actor=actor_for(ws, role=Role.ANALYST), config=config, period=NOV, clock=clock)


def _grid(result: Any) -> list[tuple[date, int, list[int | None]]]:
    return [(r.start, r.size, r.counts) for r in result.cohorts]


W1, W2 = date(2026, 11, 2), date(2026, 11, 9)


def test_order_return_on(db: Session, workspace: Workspace, clock: FrozenClock) -> None:
    seed_history(db, workspace, clock)
    result = _run(db, workspace, clock, offsets=3)
    # W1 = {A, B} (C's add at 00:30 local is W2; E before, F merged, G after):
    #   +0 A 11-03; +1 B 11-12 (B's 11-01 order predates the add); +2 A 11-17; +3 (11-23..) none
    # W2 = {C, D}: +0 D 11-10; +1 D's 11-17 is fully refunded → 0; +2 C 11-23 09:00; +3 starts 11-30 → None
    assert _grid(result) == [(W1, 2, [1, 1, 1, 0]), (W2, 2, [1, 0, 1, None])]
    assert result.cohorts[0].rates == [0.5, 0.5, 0.5, 0.0]
    # today (Mon 11-23) is in W1 +3 and W2 +2: those offsets are in progress (shown, flagged)
    assert [r.in_progress for r in result.cohorts] == [3, 2]
    # the average weighs by size over the cohorts that finished the offset:
    #   +0 2/4, +1 1/4, +2 only W1 1/2 (W2's is in progress), +3 none finished (W1 running, W2 not reached)
    assert result.average == [0.5, 0.25, 0.5, None]


def test_order_return_on_or_after(db: Session, workspace: Workspace, clock: FrozenClock) -> None:
    seed_history(db, workspace, clock)
    result = _run(db, workspace, clock, offsets=3, criterion="on_or_after")
    # latest offset with an order: A 2, B 1 (W1); C 2, D 0 (W2)
    assert _grid(result) == [(W1, 2, [2, 2, 1, 0]), (W2, 2, [2, 1, 1, None])]


def test_friend_retention(db: Session, workspace: Workspace, clock: FrozenClock) -> None:
    seed_history(db, workspace, clock)
    result = _run(db, workspace, clock, offsets=3, measure="friend")
    # open edge at the end of each offset (W1: 11-09, 11-16, 11-23 00:00, then now 11-23 10:00):
    #   A removed 11-10 → only +0; B always → 4
    # W2 (11-16, 11-23, now, —): C always; D gone 11-11, back 11-20 → +1 and +2
    assert _grid(result) == [(W1, 2, [2, 1, 1, 1]), (W2, 2, [1, 2, 2, None])]
    # W1 +3 and W2 +2 are measured at "now" and flagged; average +0 3/4, +1 3/4, +2 W1 1/2, +3 None
    assert [r.in_progress for r in result.cohorts] == [3, 2]
    assert result.average == [0.75, 0.75, 0.5, None]


def test_friend_retention_is_measured_at_the_calendar_end_of_the_offset(
    db: Session, workspace: Workspace, clock: FrozenClock
) -> None:
    # given H added Sun 11-08 10:00 (W1's last day) and removed Wed 11-11 10:00
    staff = make_staff(db, workspace=workspace, clock=clock)
    h = make_customer(db, actor=actor_for(workspace), clock=clock).customer
    make_relationship(db, customer=h, staff=staff, added_at=at(11, 8), removed_at=at(11, 11), removed_by="customer")
    result = _run(db, workspace, clock, offsets=1, measure="friend")
    # then +0 is measured at Mon 11-09 00:00 (open: retained, only 14 h after the add) and
    # +1 at Mon 11-16 00:00 (removed 11-11: lost) — not at added_at + 1 or 2 weeks
    assert _grid(result)[0] == (W1, 1, [1, 0])


def test_lifecycle_events_are_not_returns(db: Session, workspace: Workspace, clock: FrozenClock) -> None:
    h = seed_history(db, workspace, clock)
    # given the timeline entries siyu writes itself: A's add (11-02) and consent change (11-10),
    # B's welcome (11-10), D's group join (11-17) and a refund (11-17)
    event(db, h.a, "relationship.added", at(11, 2))
    event(db, h.a, "consent.changed", at(11, 10))
    event(db, h.b, "welcome.sent", at(11, 10, 11))
    event(db, h.d, "group.joined", at(11, 17))
    event(db, h.d, "order.refunded", at(11, 17, 11))
    # then any_event still sees only B's check-in (W1 +0) and C's page.view (W2 +0)
    result = _run(db, workspace, clock, offsets=1, return_event="any_event")
    assert _grid(result) == [(W1, 2, [1, 0]), (W2, 2, [1, 0])]
    assert "relationship.removed" in LIFECYCLE_EVENT_TYPES and "group.left" in LIFECYCLE_EVENT_TYPES
    # but a report naming a lifecycle type counts it: A's add → W1 +0
    named = _run(db, workspace, clock, offsets=1, return_event="event", event_type="relationship.added")
    assert _grid(named) == [(W1, 2, [1, 0]), (W2, 2, [0, 0])]


@pytest.mark.parametrize(
    ("return_event", "event_type", "expected"),
    [
        ("checkin", None, [(W1, 2, [1, 0]), (W2, 2, [0, 0])]),  # B checks in 11-05
        ("any_event", None, [(W1, 2, [1, 0]), (W2, 2, [1, 0])]),  # + C's page.view 11-10
        ("event", "page.view", [(W1, 2, [0, 0]), (W2, 2, [1, 0])]),
    ],
)
def test_event_returns(
    db: Session, workspace: Workspace, clock: FrozenClock, return_event: str, event_type: str | None, expected: Any
) -> None:
    seed_history(db, workspace, clock)
    result = _run(db, workspace, clock, offsets=1, return_event=return_event, event_type=event_type)
    assert _grid(result) == expected


def test_order_cohorts(db: Session, workspace: Workspace, clock: FrozenClock) -> None:
    seed_history(db, workspace, clock)
    # first order overall in the period: A 11-03 and E 11-03 (W1), D 11-10 (W2); B's first is 11-01, C's 11-23
    overall = _run(db, workspace, clock, cohort="first_order", offsets=2)
    # +0 is everyone (the first order itself); +1 nobody; +2 A 11-17 (W1); W2 +2 (11-23..) D has none → 0
    assert _grid(overall) == [(W1, 2, [2, 0, 1]), (W2, 1, [1, 0, 0])]
    pool = _run(db, workspace, clock, cohort="first_pool_order", offsets=2)
    assert _grid(pool) == [(W1, 1, [1, 0, 1]), (W2, 1, [1, 0, 0])]


def test_monthly_cohorts(db: Session, workspace: Workspace, clock: FrozenClock) -> None:
    seed_history(db, workspace, clock)
    period = Period(date(2026, 10, 1), date(2026, 11, 23))
    result = cohort_table(
        db, actor=actor_for(workspace), config={"grain": "month", "offsets": 2}, period=period, clock=clock
    )
    # October: E (order 11-03 → +1). November: A, B, C, D, G all order in November except G → 4 of 5
    assert _grid(result) == [(date(2026, 10, 1), 1, [0, 1, None]), (date(2026, 11, 1), 5, [4, None, None])]
    # November is running: October +1 and November +0 are in progress, so only October +0 is averaged
    assert [r.in_progress for r in result.cohorts] == [1, 0]
    assert result.average == [0.0, None, None]


def test_ranges_start_on_a_whole_week_or_month(db: Session, workspace: Workspace, clock: FrozenClock) -> None:
    seed_history(db, workspace, clock)
    actor = actor_for(workspace)
    weekly, monthly = parse_config({}), parse_config({"grain": "month"})
    # default weekly: 56 days to Mon 11-23 start Tue 09-29 → its Monday 09-28
    assert resolve_period(db, actor=actor, clock=clock, config=weekly, date_from=None, date_to=None) == Period(
        date(2026, 9, 28), date(2026, 11, 23)
    )
    # default monthly: 365 days to 2026-11-23 start 2025-11-24 → 2025-11-01
    assert resolve_period(db, actor=actor, clock=clock, config=monthly, date_from=None, date_to=None) == Period(
        date(2025, 11, 1), date(2026, 11, 23)
    )
    # an explicit Wednesday 11-04 snaps to Monday 11-02, so A (added 11-02) stays in W1
    period = resolve_period(
        db, actor=actor, clock=clock, config=weekly, date_from=date(2026, 11, 4), date_to=date(2026, 11, 15)
    )
    assert period == NOV
    assert _grid(cohort_table(db, actor=actor, config={"offsets": 1}, period=period, clock=clock))[0] == (
        W1,
        2,
        [1, 1],
    )
    # a raw mid-week period given to the service is snapped the same way
    raw = cohort_table(db, actor=actor, config={}, period=Period(date(2026, 11, 4), date(2026, 11, 15)), clock=clock)
    assert raw.period == NOV and raw.cohorts[0].size == 2


def test_cell_members_recompute(db: Session, workspace: Workspace, clock: FrozenClock) -> None:
    h = seed_history(db, workspace, clock)
    actor = actor_for(workspace)
    members = cell_members(db, actor=actor, config={"offsets": 3}, period=NOV, clock=clock, cohort=W1, offset=1)
    assert members == [h.b.id]
    whole = cell_members(db, actor=actor, config={}, period=NOV, clock=clock, cohort=W2, offset=None)
    assert whole == sorted([h.c.id, h.d.id])
    with pytest.raises(InvalidInput) as not_reached:
        cell_members(db, actor=actor, config={"offsets": 3}, period=NOV, clock=clock, cohort=W2, offset=3)
    assert not_reached.value.details == {"field": "offset"}
    with pytest.raises(InvalidInput) as wrong:
        cell_members(db, actor=actor, config={}, period=NOV, clock=clock, cohort=date(2026, 11, 3), offset=0)
    assert wrong.value.details == {"field": "cohort"}


def test_empty_workspace_gives_zero_sizes_and_no_nan(db: Session, workspace: Workspace, clock: FrozenClock) -> None:
    result = _run(db, workspace, clock, offsets=2)
    assert _grid(result) == [(W1, 0, [0, 0, 0]), (W2, 0, [0, 0, 0])]
    assert result.average == [None, None, None] and result.cohorts[0].rates == [None, None, None]
    assert rate_table(result).footer is not None


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"grain": "day"}, "config.grain"),
        ({"cohort": "nope"}, "config.cohort"),
        ({"offsets": 0}, "config.offsets"),
        ({"offsets": "x"}, "config.offsets"),
        ({"return_event": "event"}, "config.event_type"),
        ({"measure": "friend", "cohort": "first_order"}, "config.cohort"),
        ({"colour": "red"}, "config.colour"),
    ],
)
def test_bad_definitions_name_the_field(
    db: Session, workspace: Workspace, clock: FrozenClock, config: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        _run(db, workspace, clock, **config)
    assert raised.value.details == {"field": field}


def test_staff_cannot_read(db: Session, workspace: Workspace, clock: FrozenClock) -> None:
    with pytest.raises(PermissionDenied):
        cohort_table(db, actor=actor_for(workspace, role=Role.STAFF), config={}, period=NOV, clock=clock)


history = st.lists(
    st.tuples(st.integers(0, 20), st.lists(st.integers(-3, 25), max_size=4), st.integers(0, 3)), min_size=1, max_size=6
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history)
def test_on_or_after_never_below_on_and_order_cohort_starts_at_100(
    db: Session, clock: FrozenClock, customers: list[tuple[int, list[int], int]]
) -> None:
    savepoint = db.begin_nested()
    try:
        # given random customers: an add day in November, order days relative to it, and a removal
        # `removal` × 4 days after the add (0: never; removals after now are dropped); nobody re-adds
        ws = make_workspace(db, clock=clock)
        staff = make_staff(db, workspace=ws, clock=clock)
        actor = actor_for(ws)
        for add_day, order_days, removal in customers:
            customer = make_customer(db, actor=actor, clock=clock).customer
            added = at(11, 1 + add_day)
            removed = added + timedelta(days=4 * removal) if removal else None
            if removed is not None and removed > clock.now():
                removed = None
            make_relationship(
                db,
                customer=customer,
                staff=staff,
                added_at=added,
                removed_at=removed,
                removed_by="customer" if removed else None,
            )
            for n in order_days:
                day = 1 + add_day + n
                if 1 <= day <= 22:
                    order(db, customer, at(11, day))
        period = Period(date(2026, 11, 1), date(2026, 11, 22))
        for cohort in ("added", "first_order"):
            on = cohort_table(db, actor=actor, config={"cohort": cohort}, period=period, clock=clock)
            after = cohort_table(
                db, actor=actor, config={"cohort": cohort, "criterion": "on_or_after"}, period=period, clock=clock
            )
            # then "on or after" ≥ "on" in every cell
            for a, b in zip(on.cohorts, after.cohorts, strict=True):
                assert a.size == b.size
                assert all(
                    (x is None and y is None) or (x or 0) <= (y or 0) for x, y in zip(a.counts, b.counts, strict=True)
                )
            if cohort == "first_order":
                # and offset 0 of an order cohort with the order return event is 100 %
                assert all(r.rates[0] == 1.0 for r in on.cohorts if r.size)
        # friend retention: every rate ≤ 1, and with one edge each (no re-adds) it never rises with k
        friend = cohort_table(db, actor=actor, config={"measure": "friend"}, period=period, clock=clock)
        for row in friend.cohorts:
            reached = [n for n in row.counts if n is not None]
            assert all(0 <= n <= row.size for n in reached)
            assert all(later <= earlier for earlier, later in pairwise(reached))
    finally:
        savepoint.rollback()
