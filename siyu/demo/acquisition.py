"""The demo brand's acquisition side: channels with costs, live codes, scans, orders, one A/B test.

Runs after the customers are in. Relationships already carry their channel's name; this module
creates the channels and live codes, attributes every relationship (channel, live code, WeCom
`state`), writes a scan before every add plus the scans that led nowhere, daily cost entries,
orders after the adds, and one finished experiment of two hooks on a package-card code.
Everything is drawn from the seeded generator and inserted in bulk.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.experiments.assignment import assign_variant
from siyu.kit.clock import Clock
from siyu.kit.ids import sha256_hex
from siyu.livecodes.groups import create_group
from siyu.livecodes.schemas import GroupIn, LiveCodeIn, RouteIn, WelcomeIn
from siyu.livecodes.service import create_live_code
from siyu.livecodes.state import encode_state
from siyu.models import (
    Channel,
    ChannelCostEntry,
    ChannelType,
    CostModel,
    Customer,
    Experiment,
    ExperimentExposure,
    ExperimentMetric,
    ExperimentStatus,
    ExperimentVariant,
    LifecycleStage,
    LiveCode,
    LiveCodeKind,
    LiveCodeRoute,
    LiveCodeScan,
    Order,
    OrderStatus,
    Relationship,
    RotationMode,
    RouteShift,
    Staff,
    Store,
    Tag,
    TagGroup,
    User,
)


@dataclass(frozen=True)
class ChannelPlan:
    type: ChannelType
    hook: str
    cost_model: CostModel
    add_rate: float
    """Share of scans that end in an add."""
    daily_exposures: tuple[int, int] | None = None
    fen_per_exposure: int = 0
    cpa_fen: int | None = None
    cps_basis_points: int | None = None
    platform: str = "miniprogram"


PLANS: dict[str, ChannelPlan] = {
    "包裹卡": ChannelPlan(
        ChannelType.PACKAGE_CARD, "扫码领免费小样", CostModel.ENTRIES, 0.32, (150, 320), 60, platform="tmall"
    ),
    "门店": ChannelPlan(ChannelType.STORE, "加导购领穿搭建议", CostModel.ENTRIES, 0.58, platform="pos"),
    "小红书": ChannelPlan(ChannelType.KOL, "KOC 专属 5 元券", CostModel.CPA, 0.41, cpa_fen=800),
    "抖音": ChannelPlan(ChannelType.PAID_ADS, "新人红包", CostModel.ENTRIES, 0.22, (8000, 16000), 3, platform="douyin"),
    "短信": ChannelPlan(ChannelType.SMS, "老客回归礼", CostModel.ENTRIES, 0.27, (400, 900), 5),
    "公众号": ChannelPlan(ChannelType.OFFICIAL_ACCOUNT, "穿搭顾问一对一", CostModel.ENTRIES, 0.45),
    "老带新": ChannelPlan(ChannelType.REFERRAL, "好友同享 20 元券", CostModel.ENTRIES, 0.52),
    "天猫旗舰店": ChannelPlan(
        ChannelType.ECOMMERCE, "会员积分翻倍", CostModel.CPS, 0.36, cps_basis_points=500, platform="tmall"
    ),
}
COST_DAYS = 90
EXPERIMENT_START_DAYS_AGO = 63
EXPERIMENT_DAYS = 21
HOOK_A, HOOK_B = "扫码领免费小样", "扫码领 5 元无门槛券"
ARM_RATES = {"A": 0.24, "B": 0.33}
USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.49(0x18003137) NetType/WIFI Language/zh_CN",
    "Mozilla/5.0 (Linux; Android 14; V2309A Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/122.0.6261.120 Mobile Safari/537.36 XWEB/1220067 MMWEBSDK/20240404 MicroMessenger/8.0.49",
    "Mozilla/5.0 (Linux; Android 13; 23049RAD8C Build/TKQ1.221114.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 MicroMessenger/8.0.47",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.44(0x18002c2d) NetType/4G Language/zh_CN",
)
WELCOME = "{{ name }}您好，我是栖梧的{{ staff_name }}～{{ hook }}已为您准备好，回复“1”即可领取哦"


@dataclass
class Built:
    """What the rest of the build (and its tests) need to know."""

    channels: dict[str, int]
    codes: dict[str, int]
    experiment_id: int


def build_acquisition(session: Session, *, workspace_id: int, clock: Clock, rng: random.Random, tz: ZoneInfo) -> Built:
    """Channels, live codes, groups, costs, attributed relationships, scans, orders and an A/B test."""
    now = clock.now()
    actor = Actor.system(workspace_id, label="siyu demo")
    owner = session.scalar(select(User.id).where(User.email.like("operator@%")))
    channels = _channels(session, workspace_id, now, owner)
    staff = list(session.scalars(select(Staff).where(Staff.workspace_id == workspace_id).order_by(Staff.id)))
    tags = _source_tags(session, workspace_id)
    codes = _live_codes(session, actor, channels, staff, tags, clock)
    experiment = _experiment(session, workspace_id, now, codes["包裹卡 A/B"])
    _costs(session, workspace_id, channels, now, tz, rng)
    scans, exposures = _attribute(session, workspace_id, channels, codes, staff, experiment, now, rng)
    # Core inserts on the tables: the ORM's bulk path costs several times more per row.
    session.execute(insert(_table(LiveCodeScan)), scans)
    if exposures:
        session.execute(insert(_table(ExperimentExposure)), exposures)
    _orders(session, workspace_id, now, rng)
    session.flush()
    return Built(channels={n: c.id for n, c in channels.items()}, codes=codes, experiment_id=experiment.id)


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


def _channels(session: Session, workspace_id: int, now: datetime, owner: int | None) -> dict[str, Channel]:
    channels = {
        name: Channel(
            workspace_id=workspace_id,
            name=name,
            type=plan.type,
            owner_user_id=owner,
            hook=plan.hook,
            starts_on=(now - timedelta(days=400)).date(),
            cost_model=plan.cost_model,
            cpa_fen=plan.cpa_fen,
            cps_basis_points=plan.cps_basis_points,
            created_at=now - timedelta(days=400),
        )
        for name, plan in PLANS.items()
    }
    session.add_all(channels.values())
    session.flush()
    return channels


def _source_tags(session: Session, workspace_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Tag.name, Tag.id)
        .join(TagGroup, TagGroup.id == Tag.group_id)
        .where(Tag.workspace_id == workspace_id, TagGroup.name == "来源")
    ).all()
    return {name: tag_id for name, tag_id in rows}


def _live_codes(
    session: Session,
    actor: Actor,
    channels: dict[str, Channel],
    staff: list[Staff],
    tags: dict[str, int],
    clock: Clock,
) -> dict[str, int]:
    """One code per online channel (over the staff its customers were added by), store codes, a group code."""
    codes: dict[str, int] = {}
    online = [s for s in staff if s.store_id is None]
    stores = list(session.scalars(select(Store).where(Store.workspace_id == actor.workspace_id).order_by(Store.id)))
    adders = defaultdict(set)
    for channel_name, staff_id in session.execute(
        select(Relationship.channel, Relationship.staff_id).where(Relationship.workspace_id == actor.workspace_id)
    ):
        adders[channel_name].add(staff_id)
    for name, channel in channels.items():
        if name == "门店":
            continue
        # The customers of a channel were added by these staff: every one is a route of its code.
        routed = [s for s in staff if s.id in adders[name]] or online
        routes = [
            RouteIn(staff_id=s.id, daily_cap=120 if s.store_id is None else None, weight=2 if s.store_id is None else 1)
            for s in routed
        ]
        if online[-1] not in routed:
            routes.append(RouteIn(staff_id=online[-1].id, is_backup=True))
        schedule = [{"days": [0, 1, 2, 3, 4, 5, 6], "start": "09:00", "end": "22:00"}] if name == "公众号" else []
        if schedule:  # the official account's code answers at night with one adviser only
            routes = [r.model_copy(update={"shift": RouteShift.WORKING}) for r in routes]
            if online[0] not in routed:
                routes.append(RouteIn(staff_id=online[0].id, shift=RouteShift.OFF_HOURS))
        data = LiveCodeIn(
            name=f"{name}活码",
            kind=LiveCodeKind.STAFF,
            channel_id=channel.id,
            rotation=RotationMode.WEIGHTED,
            schedule=schedule,
            welcome=WelcomeIn(text=WELCOME),
            tag_ids=[tags[name]] if name in tags else [],
            routes=routes,
        )
        codes[name] = create_live_code(session, actor=actor, data=data, clock=clock).id
    package = channels["包裹卡"]
    ab = LiveCodeIn(
        name="包裹卡 A/B 钩子测试",
        channel_id=package.id,
        welcome=WelcomeIn(text=WELCOME),
        tag_ids=[tags["包裹卡"]] if "包裹卡" in tags else [],
        routes=[RouteIn(staff_id=s.id) for s in online[:3]],
    )
    codes["包裹卡 A/B"] = create_live_code(session, actor=actor, data=ab, clock=clock).id
    for store in stores:
        store_staff = [s for s in staff if s.store_id == store.id]
        data = LiveCodeIn(
            name=f"{store.name} 门店活码",
            kind=LiveCodeKind.STORE,
            store_id=store.id,
            channel_id=channels["门店"].id,
            welcome=WelcomeIn(text="{{ name }}您好，欢迎光临{{ store_name }}，我是导购{{ staff_name }}～"),
            tag_ids=[tags["门店"]] if "门店" in tags else [],
            routes=[RouteIn(staff_id=s.id, daily_cap=60) for s in store_staff],
        )
        codes[f"store:{store.id}"] = create_live_code(session, actor=actor, data=data, clock=clock).id
    groups = [
        create_group(
            session,
            actor=actor,
            data=GroupIn(
                name=name, member_limit=200, member_count=count, join_url=f"https://work.weixin.qq.com/gm/qiwu{n}"
            ),
            clock=clock,
        )
        for n, (name, count) in enumerate((("栖梧福利 1 群", 200), ("栖梧福利 2 群", 196), ("栖梧福利 3 群", 41)), 1)
    ]
    group_code = LiveCodeIn(
        name="福利群活码",
        kind=LiveCodeKind.GROUP,
        channel_id=channels["公众号"].id,
        routes=[RouteIn(group_id=g.id) for g in groups],
        group_warn_percent=85,
    )
    codes["福利群"] = create_live_code(session, actor=actor, data=group_code, clock=clock).id
    return codes


def _experiment(session: Session, workspace_id: int, now: datetime, code_id: int) -> Experiment:
    start = now - timedelta(days=EXPERIMENT_START_DAYS_AGO)
    experiment = Experiment(
        workspace_id=workspace_id,
        name="包裹卡钩子：免费小样 vs 5 元券",
        hypothesis="5 元无门槛券比免费小样更能让收到包裹的客户扫码添加导购",
        status=ExperimentStatus.FINISHED,
        primary_metric=ExperimentMetric.ADD_RATE,
        baseline_rate=0.25,
        minimum_detectable_effect=0.3,
        planned_users_per_arm=None,
        started_at=start,
        ended_at=start + timedelta(days=EXPERIMENT_DAYS),
        created_at=start - timedelta(days=2),
    )
    session.add(experiment)
    session.flush()
    for position, (key, name, hook) in enumerate((("A", "免费小样", HOOK_A), ("B", "5 元无门槛券", HOOK_B))):
        session.add(
            ExperimentVariant(
                workspace_id=workspace_id,
                experiment_id=experiment.id,
                key=key,
                name=name,
                weight=50,
                is_control=position == 0,
                position=position,
                content={"hook": hook, "welcome_text": f"{{{{ name }}}}您好～{hook}已为您准备好"},
            )
        )
    session.execute(update(LiveCode).where(LiveCode.id == code_id).values(experiment_id=experiment.id))
    session.flush()
    return experiment


def _costs(
    session: Session, workspace_id: int, channels: dict[str, Channel], now: datetime, tz: ZoneInfo, rng: random.Random
) -> None:
    today = now.astimezone(tz).date()
    rows: list[dict[str, Any]] = []
    for name, plan in PLANS.items():
        channel = channels[name]
        for back in range(COST_DAYS, 0, -1):
            day = today - timedelta(days=back)
            entry: dict[str, Any] | None = None
            if plan.daily_exposures is not None:
                exposures = rng.randint(*plan.daily_exposures)
                entry = {"amount_fen": exposures * plan.fen_per_exposure, "exposures": exposures, "note": None}
            elif name == "门店" and day.day == 1:
                entry = {"amount_fen": 80_000, "exposures": None, "note": "门店海报与台卡"}
            elif name == "老带新" and day.weekday() == 0:
                entry = {"amount_fen": rng.randint(30_000, 60_000), "exposures": None, "note": "老带新奖励券核销"}
            elif name == "公众号" and day.weekday() == 2:
                entry = {"amount_fen": 150_000, "exposures": None, "note": "推文排版与投放"}
            elif name == "小红书" and day.day in (5, 20):
                entry = {"amount_fen": 300_000, "exposures": rng.randint(20_000, 60_000), "note": "KOC 合作费"}
            if entry is not None:
                rows.append(
                    {
                        "workspace_id": workspace_id,
                        "channel_id": channel.id,
                        "spent_on": day,
                        "created_by": "siyu demo",
                        "created_at": now,
                    }
                    | entry
                )
    session.execute(insert(_table(ChannelCostEntry)), rows)


def _visitor(rng: random.Random) -> str:
    return sha256_hex(f"demo-visitor-{rng.random()}")[:32]


def _attribute(
    session: Session,
    workspace_id: int,
    channels: dict[str, Channel],
    codes: dict[str, int],
    staff: list[Staff],
    experiment: Experiment,
    now: datetime,
    rng: random.Random,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Attribute every relationship to its channel's code; return the scans and exposures to insert."""
    store_of = {s.id: s.store_id for s in staff}
    routes: dict[tuple[int, int], int] = {}
    for route_id, code_id, staff_id in session.execute(
        select(LiveCodeRoute.id, LiveCodeRoute.live_code_id, LiveCodeRoute.staff_id).where(
            LiveCodeRoute.workspace_id == workspace_id
        )
    ):
        if staff_id is not None:
            routes[(code_id, staff_id)] = route_id
    edges = session.execute(
        select(
            Relationship.id,
            Relationship.customer_id,
            Relationship.staff_id,
            Relationship.added_at,
            Relationship.channel,
        )
        .where(Relationship.workspace_id == workspace_id)
        .order_by(Relationship.id)
    ).all()
    window_start = now - timedelta(days=EXPERIMENT_START_DAYS_AGO)
    window_end = window_start + timedelta(days=EXPERIMENT_DAYS)
    ab_code = codes["包裹卡 A/B"]
    ab_staff = {staff_id for (code_id, staff_id) in routes if code_id == ab_code}
    in_window = [e[0] for e in edges if e[4] == "包裹卡" and window_start <= e[3] < window_end and e[2] in ab_staff]
    converters, others = _plan_experiment(in_window, experiment.id, rng)
    scans: list[dict[str, Any]] = []
    exposures: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for edge_id, customer_id, staff_id, added_at, channel_name in edges:
        channel = channels.get(channel_name or "")
        if channel is None or channel_name is None:
            continue
        found = (
            codes.get(f"store:{store_of[staff_id]}")
            if channel_name == "门店" and store_of.get(staff_id)
            else codes.get(channel_name)
        )
        if found is None:  # a store customer the online team added by phone: the channel, but no code
            updates.append(
                {
                    "edge_id": edge_id,
                    "channel_id": channel.id,
                    "live_code_id": None,
                    "live_code_state": None,
                    "variant": None,
                }
            )
            continue
        code_id = found
        variant: str | None = None
        visitor = _visitor(rng)
        if edge_id in converters:
            code_id = ab_code
            visitor, variant = converters[edge_id]
        state = encode_state(code_id, channel.id, variant)
        updates.append(
            {
                "edge_id": edge_id,
                "channel_id": channel.id,
                "live_code_id": code_id,
                "live_code_state": state,
                "variant": variant,
            }
        )
        scanned_at = added_at - timedelta(seconds=rng.randint(20, 900))
        scans.append(
            _scan(
                workspace_id,
                code_id,
                routes.get((code_id, staff_id)),
                staff_id,
                store_of.get(staff_id),
                channel.id,
                variant,
                state,
                visitor,
                scanned_at,
                rng,
                customer_id,
                added_at,
            )
        )
        if variant is not None:
            exposures.append(
                {
                    "workspace_id": workspace_id,
                    "experiment_id": experiment.id,
                    "variant_key": variant,
                    "visitor_id": visitor,
                    "customer_id": customer_id,
                    "exposed_at": scanned_at,
                    "converted_at": added_at,
                }
            )
    if updates:
        edges_table = _table(Relationship)
        session.execute(
            update(edges_table)
            .where(edges_table.c.id == bindparam("edge_id"))
            .values(
                channel_id=bindparam("channel_id"),
                live_code_id=bindparam("live_code_id"),
                live_code_state=bindparam("live_code_state"),
                variant=bindparam("variant"),
            ),
            updates,
        )
    scans += _unconverted_scans(workspace_id, channels, codes, routes, scans, now, rng)
    exposures += _unconverted_exposures(
        workspace_id, experiment, ab_code, channels["包裹卡"].id, routes, others, window_start, scans, rng
    )
    return scans, exposures


def _scan(
    workspace_id: int,
    code_id: int,
    route_id: int | None,
    staff_id: int | None,
    store_id: int | None,
    channel_id: int,
    variant: str | None,
    state: str,
    visitor: str,
    scanned_at: datetime,
    rng: random.Random,
    customer_id: int | None,
    added_at: datetime | None,
) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "live_code_id": code_id,
        "route_id": route_id,
        "staff_id": staff_id,
        "group_id": None,
        "store_id": store_id,
        "channel_id": channel_id,
        "variant": variant,
        "state": state,
        "visitor_id": visitor,
        "user_agent": rng.choice(USER_AGENTS),
        "ip_hash": sha256_hex(f"demo-ip-{rng.randrange(10**9)}"),
        "outcome": "routed" if rng.random() < 0.93 else "sticky",
        "scanned_at": scanned_at,
        "customer_id": customer_id,
        "added_at": added_at,
    }


def _unconverted_scans(
    workspace_id: int,
    channels: dict[str, Channel],
    codes: dict[str, int],
    routes: dict[tuple[int, int], int],
    converted: list[dict[str, Any]],
    now: datetime,
    rng: random.Random,
) -> list[dict[str, Any]]:
    """Scans that led to no add: per code, enough to give its channel's add rate."""
    by_code: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for scan in converted:
        if scan["variant"] is None:
            by_code[scan["live_code_id"]].append(scan)
    rate_of = {channel.id: PLANS[name].add_rate for name, channel in channels.items()}
    extra: list[dict[str, Any]] = []
    for code_id, adds in by_code.items():
        rate = rate_of[adds[0]["channel_id"]]
        for _ in range(round(len(adds) * (1 - rate) / rate)):
            like = rng.choice(adds)  # same code, staff and season as a real add
            at = min(now, like["scanned_at"] + timedelta(hours=rng.uniform(-72, 72)))
            extra.append(
                _scan(
                    workspace_id,
                    code_id,
                    like["route_id"],
                    like["staff_id"],
                    like["store_id"],
                    like["channel_id"],
                    None,
                    like["state"],
                    _visitor(rng),
                    at,
                    rng,
                    None,
                    None,
                )
            )
    return extra


def _plan_experiment(
    edge_ids: list[int], experiment_id: int, rng: random.Random
) -> tuple[dict[int, tuple[str, str]], list[tuple[str, str]]]:
    """Visitors of the A/B code: (visitor, arm) for the adds among `edge_ids`, and for those who did not add.

    Visitors are drawn and assigned by the real hash, so the arms are as even as the assignment
    makes them; each arm then converts at its planned rate, using as many of the window's adds as
    fit (the rest stay with the regular package-card code).
    """
    mean_rate = sum(ARM_RATES.values()) / len(ARM_RATES)
    visitors = [_visitor(rng) for _ in range(int(len(edge_ids) / mean_rate))]
    while True:
        arms: dict[str, list[str]] = {arm: [] for arm in ARM_RATES}
        for visitor in visitors:
            arms[assign_variant(experiment_id, visitor, [("A", 50), ("B", 50)])].append(visitor)
        converting = {arm: round(ARM_RATES[arm] * len(members)) for arm, members in arms.items()}
        if sum(converting.values()) <= len(edge_ids):
            break
        visitors.pop()
    shuffled = list(edge_ids)
    rng.shuffle(shuffled)
    converters: dict[int, tuple[str, str]] = {}
    others: list[tuple[str, str]] = []
    for arm, members in arms.items():
        for n, visitor in enumerate(members):
            if n < converting[arm]:
                converters[shuffled.pop()] = (visitor, arm)
            else:
                others.append((visitor, arm))
    return converters, others


def _unconverted_exposures(
    workspace_id: int,
    experiment: Experiment,
    code_id: int,
    channel_id: int,
    routes: dict[tuple[int, int], int],
    others: list[tuple[str, str]],
    window_start: datetime,
    scans: list[dict[str, Any]],
    rng: random.Random,
) -> list[dict[str, Any]]:
    """Scans and exposures of the A/B code's visitors who did not add."""
    route_ids = [route_id for (code, _staff), route_id in routes.items() if code == code_id]
    staff_of = {route_id: staff for (code, staff), route_id in routes.items() if code == code_id}
    exposures = []
    for visitor, arm in others:
        at = window_start + timedelta(seconds=rng.randrange(EXPERIMENT_DAYS * 86_400))
        route_id = rng.choice(route_ids)
        state = encode_state(code_id, channel_id, arm)
        scans.append(
            _scan(
                workspace_id,
                code_id,
                route_id,
                staff_of[route_id],
                None,
                channel_id,
                arm,
                state,
                visitor,
                at,
                rng,
                None,
                None,
            )
        )
        exposures.append(
            {
                "workspace_id": workspace_id,
                "experiment_id": experiment.id,
                "variant_key": arm,
                "visitor_id": visitor,
                "customer_id": None,
                "exposed_at": at,
                "converted_at": None,
            }
        )
    return exposures


ORDERS_BY_STAGE = {
    LifecycleStage.NEW: (0.15, 1, 1),
    LifecycleStage.ACTIVE: (1.0, 1, 3),
    LifecycleStage.LOYAL: (1.0, 3, 7),
    LifecycleStage.DORMANT: (0.7, 1, 2),
    LifecycleStage.CHURNED: (0.3, 1, 1),
}
"""(share of customers with orders, fewest, most)."""
PLATFORM_OF = {name: plan.platform for name, plan in PLANS.items()}


def _orders(session: Session, workspace_id: int, now: datetime, rng: random.Random) -> None:
    """Orders after each customer's first add: first orders for many, repurchases for active and loyal."""
    first_add: dict[int, datetime] = {}
    for customer_id, added_at in session.execute(
        select(Relationship.customer_id, Relationship.added_at).where(Relationship.workspace_id == workspace_id)
    ):
        if customer_id not in first_add or added_at < first_add[customer_id]:
            first_add[customer_id] = added_at
    rows: list[dict[str, Any]] = []
    serial = 0
    for customer_id, stage, first_channel in session.execute(
        select(Customer.id, Customer.lifecycle_stage, Customer.first_channel)
        .where(Customer.workspace_id == workspace_id)
        .order_by(Customer.id)
    ):
        added = first_add.get(customer_id)
        spec = ORDERS_BY_STAGE.get(LifecycleStage(stage)) if stage else None
        if added is None or spec is None or rng.random() >= spec[0]:
            continue
        at = added + timedelta(hours=rng.uniform(2, 24 * 12))
        for _ in range(rng.randint(spec[1], spec[2])):
            if at >= now:
                break
            serial += 1
            total = rng.choice((15_900, 19_900, 25_900, 29_900, 35_900, 45_900, 59_900, 89_900)) * rng.randint(1, 2)
            refund = rng.random()
            refunded = total if refund < 0.04 else (total // 2 if refund < 0.1 else 0)
            status = (
                OrderStatus.REFUNDED
                if refunded == total
                else (OrderStatus.PARTIALLY_REFUNDED if refunded else OrderStatus.PAID)
            )
            platform = PLATFORM_OF.get(first_channel or "", "miniprogram")
            rows.append(
                {
                    "workspace_id": workspace_id,
                    "customer_id": customer_id,
                    "platform": platform,
                    "external_id": f"QW{serial:08d}",
                    "status": status,
                    "total_fen": total,
                    "refunded_fen": refunded,
                    "paid_at": at,
                    "created_at": at,
                }
            )
            at = at + timedelta(days=rng.uniform(20, 75))
    if rows:
        session.execute(insert(_table(Order)), rows)
