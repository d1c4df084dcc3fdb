"""Routing a scan: rotation, daily caps, backups, working-hours schedules and stickiness."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.livecodes.scan import scan_code
from siyu.models import LiveCodeRouteDay, LiveCodeScan, Staff, Workspace
from tests.factories import make_live_code, make_staff, make_workspace

RNG = random.Random(7)


def _staff(db: Session, ws: Workspace, clock: FrozenClock, n: int) -> list[Staff]:
    return [make_staff(db, workspace=ws, clock=clock, name=f"导购{chr(65 + i)}") for i in range(n)]


def _scan(db: Session, code: object, clock: FrozenClock, visitor: str, *, at: datetime | None = None) -> LiveCodeScan:
    result = scan_code(db, code, visitor_id=visitor, at=at or clock.now(), rng=RNG)  # type: ignore[arg-type]
    assert result.scan is not None
    return result.scan


def _names(db: Session, scans: list[LiveCodeScan]) -> list[str | None]:
    names = {s.id: s.name for s in db.scalars(select(Staff))}
    return [names.get(s.staff_id) if s.staff_id else None for s in scans]


def test_round_robin_cycles_through_staff_in_order(db: Session, clock: FrozenClock) -> None:
    # given a code over three staff members in round-robin
    ws = make_workspace(db, clock=clock)
    a, b, c = _staff(db, ws, clock, 3)
    code = make_live_code(db, workspace=ws, clock=clock, routes=[{"staff_id": s.id} for s in (a, b, c)])
    # when seven different visitors scan
    scans = [_scan(db, code, clock, f"v{i}") for i in range(7)]
    # then they go A, B, C, A, B, C, A
    assert _names(db, scans) == ["导购A", "导购B", "导购C", "导购A", "导购B", "导购C", "导购A"]
    assert {s.outcome for s in scans} == {"routed"}


def test_weighted_rotation_honours_weights_exactly_over_a_cycle(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    a, b = _staff(db, ws, clock, 2)
    code = make_live_code(
        db,
        workspace=ws,
        clock=clock,
        rotation="weighted",
        routes=[{"staff_id": a.id, "weight": 3}, {"staff_id": b.id, "weight": 1}],
    )
    scans = [_scan(db, code, clock, f"v{i}") for i in range(8)]
    assert _names(db, scans) == ["导购A", "导购A", "导购A", "导购B"] * 2


def test_random_rotation_only_picks_active_routes(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    a, b, c = _staff(db, ws, clock, 3)
    code = make_live_code(
        db,
        workspace=ws,
        clock=clock,
        rotation="random",
        routes=[{"staff_id": a.id}, {"staff_id": b.id}, {"staff_id": c.id, "is_active": False}],
    )
    names = _names(db, [_scan(db, code, clock, f"v{i}") for i in range(30)])
    assert set(names) == {"导购A", "导购B"}


def test_caps_then_backup_then_no_route(db: Session, clock: FrozenClock) -> None:
    # given A (cap 2) and B (cap 1), with backup C (cap 1)
    ws = make_workspace(db, clock=clock)
    a, b, c = _staff(db, ws, clock, 3)
    code = make_live_code(
        db,
        workspace=ws,
        clock=clock,
        routes=[
            {"staff_id": a.id, "daily_cap": 2},
            {"staff_id": b.id, "daily_cap": 1},
            {"staff_id": c.id, "daily_cap": 1, "is_backup": True},
        ],
    )
    # when five visitors scan the same day
    scans = [_scan(db, code, clock, f"v{i}") for i in range(5)]
    # then A and B fill up first, the backup takes the fourth, and the fifth finds nobody
    assert _names(db, scans) == ["导购A", "导购B", "导购A", "导购C", None]
    assert [s.outcome for s in scans] == ["routed", "routed", "routed", "backup", "no_route"]
    taken = dict(db.execute(select(LiveCodeRouteDay.route_id, LiveCodeRouteDay.taken)).all())
    assert sorted(taken.values()) == [1, 1, 2]


def test_caps_reset_on_the_next_brand_local_day(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    (a,) = _staff(db, ws, clock, 1)
    code = make_live_code(db, workspace=ws, clock=clock, routes=[{"staff_id": a.id, "daily_cap": 1}])
    # 2026-11-23 15:59Z is 23:59 in Shanghai; 16:00Z is already the 24th there
    first = _scan(db, code, clock, "v1", at=datetime(2026, 11, 23, 15, 59, tzinfo=UTC))
    full = _scan(db, code, clock, "v2", at=datetime(2026, 11, 23, 15, 59, 30, tzinfo=UTC))
    next_day = _scan(db, code, clock, "v3", at=datetime(2026, 11, 23, 16, 0, tzinfo=UTC))
    assert [first.outcome, full.outcome, next_day.outcome] == ["routed", "no_route", "routed"]


def test_schedule_sends_out_of_hours_scans_to_the_night_staff(db: Session, clock: FrozenClock) -> None:
    # given day staff working Mon-Fri 09:00-18:00 Shanghai time and night staff off hours
    ws = make_workspace(db, clock=clock)
    day, night, always = _staff(db, ws, clock, 3)
    code = make_live_code(
        db,
        workspace=ws,
        clock=clock,
        schedule=[{"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "18:00"}],
        routes=[{"staff_id": day.id, "shift": "working"}, {"staff_id": night.id, "shift": "off_hours"}],
    )
    monday_10am = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    monday_8pm = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    saturday_10am = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    scans = [_scan(db, code, clock, f"v{i}", at=t) for i, t in enumerate([monday_10am, monday_8pm, saturday_10am])]
    assert _names(db, scans) == ["导购A", "导购B", "导购B"]
    del always


def test_same_visitor_gets_the_same_staff_without_using_cap(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    a, b = _staff(db, ws, clock, 2)
    code = make_live_code(
        db, workspace=ws, clock=clock, routes=[{"staff_id": a.id, "daily_cap": 1}, {"staff_id": b.id}]
    )
    first, again, other = _scan(db, code, clock, "v1"), _scan(db, code, clock, "v1"), _scan(db, code, clock, "v2")
    assert _names(db, [first, again, other]) == ["导购A", "导购A", "导购B"]
    assert [first.outcome, again.outcome] == ["routed", "sticky"]


def test_inactive_staff_is_skipped(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    a, b = _staff(db, ws, clock, 2)
    code = make_live_code(db, workspace=ws, clock=clock, routes=[{"staff_id": a.id}, {"staff_id": b.id}])
    a.is_active = False
    db.flush()
    assert _names(db, [_scan(db, code, clock, f"v{i}") for i in range(3)]) == ["导购B"] * 3


@pytest.mark.parametrize(
    ("routes", "extra", "field"),
    [
        ([{"staff_id": "A", "daily_cap": 0}], {}, "routes[0].daily_cap"),
        ([{"staff_id": "A", "is_backup": True}], {}, "routes"),
        ([], {}, "routes"),
        ([{"staff_id": "A"}, {"staff_id": "A"}], {}, "routes[1]"),
        (
            [{"staff_id": "A"}],
            {
                "schedule": [
                    {"days": [0], "start": "09:00", "end": "12:00"},
                    {"days": [0, 1], "start": "11:00", "end": "13:00"},
                ]
            },
            "schedule[1]",
        ),
        ([{"staff_id": "A"}], {"schedule": [{"days": [7], "start": "09:00", "end": "12:00"}]}, "schedule[0]"),
        ([{"staff_id": "A"}], {"schedule": [{"days": [1], "start": "12:00", "end": "09:00"}]}, "schedule[0].end"),
        ([{"staff_id": "A"}], {"welcome": {"text": "你好 {{ nickname }}"}}, "welcome.text"),
        ([{"staff_id": "A"}], {"welcome": {"text": "你好 {{ name "}}, "welcome.text"),
        ([{"staff_id": 999_999}], {}, "routes[0].staff_id"),
    ],
)
def test_bad_configuration_is_refused_naming_the_field(
    db: Session, clock: FrozenClock, routes: list[dict[str, object]], extra: dict[str, object], field: str
) -> None:
    ws = make_workspace(db, clock=clock)
    (a,) = _staff(db, ws, clock, 1)
    concrete = [{**r, "staff_id": a.id if r.get("staff_id") == "A" else r["staff_id"]} for r in routes]
    with pytest.raises(InvalidInput) as raised:
        make_live_code(db, workspace=ws, clock=clock, routes=concrete, **extra)
    assert raised.value.details["field"] == field


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    caps=st.lists(st.one_of(st.none(), st.integers(1, 4)), min_size=1, max_size=4),
    backup_cap=st.integers(1, 3),
    visitors=st.integers(1, 16),
    rotation=st.sampled_from(["round_robin", "weighted", "random"]),
)
def test_caps_are_never_exceeded_and_backup_only_when_regulars_are_full(
    db: Session, clock: FrozenClock, caps: list[int | None], backup_cap: int, visitors: int, rotation: str
) -> None:
    with db.begin_nested() as savepoint:
        ws = make_workspace(db, clock=clock)
        staff = _staff(db, ws, clock, len(caps) + 1)
        routes = [
            {"staff_id": s.id, "daily_cap": cap, "weight": i + 1}
            for i, (s, cap) in enumerate(zip(staff, caps, strict=False))
        ]
        routes.append({"staff_id": staff[-1].id, "daily_cap": backup_cap, "is_backup": True})
        code = make_live_code(db, workspace=ws, clock=clock, rotation=rotation, routes=routes)
        scans = [_scan(db, code, clock, f"v{i}") for i in range(visitors)]
        per_staff = {s.id: 0 for s in staff}
        for scan in scans:
            if scan.staff_id is not None:
                per_staff[scan.staff_id] += 1
            if scan.outcome == "backup":
                # a backup is used only when every regular route had reached its cap
                assert all(cap is not None and per_staff[s.id] == cap for s, cap in zip(staff, caps, strict=False))
        for s, cap in zip(staff, caps, strict=False):
            assert cap is None or per_staff[s.id] <= cap
        assert per_staff[staff[-1].id] <= backup_cap
        regular_room = None if None in caps else sum(c for c in caps if c is not None)
        routed = sum(1 for s in scans if s.staff_id is not None)
        expected = visitors if regular_room is None else min(visitors, regular_room + backup_cap)
        assert routed == expected
        assert (
            db.scalar(select(func.count()).select_from(LiveCodeScan).where(LiveCodeScan.live_code_id == code.id))
            == visitors
        )
        savepoint.rollback()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    day_sets=st.lists(st.sets(st.integers(0, 6), min_size=1), min_size=1, max_size=3),
    hours=st.lists(st.tuples(st.integers(0, 23), st.integers(1, 24)), min_size=3, max_size=3),
    minute_of_week=st.integers(0, 7 * 24 * 60 - 1),
)
def test_schedules_are_respected(
    db: Session, clock: FrozenClock, day_sets: list[set[int]], hours: list[tuple[int, int]], minute_of_week: int
) -> None:
    # windows on disjoint hour bands (so they never overlap), one band per window
    bands = [(0, 8), (8, 16), (16, 24)]
    windows = []
    for days, (band_start, band_end), (a, b) in zip(day_sets, bands, hours, strict=False):
        start = band_start + a % (band_end - band_start)
        end = min(band_end, start + max(1, b % (band_end - band_start)))
        windows.append(
            {"days": sorted(days), "start": f"{start:02d}:00", "end": f"{end:02d}:00" if end < 24 else "24:00"}
        )
    # a Monday 00:00 Shanghai time, plus the drawn minute of the week
    local_monday = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)  # = 2026-11-23 00:00 in Shanghai
    at = local_monday + timedelta(minutes=minute_of_week)
    weekday, minute = minute_of_week // (24 * 60), minute_of_week % (24 * 60)
    inside = any(weekday in w["days"] and int(w["start"][:2]) * 60 <= minute < int(w["end"][:2]) * 60 for w in windows)
    with db.begin_nested() as savepoint:
        ws = make_workspace(db, clock=clock)
        day, night = _staff(db, ws, clock, 2)
        code = make_live_code(
            db,
            workspace=ws,
            clock=clock,
            schedule=windows,
            routes=[{"staff_id": day.id, "shift": "working"}, {"staff_id": night.id, "shift": "off_hours"}],
        )
        scan = _scan(db, code, clock, "v", at=at)
        assert scan.staff_id == (day.id if inside else night.id)
        savepoint.rollback()
