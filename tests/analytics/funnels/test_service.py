"""run_funnel on the hand-built scenario: counts, conversions, medians, breakdowns, exclusions, drop-offs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.analytics.funnels.schemas import parse_definition
from siyu.analytics.funnels.service import drop_off_segment, reached_segment, run_funnel, save_funnel
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, NotFound, PermissionDenied
from siyu.models import (
    CustomerEvent,
    CustomerTag,
    GroupMember,
    LiveCode,
    LiveCodeKind,
    LiveCodeScan,
    Role,
    Segment,
    SegmentMember,
    TagGroup,
)
from tests.analytics.funnels.scenario import BASIC, PERIOD, Scenario, at, build, event, scan
from tests.factories import actor_for, make_group, make_order, make_tag, make_workspace


@pytest.fixture
def s(db: Session, clock: FrozenClock) -> Scenario:
    return build(db, clock, make_workspace(db, clock=clock))


def counts(result: Any) -> list[int]:
    return [f.customers for f in result.total.steps]


def run(db: Session, s: Scenario, clock: FrozenClock, definition: dict[str, Any]) -> Any:
    return run_funnel(
        db, actor=actor_for(s.workspace, role=Role.ANALYST), definition=definition, period=PERIOD, clock=clock
    )


def test_ordered_funnel_counts_conversions_and_median_hours(db: Session, clock: FrozenClock, s: Scenario) -> None:
    result = run(db, s, clock, BASIC)
    # entered c1 c2 c3 c5 (c4 scanned before the period, c6 is merged away); added within a day:
    # c1 (2 h), c3 (6 h), c5 (1 h); first pool order within 30 days of the add: c1 (11-02 12:00 → 11-05 10:00 = 70 h)
    assert counts(result) == [4, 3, 1]
    steps = result.total.steps
    assert [f.step_conversion for f in steps] == [None, 0.75, 1 / 3]
    assert [f.overall_conversion for f in steps] == [1.0, 0.75, 0.25]
    # median of 2 h, 6 h, 1 h is 2 h; the third step has one gap of 70 h
    assert [f.median_hours for f in steps] == [None, 2.0, 70.0]


def test_windows_from_the_previous_step_or_from_the_start(db: Session, clock: FrozenClock, s: Scenario) -> None:
    # add within 2 hours of the scan: c1 (2 h, inclusive) and c5 (1 h); c3 took 6 h
    two_hours = {"steps": [{"kind": "scan"}, {"kind": "added", "within": {"hours": 2}}]}
    assert counts(run(db, s, clock, two_hours)) == [4, 2]
    # order within 2 days of the add (70 h > 48 h): nobody; within 3 days of the scan (72 h ≥ 72 h): c1
    late = {
        "steps": [
            {"kind": "scan"},
            {"kind": "added", "within": {"days": 1}},
            {"kind": "order", "nth": 1, "within": {"days": 2}},
        ]
    }
    assert counts(run(db, s, clock, late)) == [4, 3, 0]
    start = {
        "steps": [
            {"kind": "scan"},
            {"kind": "added", "within": {"days": 1}},
            {"kind": "order", "nth": 1, "within": {"days": 3}, "window_from": "start"},
        ]
    }
    assert counts(run(db, s, clock, start)) == [4, 3, 1]


def test_any_order_and_nth_null_counts_any_order(db: Session, clock: FrozenClock, s: Scenario) -> None:
    # any order, order nth null: each step anywhere in [entry, entry + W]; W2 = 1 day, W3 = 1 day + 30 days.
    # c1: add 11-02 12:00 (2 h after the scan), order 11-05 10:00 (72 h); c3: add (6 h), no order;
    # c5: add 11-06 01:00 (1 h), its 2nd order 11-07 00:00 (24 h); c2: nothing → [4, 3, 2]
    anyorder = {
        "steps": [{"kind": "scan"}, {"kind": "added", "within": {"days": 1}}, {"kind": "order", "nth": None}],
        "order": "any",
    }
    result = run(db, s, clock, anyorder)
    assert counts(result) == [4, 3, 2]
    # any-order medians run from the entry: median(2, 6, 1) = 2 h; median(72, 24) = 48 h
    assert [f.median_hours for f in result.total.steps] == [None, 2.0, 48.0]
    # scan → first order → coupon: c1 claimed the coupon (11-03 00:00) before the order (11-05 10:00),
    # so ordered stops at the order; any order counts c1 (both within 60 days of the scan)
    steps = [{"kind": "scan"}, {"kind": "order", "nth": 1}, {"kind": "event", "type": "coupon.claim"}]
    assert counts(run(db, s, clock, {"steps": steps, "order": "ordered"})) == [4, 1, 0]
    unordered = run(db, s, clock, {"steps": steps, "order": "any"})
    assert counts(unordered) == [4, 1, 1]
    # from the scan 11-02 10:00: the order 72 h later, the coupon 14 h later
    assert [f.median_hours for f in unordered.total.steps] == [None, 72.0, 14.0]


def test_consecutive_steps_of_one_kind_need_different_rows(db: Session, clock: FrozenClock, s: Scenario) -> None:
    # orders in the period: c1 11-05 10:00, c5 11-07 00:00 (one each) → entered 2, nobody has a second row
    again = {"steps": [{"kind": "order"}, {"kind": "order", "within": {"days": 30}}]}
    assert counts(run(db, s, clock, again)) == [2, 0]
    assert counts(run(db, s, clock, again | {"order": "any"})) == [2, 0]
    # c1 orders again 11-10 00:00 (110 h later); c5 places a second order at the very same instant (0 h)
    make_order(db, customer=s.c["c1"], paid_at=at(11, 10))
    make_order(db, customer=s.c["c5"], paid_at=at(11, 7))
    result = run(db, s, clock, again)
    assert counts(result) == [2, 2]
    assert [f.median_hours for f in result.total.steps] == [None, 55.0]  # median(110, 0)
    # a third order step: each has only two rows, so nobody (the same-instant row may not come back)
    thrice = {"steps": again["steps"] + [{"kind": "order", "within": {"days": 30}}]}
    assert counts(run(db, s, clock, thrice)) == [2, 2, 0]
    assert counts(run(db, s, clock, thrice | {"order": "any"})) == [2, 2, 0]


def test_any_feasible_path_beats_greedy_first_occurrence(db: Session, clock: FrozenClock, s: Scenario) -> None:
    # c2 scanned 11-03 00:00, viewed a page at 01:00 and 09:00, checked in at 09:30.
    # scan → view within 10 h → check-in within 1 h of the view: the 01:00 view leads nowhere (09:30 > 02:00),
    # the 09:00 one does (09:30 ≤ 10:00), so c2 reaches step 3 (greedy first-occurrence would stop at 2)
    event(db, s.c["c2"], "page.view", at(11, 3, 1))
    event(db, s.c["c2"], "page.view", at(11, 3, 9))
    db.add(
        CustomerEvent(
            workspace_id=s.workspace.id,
            customer_id=s.c["c2"].id,
            type="checkin.done",
            occurred_at=at(11, 3, 9) + timedelta(minutes=30),
            properties={},
            source="test",
            idempotency_key="checkin-c2",
            recorded_at=at(11, 3, 9),
        )
    )
    db.flush()
    definition = {
        "steps": [
            {"kind": "scan"},
            {"kind": "event", "type": "page.view", "within": {"hours": 10}},
            {"kind": "event", "type": "checkin.done", "within": {"hours": 1}},
        ]
    }
    result = run(db, s, clock, definition)
    assert counts(result) == [4, 1, 1]
    # medians use each step's earliest feasible time: view 01:00 (1 h after the scan), check-in 09:30 (8.5 h later)
    assert [f.median_hours for f in result.total.steps] == [None, 1.0, 8.5]


def test_joined_group_step(db: Session, clock: FrozenClock, s: Scenario) -> None:
    group = make_group(db, workspace=s.workspace, clock=clock)
    # c1 joins 11-02 15:00 (3 h after the add), c3 joins 11-06 06:00 (48 h after its add: outside 1 day)
    db.add(
        GroupMember(workspace_id=s.workspace.id, group_id=group.id, customer_id=s.c["c1"].id, joined_at=at(11, 2, 15))
    )
    db.add(
        GroupMember(workspace_id=s.workspace.id, group_id=group.id, customer_id=s.c["c3"].id, joined_at=at(11, 6, 6))
    )
    db.flush()
    definition = {
        "steps": [
            {"kind": "scan"},
            {"kind": "added", "within": {"days": 1}},
            {"kind": "joined_group", "within": {"days": 1}},
        ]
    }
    result = run(db, s, clock, definition)
    assert counts(result) == [4, 3, 1]
    assert result.total.steps[2].median_hours == 3.0


def test_event_property_filters_are_equalities(db: Session, clock: FrozenClock, s: Scenario) -> None:
    event(db, s.c["c2"], "page.view", at(11, 3, 5), page="mall", sku=1)
    event(db, s.c["c3"], "page.view", at(11, 4, 5), page="home")
    steps: list[dict[str, Any]] = [{"kind": "scan"}, {"kind": "event", "type": "page.view"}]
    assert counts(run(db, s, clock, {"steps": steps})) == [4, 2]
    steps[1]["properties"] = {"page": "mall", "sku": 1}
    assert counts(run(db, s, clock, {"steps": steps})) == [4, 1]
    steps[1]["properties"] = {"sku": "1"}  # text "1" is not the number 1
    assert counts(run(db, s, clock, {"steps": steps})) == [4, 0]


def test_property_numbers_compare_as_numbers_and_booleans_stay_apart(
    db: Session, clock: FrozenClock, s: Scenario
) -> None:
    event(db, s.c["c2"], "page.view", at(11, 3, 5), price=100.0, flag=1, **{"page name": "mall"})
    event(db, s.c["c3"], "page.view", at(11, 4, 5), price=100, flag=True)
    steps: list[dict[str, Any]] = [{"kind": "scan"}, {"kind": "event", "type": "page.view"}]
    for wanted, expected in (
        ({"price": 100}, [4, 2]),  # 100 == 100.0
        ({"price": 100.0}, [4, 2]),
        ({"price": 99.5}, [4, 0]),
        ({"flag": True}, [4, 1]),  # c3 only: the number 1 is not true
        ({"flag": 1}, [4, 1]),  # c2 only
        ({"page name": "mall"}, [4, 1]),  # a key SQL paths do not take: filtered in Python
    ):
        steps[1]["properties"] = wanted
        assert counts(run(db, s, clock, {"steps": steps})) == expected, wanted


def test_exclusion_drops_customers_from_the_later_step(db: Session, clock: FrozenClock, s: Scenario) -> None:
    # c1 claimed a coupon between the add (11-02) and the order (11-05): not counted at step 3 any more
    definition = BASIC | {"exclusions": [{"exclude": {"kind": "event", "type": "coupon.claim"}, "between": [2, 3]}]}
    assert counts(run(db, s, clock, definition)) == [4, 3, 0]
    # between the scan and the add (11-02 10:00 … 12:00) nobody claimed: unchanged
    definition["exclusions"][0]["between"] = [1, 2]
    assert counts(run(db, s, clock, definition)) == [4, 3, 1]


def test_several_exclusions_each_cut_their_customers(db: Session, clock: FrozenClock, s: Scenario) -> None:
    # c1 claimed a coupon 11-03 00:00, between its add (11-02 12:00) and its order (11-05 10:00): stops at 2.
    # c3 complained 11-04 03:00, between its scan (00:00) and its add (06:00): stops at 1.
    event(db, s.c["c3"], "complaint", at(11, 4, 3))
    definition = BASIC | {
        "exclusions": [
            {"exclude": {"kind": "event", "type": "coupon.claim"}, "between": [2, 3]},
            {"exclude": {"kind": "event", "type": "complaint"}, "between": [1, 2]},
        ]
    }
    # entered c1 c2 c3 c5; added: c1, c5 (c3 cut); first order: nobody (c1 cut)
    assert counts(run(db, s, clock, definition)) == [4, 2, 0]


def test_step_one_ties_resolve_by_row_id(db: Session, clock: FrozenClock, s: Scenario) -> None:
    # c3 scans again at the very instant of its channel-B scan, through channel A (a later row): the entry
    # is the earlier row, so c3 stays under B
    code = db.scalars(select(LiveCode).where(LiveCode.workspace_id == s.workspace.id)).first()
    assert code is not None
    scan(db, code, s.c["c3"], at(11, 4), s.a)
    result = run(db, s, clock, BASIC | {"breakdown": {"by": "channel"}})
    rows = {g.key: [f.customers for f in g.steps] for g in result.breakdown}
    assert rows == {str(s.a.id): [2, 1, 1], str(s.b.id): [1, 1, 0], "": [1, 1, 0]}


def test_breakdown_by_channel_staff_and_variant(db: Session, clock: FrozenClock, s: Scenario) -> None:
    result = run(db, s, clock, BASIC | {"breakdown": {"by": "channel"}})
    # the scan's channel: A = c1, c2; B = c3; none = c5
    rows = {(g.key, g.label): [f.customers for f in g.steps] for g in result.breakdown}
    assert rows == {(str(s.a.id), "包裹卡"): [2, 1, 1], (str(s.b.id), "门店"): [1, 1, 0], ("", None): [1, 1, 0]}
    # the first step's staff and variant: the added step carries them
    added_first = {"steps": [{"kind": "added"}, {"kind": "order", "nth": None, "within": {"days": 30}}]}
    staff = run(db, s, clock, added_first | {"breakdown": {"by": "staff"}})
    # entered by add in the period: c1 (s1), c3 (s2), c4 (s1), c5 (s1); ordered: c1, c5
    assert {g.label: [f.customers for f in g.steps] for g in staff.breakdown} == {"小美": [3, 2], "小丽": [1, 0]}
    variant = run(db, s, clock, added_first | {"breakdown": {"by": "variant"}})
    # these edges carry no live code: keyed ":<variant>", labelled by the variant alone
    rows = {(g.key, g.label): [f.customers for f in g.steps] for g in variant.breakdown}
    assert rows == {("", None): [2, 0], (":A", "A"): [1, 1], (":B", "B"): [1, 1]}


def test_variants_of_two_live_codes_stay_apart_and_every_count_drills(
    db: Session, clock: FrozenClock, s: Scenario
) -> None:
    spring, autumn = (
        LiveCode(workspace_id=s.workspace.id, slug=slug, name=name, kind=LiveCodeKind.STAFF, created_at=clock.now())
        for slug, name in (("spring", "春季活码"), ("autumn", "秋季活码"))
    )
    db.add_all([spring, autumn])
    db.flush()
    # earlier scans than the scenario's, so they are the entries: both codes run an experiment with an "A"
    for customer, code, variant in (("c1", spring, "A"), ("c2", spring, "B"), ("c3", autumn, "A")):
        db.add(
            LiveCodeScan(
                workspace_id=s.workspace.id,
                live_code_id=code.id,
                visitor_id=f"x-{customer}",
                outcome="routed",
                scanned_at=at(11, 1),
                customer_id=s.c[customer].id,
                variant=variant,
            )
        )
    db.flush()
    definition = {
        "steps": [{"kind": "scan"}, {"kind": "added", "within": {"days": 30}}],
        "breakdown": {"by": "variant"},
    }
    result = run(db, s, clock, definition)
    # added within 30 days: c1 (11-02), c3 (11-04), c5 (11-06; its scan has no variant); c2 never
    rows = {(g.key, g.label): [f.customers for f in g.steps] for g in result.breakdown}
    assert rows == {
        (f"{spring.id}:A", "春季活码 · A"): [1, 1],
        (f"{autumn.id}:A", "秋季活码 · A"): [1, 1],
        (f"{spring.id}:B", "春季活码 · B"): [1, 0],
        ("", None): [1, 1],
    }
    # every count in the step and breakdown tables is the size of its reached drill
    for group in [result.total, *result.breakdown]:
        key = None if group is result.total else group.key
        assert [len(result.reached_ids(f.number, key)) for f in group.steps] == [f.customers for f in group.steps]
    analyst = actor_for(s.workspace, role=Role.ANALYST)
    segment, members = reached_segment(
        db, actor=analyst, definition=definition, period=PERIOD, step=2, clock=clock, breakdown_value=f"{autumn.id}:A"
    )
    ids = set(db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment.id)))
    assert (members, ids) == (1, {s.c["c3"].id})
    assert segment.name == "漏斗到达 第2步 秋季活码 · A 2026-11-01~2026-11-20"
    total, members = reached_segment(db, actor=analyst, definition=definition, period=PERIOD, step=2, clock=clock)
    ids = set(db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == total.id)))
    assert (members, ids) == (3, {s.c["c1"].id, s.c["c3"].id, s.c["c5"].id})
    # the last step can be reached but not dropped from; a bare "A" is no longer a breakdown value
    for step, value, field in ((3, None, "step"), (1, "A", "breakdown_value")):
        with pytest.raises(InvalidInput) as caught:
            reached_segment(
                db, actor=analyst, definition=definition, period=PERIOD, step=step, clock=clock, breakdown_value=value
            )
        assert caught.value.details == {"field": field}
    with pytest.raises(InvalidInput):
        drop_off_segment(db, actor=analyst, definition=definition, period=PERIOD, step=2, clock=clock)


def test_drop_off_segment_holds_who_stopped_at_the_step(db: Session, clock: FrozenClock, s: Scenario) -> None:
    analyst = actor_for(s.workspace, role=Role.ANALYST)
    # reached "added" and no first order: c3, c5
    segment, members = drop_off_segment(db, actor=analyst, definition=BASIC, period=PERIOD, step=2, clock=clock)
    ids = set(db.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment.id)))
    assert (members, ids) == (2, {s.c["c3"].id, s.c["c5"].id})
    with pytest.raises(InvalidInput) as caught:
        drop_off_segment(db, actor=analyst, definition=BASIC, period=PERIOD, step=3, clock=clock)
    assert caught.value.details == {"field": "step"}


def test_staff_may_not_run_or_drill(db: Session, clock: FrozenClock, s: Scenario) -> None:
    staff = actor_for(s.workspace, role=Role.STAFF)
    before = db.scalar(select(func.count()).select_from(Segment))
    with pytest.raises(PermissionDenied):
        run_funnel(db, actor=staff, definition=BASIC, period=PERIOD, clock=clock)
    with pytest.raises(PermissionDenied):
        drop_off_segment(db, actor=staff, definition=BASIC, period=PERIOD, step=1, clock=clock)
    assert db.scalar(select(func.count()).select_from(Segment)) == before


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        ([], "definition"),
        ({"steps": [{"kind": "scan"}]}, "definition.steps"),
        ({"steps": [{"kind": "scan"}, {"kind": "teleport"}]}, "definition.steps[1].kind"),
        ({"steps": [{"kind": "scan"}, {"kind": "added", "within": {"days": 0}}]}, "definition.steps[1].within.days"),
        ({"steps": [{"kind": "scan"}, {"kind": "added", "within": {"weeks": 1}}]}, "definition.steps[1].within"),
        ({"steps": [{"kind": "scan"}, {"kind": "order", "nth": "first"}]}, "definition.steps[1].nth"),
        ({"steps": [{"kind": "scan"}, {"kind": "event"}]}, "definition.steps[1].type"),
        ({"steps": [{"kind": "scan", "within": {"days": 1}}, {"kind": "added"}]}, "definition.steps[0].within"),
        ({"steps": [{"kind": "scan"}, {"kind": "added"}], "order": "random"}, "definition.order"),
        (
            BASIC | {"exclusions": [{"exclude": {"kind": "scan"}, "between": [2, 2]}]},
            "definition.exclusions[0].between",
        ),
        (BASIC | {"breakdown": {"by": "tag"}}, "definition.breakdown.tag_group_id"),
        (BASIC | {"breakdown": {"by": "weather"}}, "definition.breakdown.by"),
        (
            BASIC | {"order": "any", "exclusions": [{"exclude": {"kind": "scan"}, "between": [1, 2]}]},
            "definition.exclusions",
        ),
        (
            {"steps": [{"kind": "scan"}, {"kind": "event", "type": "x", "properties": {"a": float("nan")}}]},
            "definition.steps[1].properties.a",
        ),
        (
            {"steps": [{"kind": "scan"}, {"kind": "event", "type": "x", "properties": {"a": float("inf")}}]},
            "definition.steps[1].properties.a",
        ),
    ],
)
def test_malformed_definitions_name_the_field(definition: Any, field: str) -> None:
    # the parser runs before any query (run_funnel and save_funnel call it first); no database needed
    with pytest.raises(InvalidInput) as caught:
        parse_definition(definition)
    assert caught.value.details == {"field": field}


def test_saved_funnel_is_stored_canonical(db: Session, clock: FrozenClock, s: Scenario) -> None:
    report = save_funnel(
        db, actor=actor_for(s.workspace, role=Role.ANALYST), name="首单漏斗", definition=BASIC, clock=clock
    )
    assert report.config == {
        "steps": [
            {"kind": "scan"},
            {"kind": "added", "within": {"days": 1}},
            {"kind": "order", "nth": 1, "within": {"days": 30}},
        ],
        "order": "ordered",
    }


def test_breakdown_by_tag_counts_a_customer_under_each_tag_held(db: Session, clock: FrozenClock, s: Scenario) -> None:
    vip = make_tag(db, workspace=s.workspace, name="VIP")
    new = make_tag(db, workspace=s.workspace, name="新客", group=db.get(TagGroup, vip.group_id))
    for customer, tag in (("c1", vip), ("c1", new), ("c3", new)):
        db.add(
            CustomerTag(
                workspace_id=s.workspace.id,
                customer_id=s.c[customer].id,
                tag_id=tag.id,
                source="manual",
                assigned_at=clock.now(),
            )
        )
    db.flush()
    result = run(db, s, clock, BASIC | {"breakdown": {"by": "tag", "tag_group_id": vip.group_id}})
    # VIP: c1 → [1, 1, 1]; 新客: c1, c3 → [2, 2, 1]; none: c2, c5 → [2, 1, 0]
    assert {g.label: [f.customers for f in g.steps] for g in result.breakdown} == {
        "新客": [2, 2, 1],
        None: [2, 1, 0],
        "VIP": [1, 1, 1],
    }
    with pytest.raises(NotFound):
        run(db, s, clock, BASIC | {"breakdown": {"by": "tag", "tag_ids": [vip.id, 10**9]}})


def test_tag_breakdown_is_scoped_to_the_workspace(db: Session, clock: FrozenClock, s: Scenario) -> None:
    other = make_workspace(db, clock=clock)
    secret = make_tag(db, workspace=other, name="SECRET")
    with pytest.raises(NotFound) as caught:
        run(db, s, clock, BASIC | {"breakdown": {"by": "tag", "tag_ids": [secret.id]}})
    assert caught.value.details == {"field": "definition.breakdown.tag_ids"}
    with pytest.raises(NotFound) as caught:
        run(db, s, clock, BASIC | {"breakdown": {"by": "tag", "tag_group_id": secret.group_id}})
    assert caught.value.details == {"field": "definition.breakdown.tag_group_id"}
