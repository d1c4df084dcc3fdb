"""The demo brand's acquisition data: channels, live codes, attributed adds, scans, orders, the hook test."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.channels.attribution import Attribution
from siyu.channels.metrics import channel_report
from siyu.db import Database
from siyu.demo import build_demo
from siyu.demo.channels import CHANNEL_SETUP, COST_DAYS, GROUPS
from siyu.experiments.assignment import assign_variant
from siyu.experiments.service import results_of
from siyu.experiments.stats import sample_size
from siyu.kit.clock import FrozenClock, as_utc
from siyu.livecodes.groups import group_capacity
from siyu.livecodes.schedule import is_working
from siyu.livecodes.state import decode_state
from siyu.livecodes.welcome import check_template
from siyu.models import (
    Channel,
    ChannelCostEntry,
    CommunityGroup,
    Customer,
    CustomerEvent,
    Experiment,
    ExperimentExposure,
    ExperimentStatus,
    ExperimentVariant,
    LifecycleStage,
    LiveCode,
    LiveCodeKind,
    LiveCodeRoute,
    LiveCodeRouteDay,
    LiveCodeScan,
    LiveCodeTag,
    Order,
    OrderStatus,
    Relationship,
    RotationMode,
    RouteShift,
    Staff,
    Tag,
    User,
    Workspace,
)

CUSTOMERS = 400
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def built(database: Database, clock: FrozenClock) -> None:
    assert build_demo(database, customers=CUSTOMERS, clock=clock) is True


def _day(at: datetime) -> date:
    return as_utc(at).astimezone(TZ).date()


def _codes(db: Session) -> dict[int, LiveCode]:
    return {c.id: c for c in db.scalars(select(LiveCode))}


def _routes(db: Session) -> dict[int, LiveCodeRoute]:
    return {r.id: r for r in db.scalars(select(LiveCodeRoute))}


def test_channels_live_codes_and_groups_are_set_up(built: None, db: Session) -> None:
    # given the built demo
    operator = db.scalar(select(User.id).where(User.email == "operator@demo.siyu.local"))
    channels = {c.name: c for c in db.scalars(select(Channel))}
    codes = list(_codes(db).values())
    routes = list(_routes(db).values())
    staff_store = dict(db.execute(select(Staff.id, Staff.store_id)).all())
    # then every catalog channel has its type, hook, cost model and the operator as owner
    assert {name: (c.type, c.hook, c.cost_model, c.cpa_fen, c.cps_basis_points) for name, c in channels.items()} == {
        name: (s.type, s.hook, s.cost_model, s.cpa_fen, s.cps_basis_points) for name, s in CHANNEL_SETUP.items()
    }
    assert channels["小红书"].cpa_fen == 800 and channels["天猫旗舰店"].cps_basis_points == 500
    assert {c.owner_user_id for c in channels.values()} == {operator}
    # and every channel has a live code: 7 online codes, 2 "nearest store" codes, 8 shop codes, 1 group code
    assert Counter(c.kind for c in codes) == {LiveCodeKind.STAFF: 7, LiveCodeKind.STORE: 10, LiveCodeKind.GROUP: 1}
    assert {c.channel_id for c in codes} == {c.id for c in channels.values()}
    assert all(c.deleted_at is None for c in codes)
    for code in codes:
        mine = [r for r in routes if r.live_code_id == code.id]
        if code.store_id is not None:  # a shop's code routes to that shop's three 导购
            assert sorted(staff_store[r.staff_id] for r in mine) == [code.store_id] * 3
        if any(r.daily_cap for r in mine):  # capped codes fall back on an uncapped backup
            assert [r.daily_cap for r in mine if r.is_backup] == [None]
        if code.kind != LiveCodeKind.GROUP:
            check_template(code.welcome["text"])
            assert "{{ name }}" in code.welcome["text"] and "{{ staff_name }}" in code.welcome["text"]
    scheduled = [c for c in codes if c.schedule]
    assert [c.name for c in scheduled] == ["小红书 · KOL 种草笔记"]
    shifts = {r.shift for r in routes if r.live_code_id == scheduled[0].id}
    assert shifts == {RouteShift.WORKING, RouteShift.OFF_HOURS, RouteShift.ALWAYS}
    # and each code (but the group code) tags its adds with the channel's 来源 tag
    tag_names = dict(db.execute(select(Tag.id, Tag.name)).all())
    code_tags = {
        code_id: tag_names[tag_id]
        for code_id, tag_id in db.execute(select(LiveCodeTag.live_code_id, LiveCodeTag.tag_id))
    }
    channel_names = {c.id: name for name, c in channels.items()}
    assert code_tags == {c.id: channel_names[c.channel_id] for c in codes if c.kind != LiveCodeKind.GROUP}
    # and the group code's groups: two full, the last nearly full, so the console warns
    groups = db.scalars(select(CommunityGroup).order_by(CommunityGroup.id)).all()
    assert [(g.name, g.member_limit, g.member_count) for g in groups] == [
        (g.name, g.member_limit, g.member_count) for g in GROUPS
    ]
    group_code = next(c for c in codes if c.kind == LiveCodeKind.GROUP)
    assert group_capacity(db, group_code) == {
        "members": 883,
        "capacity": 900,
        "groups": 3,
        "groups_with_room": 1,
        "percent_full": 98,
        "warn": True,
        "all_full": False,
    }


def test_every_add_is_attributed_to_a_code_of_its_channel(built: None, db: Session) -> None:
    # given the demo's relationships, codes and routes
    channels = dict(db.execute(select(Channel.id, Channel.name)).all())
    codes = _codes(db)
    routed_staff = Counter((r.live_code_id, r.staff_id) for r in _routes(db).values())
    edges = db.scalars(select(Relationship)).all()
    # then each carries its channel, a live code of that channel whose routes include the staff
    # member, and a state that decodes to exactly that code, channel and variant
    assert len(edges) == 425
    for edge in edges:
        assert edge.channel_id is not None and channels[edge.channel_id] == edge.channel
        assert edge.live_code_id is not None and codes[edge.live_code_id].channel_id == edge.channel_id
        assert routed_staff[(edge.live_code_id, edge.staff_id)] == 1
        decoded = decode_state(edge.live_code_state)
        assert decoded is not None
        assert (decoded.live_code_id, decoded.channel_id, decoded.variant) == (
            edge.live_code_id,
            edge.channel_id,
            edge.variant,
        )
    assert Counter(edge.channel for edge in edges) == {
        "包裹卡": 120,
        "门店": 83,
        "公众号": 61,
        "小红书": 41,
        "抖音": 37,
        "老带新": 33,
        "短信": 27,
        "天猫旗舰店": 23,
    }
    # and the relationship.added events say the same
    added = {
        e.properties["relationship_id"]: (e.properties["channel_id"], e.properties["live_code_id"])
        for e in db.scalars(select(CustomerEvent).where(CustomerEvent.type == "relationship.added"))
    }
    assert added == {edge.id: (edge.channel_id, edge.live_code_id) for edge in edges}


def test_every_add_has_exactly_one_scan_shortly_before_it(built: None, db: Session) -> None:
    # given the adds and the scans that led to one
    edges = db.scalars(select(Relationship)).all()
    scans = db.scalars(
        select(LiveCodeScan)
        .join(LiveCode, LiveCode.id == LiveCodeScan.live_code_id)
        .where(LiveCodeScan.customer_id.is_not(None), LiveCode.kind != LiveCodeKind.GROUP)
    ).all()
    # then adds and claimed scans pair up one to one, on the same code, staff, state and variant
    key = {(s.customer_id, s.live_code_id, as_utc(s.added_at)): s for s in scans}
    assert len(key) == len(scans) == len(edges)
    for edge in edges:
        scan = key[(edge.customer_id, edge.live_code_id, as_utc(edge.added_at))]
        assert (scan.staff_id, scan.channel_id, scan.state, scan.variant) == (
            edge.staff_id,
            edge.channel_id,
            edge.live_code_state,
            edge.variant,
        )
        assert timedelta(0) <= as_utc(edge.added_at) - as_utc(scan.scanned_at) <= timedelta(minutes=10)
    # and scans that led nowhere make each channel convert at its own rate (25–60 %)
    per_channel = Counter(
        db.execute(
            select(Channel.name, func.count(LiveCodeScan.customer_id), func.count())
            .join(LiveCodeScan, LiveCodeScan.channel_id == Channel.id)
            .join(LiveCode, LiveCode.id == LiveCodeScan.live_code_id)
            .where(LiveCode.kind != LiveCodeKind.GROUP)
            .group_by(Channel.name)
        ).all()
    )
    rates = {name: adds / total for name, adds, total in per_channel}
    assert all(0.25 <= rate <= 0.61 for rate in rates.values()), rates
    # and scanners look like WeChat on phones, known by hashes only
    all_scans = db.scalars(select(LiveCodeScan)).all()
    assert len(all_scans) == 1118
    assert all("MicroMessenger" in (s.user_agent or "") for s in all_scans)
    assert all(len(s.visitor_id) == 32 and len(s.ip_hash or "") == 64 for s in all_scans)
    assert Counter(s.outcome for s in all_scans) == {"routed": 1083, "sticky": 35}


def test_routing_never_exceeds_caps_and_counts_every_routed_scan(built: None, db: Session) -> None:
    # given the routes, their day counters and the scans
    routes = _routes(db)
    codes = _codes(db)
    days = db.scalars(select(LiveCodeRouteDay)).all()
    scans = db.scalars(select(LiveCodeScan).order_by(LiveCodeScan.scanned_at)).all()
    # then no route took more than its cap on any brand-local day
    assert all(routes[d.route_id].daily_cap is None or d.taken <= routes[d.route_id].daily_cap for d in days)
    # and each counter is the number of scans routed there that day (sticky scans are not counted)
    routed = Counter((s.route_id, _day(s.scanned_at)) for s in scans if s.outcome in ("routed", "backup"))
    staff_routed = {k: n for k, n in routed.items() if routes[k[0]].staff_id is not None}
    assert {(d.route_id, d.day): d.taken for d in days} == staff_routed
    # and backups took scans only as backups; a sticky scan returns to the route of the visitor's last scan
    last_route: dict[tuple[int, str], int | None] = {}
    for scan in scans:
        route = routes[scan.route_id]
        if scan.outcome != "sticky":
            assert route.is_backup == (scan.outcome == "backup")
        if scan.outcome == "sticky":
            assert last_route[(scan.live_code_id, scan.visitor_id)] == scan.route_id
        last_route[(scan.live_code_id, scan.visitor_id)] = scan.route_id
        code = codes[scan.live_code_id]
        if code.schedule:  # working-hours routes inside the schedule, the night route outside
            working = is_working(code.schedule, as_utc(scan.scanned_at), TZ)
            expected = RouteShift.WORKING if working else RouteShift.OFF_HOURS
            assert route.shift in (expected, RouteShift.ALWAYS)
    # and each rotating code's counter is the number of scans it rotated
    rotated = Counter(s.live_code_id for s in scans if s.outcome != "sticky")
    for code in codes.values():
        if code.kind != LiveCodeKind.GROUP and code.rotation != RotationMode.RANDOM:
            assert code.rotation_counter == rotated[code.id]


def test_the_hook_test_is_finished_and_its_arms_add_up(built: None, db: Session, clock: FrozenClock) -> None:
    # given the experiment, its code and its exposures
    experiment = db.scalars(select(Experiment)).one()
    variants = db.scalars(select(ExperimentVariant).order_by(ExperimentVariant.position)).all()
    code = db.scalars(select(LiveCode).where(LiveCode.experiment_id == experiment.id)).one()
    exposures = db.scalars(select(ExperimentExposure)).all()
    # then it is a finished add-rate test of two hooks, planned from its baseline and effect
    started = datetime(2026, 10, 12, 10, tzinfo=TZ)
    assert (experiment.status, as_utc(experiment.started_at), as_utc(experiment.ended_at)) == (
        ExperimentStatus.FINISHED,
        started,
        started + timedelta(days=21),
    )
    assert (
        experiment.planned_users_per_arm
        == sample_size(baseline_rate=0.28, minimum_detectable_effect=0.18).users_per_arm
    )
    assert [(v.key, v.is_control, v.weight, v.content["hook"]) for v in variants] == [
        ("A", True, 50, "免费小样"),
        ("B", False, 50, "5元无门槛券"),
    ]
    assert code.name == "包裹卡 · 秋冬新品包裹"
    # and every exposure is in the arm the hash assigns, during the test
    for exposure in exposures:
        assert assign_variant(experiment.id, exposure.visitor_id, [("A", 50), ("B", 50)]) == exposure.variant_key
        assert started <= as_utc(exposure.exposed_at) < started + timedelta(days=21)
    # and the conversions are the test's adds: same customers, arms and times
    edges = db.scalars(select(Relationship).where(Relationship.variant.is_not(None))).all()
    converted = {(e.customer_id, e.variant_key, as_utc(e.converted_at)) for e in exposures if e.converted_at}
    assert converted == {(e.customer_id, e.variant, as_utc(e.added_at)) for e in edges}
    assert {e.live_code_id for e in edges} == {code.id}
    # and the scans of the code carry a variant exactly during the test, one exposure per visitor
    scans = db.scalars(select(LiveCodeScan).where(LiveCodeScan.live_code_id == code.id)).all()
    in_test = [s for s in scans if started <= as_utc(s.scanned_at) < started + timedelta(days=21)]
    assert all(s.variant is not None for s in in_test) and all(s.variant is None for s in scans if s not in in_test)
    assert sorted((s.visitor_id, s.variant) for s in in_test) == sorted(
        (e.visitor_id, e.variant_key) for e in exposures
    )
    # and the arms add up: A converts at 28 %, B at 33 %, with even traffic
    arms = {a.key: (a.users, a.conversions) for a in results_of(db, experiment).arms}
    assert arms == {"A": (35, 10), "B": (36, 12)}
    assert sum(users for users, _ in arms.values()) == len(exposures)
    assert sum(conversions for _, conversions in arms.values()) == len(edges)


def test_orders_follow_the_adds_and_the_lifecycle(built: None, db: Session, clock: FrozenClock) -> None:
    # given customers, their first adds and their orders
    workspace_id = db.scalars(select(Workspace.id).where(Workspace.slug == "default")).one()
    stages = dict(db.execute(select(Customer.id, Customer.lifecycle_stage)).all())
    first_add: dict[int, datetime] = {}
    last_gone: dict[int, datetime] = {}
    for edge in db.scalars(select(Relationship)):
        added = as_utc(edge.added_at)
        first_add[edge.customer_id] = min(first_add.get(edge.customer_id, added), added)
        gone = as_utc(edge.removed_at) if edge.removed_at else clock.now()
        last_gone[edge.customer_id] = max(last_gone.get(edge.customer_id, gone), gone)
    orders = db.scalars(select(Order)).all()
    # then every order belongs to a customer of the workspace, paid after their first add
    assert len(orders) == 305
    assert {o.workspace_id for o in orders} == {workspace_id}
    assert len({(o.platform, o.external_id) for o in orders}) == len(orders)
    per_customer = Counter(o.customer_id for o in orders)
    for order in orders:
        assert first_add[order.customer_id] <= as_utc(order.paid_at) <= clock.now()
        net = order.total_fen - order.refunded_fen
        expected = {OrderStatus.PAID: net == order.total_fen, OrderStatus.REFUNDED: net == 0}
        assert expected.get(order.status, 0 < net < order.total_fen)
    # and the stages agree: leads and new customers have not bought, 首单客 once, 复购客 twice or more,
    # sleeping customers not in the last 90 days, churned ones before they left
    for customer_id, stage in stages.items():
        n = per_customer[customer_id]
        assert {
            LifecycleStage.LEAD: n == 0,
            LifecycleStage.NEW: n == 0,
            LifecycleStage.ACTIVE: n == 1,
            LifecycleStage.LOYAL: n >= 2,
            LifecycleStage.DORMANT: n in (1, 2),
            LifecycleStage.CHURNED: n <= 1,
        }[LifecycleStage(stage)]
    for order in orders:
        stage = LifecycleStage(stages[order.customer_id])
        if stage is LifecycleStage.DORMANT:
            assert as_utc(order.paid_at) <= clock.now() - timedelta(days=90)
        if stage is LifecycleStage.CHURNED:
            assert as_utc(order.paid_at) <= last_gone[order.customer_id]
    assert Counter(o.status for o in orders) == {"paid": 273, "partially_refunded": 18, "refunded": 14}
    # and the timeline has each payment and refund with the same amounts and times
    events = db.scalars(select(CustomerEvent).where(CustomerEvent.type.like("order.%"))).all()
    paid = {
        (e.customer_id, e.properties["external_id"], e.properties["total_fen"], as_utc(e.occurred_at))
        for e in events
        if e.type == "order.paid"
    }
    assert paid == {(o.customer_id, o.external_id, o.total_fen, as_utc(o.paid_at)) for o in orders}
    refunds = {
        (e.properties["external_id"], e.properties["refunded_fen"]) for e in events if e.type == "order.refunded"
    }
    assert refunds == {(o.external_id, o.refunded_fen) for o in orders if o.refunded_fen}


def test_costs_and_orders_feed_the_channel_report(built: None, db: Session, clock: FrozenClock) -> None:
    # given the cost entries of the last 90 days
    today = clock.now().astimezone(TZ).date()
    channels = {c.name: c for c in db.scalars(select(Channel))}
    entries = db.scalars(select(ChannelCostEntry)).all()
    assert {e.spent_on for e in entries} <= {today - timedelta(days=n) for n in range(COST_DAYS)}
    assert all(e.amount_fen >= 0 for e in entries)
    by_channel = Counter(e.channel_id for e in entries)
    # then package cards, ads and SMS report every day what they shipped, showed or sent
    for name in ("包裹卡", "抖音", "短信"):
        assert by_channel[channels[name].id] == COST_DAYS
    assert all(e.exposures for e in entries if e.channel_id == channels["包裹卡"].id)
    assert by_channel[channels["天猫旗舰店"].id] == 0  # CPS: its cost is computed from GMV
    # when the operator reads the last 30 days
    workspace_id = db.scalars(select(Workspace.id).where(Workspace.slug == "default")).one()
    report = channel_report(
        db,
        actor=Actor.system(workspace_id),
        date_from=today - timedelta(days=29),
        date_to=today,
        clock=clock,
        attribution=Attribution.FIRST_TOUCH,
    )
    rows = {row.channel.name: row.totals for row in report.channels}
    # then each channel has scans, adds and cost; CPA and CPS costs follow their deals
    assert all(m.scans > 0 and m.adds > 0 and m.cost_fen > 0 for m in rows.values()), rows
    assert rows["小红书"].cpa_cost_fen == 800 * rows["小红书"].adds
    assert rows["天猫旗舰店"].entry_cost_fen == 0
    assert rows["包裹卡"].exposures is not None and rows["包裹卡"].exposures > rows["包裹卡"].scans
    # and the adds brought first orders and GMV, so ROI is meaningful
    assert report.totals.first_orders > 0 and report.totals.gmv_fen > 0
    assert report.totals.roi is not None and 1 < report.totals.roi < 50


def test_group_joins_fit_the_groups_and_are_on_the_timeline(built: None, db: Session) -> None:
    # given the group code's scans
    code = db.scalars(select(LiveCode).where(LiveCode.kind == LiveCodeKind.GROUP)).one()
    scans = db.scalars(select(LiveCodeScan).where(LiveCodeScan.live_code_id == code.id)).all()
    groups = {g.id: g for g in db.scalars(select(CommunityGroup))}
    joins = [s for s in scans if s.customer_id is not None]
    # then every scan was routed to a group, and no group got more joins than its members
    assert all(s.group_id in groups and s.outcome == "routed" for s in scans)
    assert all(n <= groups[g].member_count for g, n in Counter(s.group_id for s in joins).items())
    # and each join is a group.joined event of that customer
    events = db.scalars(select(CustomerEvent).where(CustomerEvent.type == "group.joined")).all()
    assert {(e.customer_id, e.properties["group_id"], as_utc(e.occurred_at)) for e in events} == {
        (s.customer_id, s.group_id, as_utc(s.added_at)) for s in joins
    }
    assert len(joins) == 11
