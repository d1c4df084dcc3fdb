"""The demo's funnel, without a database: routing under caps and shifts, strays, the hook test, groups."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from siyu.demo.funnel import Code, Funnel, Group, Route, Trial
from siyu.experiments.assignment import assign_variant
from siyu.livecodes.state import decode_state
from siyu.models import RouteShift

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
OPENED = NOW - timedelta(days=300)
TEST_START = NOW - timedelta(days=42)
TEST_END = TEST_START + timedelta(days=21)


def _funnel(
    code: Code, *, trial: Trial | None = None, group_code: Code | None = None, groups: list[Group] | None = None
) -> Funnel:
    return Funnel(
        random.Random(3),
        workspace_id=1,
        now=NOW,
        tz=TZ,
        online={code.channel: code},
        regional={},
        stores={},
        stores_by_city={},
        stores_by_region={},
        online_share={},
        opened={code.channel: OPENED},
        trial=trial,
        trial_boost=3.0,
        group_code=group_code,
        groups=groups or [],
    )


def _capped_code() -> Code:
    routes = [
        Route(11, 101, None, None, cap=3),
        Route(12, 102, None, None, cap=3),
        Route(13, 103, None, None, backup=True),
    ]
    return Code(7, "抖音", 4, OPENED, routes, add_rate=0.25)


def test_caps_are_never_exceeded_and_backups_take_only_the_overflow() -> None:
    # given a code with two routes capped at 3 a day and an uncapped backup
    code = _capped_code()
    funnel = _funnel(code)
    noon = datetime(2026, 11, 20, 12, 0, tzinfo=TZ)
    # when 10 customers add through it on one day (each with the scans of those who did not)
    adds = [funnel.add("抖音", noon + timedelta(minutes=n), city="成都", region=None) for n in range(10)]
    # then no route took more than its cap on any day, and the backup took only what was left
    for (route_id, _day), taken in funnel.taken.items():
        assert route_id == 13 or taken <= 3
    scans = [scan for add in adds for scan in add.scans]
    per_day = Counter((s["route_id"], funnel.day(s["scanned_at"])) for s in scans if s["outcome"] != "sticky")
    assert dict(per_day) == funnel.taken
    for day in {funnel.day(s["scanned_at"]) for s in scans}:
        regular = funnel.taken.get((11, day), 0) + funnel.taken.get((12, day), 0)
        assert funnel.taken.get((13, day), 0) == 0 or regular == 6
    assert {s["outcome"] for s in scans if s["route_id"] == 13} == {"backup"}
    assert Counter(s["outcome"] for s in scans) == {"routed": 19, "backup": 19, "sticky": 2}
    # and every add went to the staff member of the route its scan took, through the code's state
    for add in adds:
        assert add.staff_id == add.scan["staff_id"] and add.scan["added_at"] is not None
        decoded = decode_state(add.state)
        assert decoded is not None and (decoded.live_code_id, decoded.channel_id) == (7, 4)
    # and the code converts at its rate: 10 adds, 30 scans that led nowhere
    assert len(scans) == 40
    assert code.routed == 40 - sum(s["outcome"] == "sticky" for s in scans)


def test_shifts_send_night_scans_to_the_night_route() -> None:
    # given a code working 09:00–22:00 with a day route and a night route
    routes = [
        Route(21, 201, None, None, shift=RouteShift.WORKING),
        Route(22, 202, None, None, shift=RouteShift.OFF_HOURS),
    ]
    code = Code(8, "小红书", 5, OPENED, routes, schedule=[{"days": list(range(7)), "start": "09:00", "end": "22:00"}])
    funnel = _funnel(code)
    # when customers add at noon and at 03:00 (brand time)
    day = funnel.add("小红书", datetime(2026, 11, 20, 12, 30, tzinfo=TZ), city="成都", region=None)
    night = funnel.add("小红书", datetime(2026, 11, 20, 3, 30, tzinfo=TZ), city="成都", region=None)
    # then the day add went to the day route and the night add to the night route
    assert (day.staff_id, night.staff_id) == (201, 202)


def test_the_hook_test_splits_traffic_evenly_and_converts_each_arm_at_its_rate() -> None:
    # given a test of two arms on a code, converting at 28 % and 33 %
    code = Code(9, "包裹卡", 6, OPENED, [Route(31, 301, None, None), Route(32, 302, None, None)], add_rate=0.3)
    trial = Trial(55, 9, TEST_START, TEST_END, (("A", 0.28, 50), ("B", 0.33, 50)))
    funnel = _funnel(code, trial=trial)
    rng = random.Random(5)
    # when 1,000 customers add during the test and 200 after it
    during = [TEST_START + timedelta(seconds=rng.randrange(21 * 86400)) for _ in range(1000)]
    after = [TEST_END + timedelta(days=1, seconds=rng.randrange(86400)) for _ in range(200)]
    adds = [funnel.add("包裹卡", at, city="成都", region=None) for at in during + after]
    # then every exposure is in the arm the hash assigns, during the test, and only during it
    users = Counter(arm for _, arm, _, _ in funnel.exposures)
    converted = Counter(arm for _, arm, _, scan in funnel.exposures if scan is not None)
    for visitor, arm, at, _ in funnel.exposures:
        assert assign_variant(55, visitor, [("A", 50), ("B", 50)]) == arm
        assert TEST_START <= at < TEST_END
    assert len({visitor for visitor, _, _, _ in funnel.exposures}) == len(funnel.exposures)
    # and traffic is even while the arms convert at their rates
    assert sum(converted.values()) == sum(add.variant is not None for add in adds) == 1000
    assert abs(users["A"] - users["B"]) <= 0.02 * sum(users.values())
    assert abs(converted["A"] / users["A"] - 0.28) < 0.002
    assert abs(converted["B"] / users["B"] - 0.33) < 0.002
    # and the adds after the test carry no variant, their state none either
    assert {(add.variant, decode_state(add.state)) for add in adds[1000:]} == {(None, decode_state("s9-6-"))}


def test_group_joins_take_seats_in_order_until_every_group_is_full() -> None:
    # given a group code over two groups with 2 and 1 seats left
    code = _capped_code()
    group_code = Code(10, "公众号", 3, OPENED, [Route(41, None, 1, None), Route(42, None, 2, None)], add_rate=0.5)
    groups = [Group(group_code.routes[0], 2, NOW - timedelta(days=30)), Group(group_code.routes[1], 1, NOW)]
    funnel = _funnel(code, group_code=group_code, groups=groups)
    # when five customers try to join, the first long ago
    joined = [funnel.join(NOW - timedelta(days=days)) for days in (100, 90, 80, 10, 5)]
    # then the first group filled first, the second took the next, and the rest found no seat
    assert [j.group_id if j else None for j in joined] == [1, 1, 2, None, None]
    assert all(j.scan["customer_id"] is None and j.scan["group_id"] == j.group_id for j in joined if j)
