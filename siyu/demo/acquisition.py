"""The demo brand's acquisition side in the database: channels, live codes, groups, the hook test, costs.

`setup` runs before the customers: it writes the channels (ORM rows), the live codes and groups
through the live code service (so they are valid, each created when its channel started), the
finished A/B test (rows and the audit trail of when it was created, started and finished), and
returns the `Funnel` every add goes through. `finish` runs after the
customers and writes what the funnel counted: exposures of the test, the route-day counters
caps are enforced on, the rotation counters, and the daily cost entries of the last 90 days.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from statistics import NormalDist
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor
from siyu.community.groups.schemas import GroupCreate
from siyu.community.groups.service import create_group
from siyu.demo import channels as plan
from siyu.demo.bulk import insert_rows
from siyu.demo.catalog import CHANNELS, DEMO_DOMAIN
from siyu.demo.channels import CHANNEL_SETUP, GROUPS, ONLINE_CODES, TRIAL, CodeSetup
from siyu.demo.costs import cost_entries
from siyu.demo.funnel import Code, Funnel, Group, Route, Trial
from siyu.kit.clock import FrozenClock
from siyu.livecodes.schemas import LiveCodeIn, RouteIn, WelcomeIn
from siyu.livecodes.service import create_live_code, routes_of
from siyu.models import (
    Channel,
    ChannelCostEntry,
    Experiment,
    ExperimentExposure,
    ExperimentMetric,
    ExperimentStatus,
    ExperimentVariant,
    LiveCode,
    LiveCodeKind,
    LiveCodeRouteDay,
    Region,
    RotationMode,
    Staff,
    Store,
    User,
)

OPERATOR_EMAIL = f"operator@{DEMO_DOMAIN}"
ALPHA, POWER = 0.05, 0.8


@dataclass(frozen=True)
class Acquisition:
    """What `finish` needs after the customers are in."""

    funnel: Funnel
    channel_ids: dict[str, int]
    experiment_id: int
    store_count: int


@dataclass(frozen=True)
class _Person:
    id: int
    store_id: int | None


class _Setup:
    """The context of `setup`: workspace, brand calendar, staff and stores."""

    def __init__(self, session: Session, workspace_id: int, now: datetime, tz: ZoneInfo) -> None:
        self.session, self.workspace_id, self.now, self.tz = session, workspace_id, now, tz
        self.actor = Actor.system(workspace_id, label="siyu demo")
        self.today = now.astimezone(tz).date()
        rows = session.execute(
            select(Staff.id, Staff.wecom_user_id, Staff.store_id).where(Staff.workspace_id == workspace_id)
        )
        self.staff = {uid: _Person(staff_id, store_id) for staff_id, uid, store_id in rows if uid}
        self.store_of = {p.id: p.store_id for p in self.staff.values()}
        self.stores = session.execute(
            select(Store.id, Store.name, Store.city, Region.name)
            .join(Region, Region.id == Store.region_id)
            .where(Store.workspace_id == workspace_id)
            .order_by(Store.id)
        ).all()

    def local(self, days_ago: int, hour: int = 10) -> datetime:
        """`hour` o'clock (brand time) `days_ago` days before today, as UTC."""
        day = self.today - timedelta(days=days_ago)
        return datetime.combine(day, time(hour), tzinfo=self.tz).astimezone(self.now.tzinfo)

    def code(self, data: LiveCodeIn, at: datetime, channel: str, *, tags: tuple[int, ...] = ()) -> Code:
        """Create a live code through the service as of `at`; returns it as the funnel routes it."""
        row = create_live_code(self.session, actor=self.actor, data=data, clock=FrozenClock(at))
        routes = [
            Route(
                r.id,
                r.staff_id,
                r.group_id,
                self.store_of.get(r.staff_id) if r.staff_id else None,
                r.weight,
                r.daily_cap,
                r.shift,
                r.is_backup,
            )
            for r in routes_of(self.session, row.id)
        ]
        return Code(
            row.id,
            channel,
            row.channel_id,
            at,
            routes,
            row.rotation,
            list(row.schedule),
            CHANNEL_SETUP[channel].add_rate,
            tags,
            row.store_id,
        )


def setup(
    session: Session, *, workspace_id: int, now: datetime, tz: ZoneInfo, rng: random.Random, source_tags: dict[str, int]
) -> Acquisition:
    """Channels, live codes, groups and the finished hook test; the funnel the customers' adds go through.

    `source_tags` maps channel names to the 来源 tags their codes apply on add.
    """
    ctx = _Setup(session, workspace_id, now, tz)
    owner = session.scalar(select(User.id).where(User.email == OPERATOR_EMAIL))
    opened = {name: ctx.local(spec.started_days_ago, hour=0) for name, spec in CHANNEL_SETUP.items()}
    channels = {
        name: Channel(
            workspace_id=workspace_id,
            name=name,
            type=spec.type,
            owner_user_id=owner,
            hook=spec.hook,
            starts_on=opened[name].astimezone(tz).date(),
            cost_model=spec.cost_model,
            cpa_fen=spec.cpa_fen,
            cps_basis_points=spec.cps_basis_points,
            created_at=opened[name] - timedelta(days=1),
        )
        for name, spec in CHANNEL_SETUP.items()
    }
    session.add_all(channels.values())
    session.flush()
    experiment_id, trial_start, trial_end = _experiment(ctx)
    online: dict[str, Code] = {}
    regional: dict[str, Code] = {}
    trial_code: Code | None = None
    for spec in ONLINE_CODES:
        channel = channels[spec.channel]
        tags = (source_tags[spec.channel],) if spec.channel in source_tags else ()
        data = _code_input(ctx, spec, channel, tags)
        code = ctx.code(data, opened[spec.channel], spec.channel, tags=tags)
        (regional if spec.kind == LiveCodeKind.STORE else online)[spec.channel] = code
        if spec.key == TRIAL.code_key:
            trial_code = code
    assert trial_code is not None
    # The test ran on this code; finished, it now shows the channel's own hook again.
    session.get_one(LiveCode, trial_code.id).experiment_id = experiment_id
    stores = _store_codes(ctx, channels["门店"], opened["门店"], source_tags.get("门店"))
    group_code, groups = _group_code(ctx, channels[plan.GROUP_CODE_CHANNEL])
    session.flush()
    stores_by_city: dict[str, list[int]] = {}
    stores_by_region: dict[str, list[int]] = {}
    for store_id, _, city, region in ctx.stores:
        stores_by_city.setdefault(city or "", []).append(store_id)
        stores_by_region.setdefault(region, []).append(store_id)
    trial = Trial(
        experiment_id,
        trial_code.id,
        trial_start,
        trial_end,
        tuple((key, rate, 50) for key, _, rate, _ in TRIAL.arms),
    )
    funnel = Funnel(
        rng,
        workspace_id=workspace_id,
        now=now,
        tz=tz,
        online=online,
        regional=regional,
        stores=stores,
        stores_by_city=stores_by_city,
        stores_by_region=stores_by_region,
        online_share={c.name: c.online for c in CHANNELS},
        opened=opened,
        trial=trial,
        trial_boost=TRIAL.boost,
        group_code=group_code,
        groups=groups,
        tally_since=ctx.today - timedelta(days=plan.COST_DAYS - 1),
    )
    return Acquisition(funnel, {name: c.id for name, c in channels.items()}, experiment_id, len(ctx.stores))


def _code_input(ctx: _Setup, spec: CodeSetup, channel: Channel, tags: tuple[int, ...]) -> LiveCodeIn:
    if spec.routes is None:  # every store's 导购: the scanner picks the store nearest them
        routes = [RouteIn(staff_id=p.id) for p in sorted(ctx.staff.values(), key=lambda p: p.id) if p.store_id]
    else:
        routes = [
            RouteIn(staff_id=ctx.staff[r.staff].id, weight=r.weight, daily_cap=r.cap, shift=r.shift, is_backup=r.backup)
            for r in spec.routes
        ]
    return LiveCodeIn(
        name=spec.name,
        kind=spec.kind,
        channel_id=channel.id,
        rotation=spec.rotation,
        schedule=list(spec.schedule),
        welcome=WelcomeIn(text=spec.welcome),
        tag_ids=list(tags),
        routes=routes,
    )


def _store_codes(ctx: _Setup, channel: Channel, at: datetime, tag: int | None) -> dict[int, Code]:
    """One code per shop over its 导购, for posters and counters."""
    codes = {}
    tags = (tag,) if tag is not None else ()
    for store_id, name, _, _ in ctx.stores:
        staff = sorted(p.id for p in ctx.staff.values() if p.store_id == store_id)
        data = LiveCodeIn(
            name=plan.STORE_CODE_NAME.format(store=name),
            kind=LiveCodeKind.STORE,
            channel_id=channel.id,
            store_id=store_id,
            welcome=WelcomeIn(text=plan.STORE_WELCOME),
            tag_ids=list(tags),
            routes=[RouteIn(staff_id=staff_id) for staff_id in staff],
        )
        codes[store_id] = ctx.code(data, at, channel.name, tags=tags)
    return codes


def _group_code(ctx: _Setup, channel: Channel) -> tuple[Code, list[Group]]:
    """The welfare groups, two full and the last nearly so, behind one group code.

    Created through the community groups service, then their seats set from the plan: the people in
    these chats are not the demo's customers (its joins are timeline events), so there are no stays
    to seat them through `join_group`; the counts are seed data, like the experiment's rows. No owner
    is named: the service would seat them (an open stay the community demo's exact counts don't have)."""
    at = ctx.local(plan.GROUP_CODE_STARTED_DAYS_AGO)
    groups = []
    for n, g in enumerate(GROUPS, 1):
        group = create_group(
            ctx.session,
            actor=ctx.actor,
            data=GroupCreate(
                name=g.name,
                member_limit=g.member_limit,
                wecom_chat_id=f"wrQiwuFuli{n:02d}",
                join_url=f"https://work.weixin.qq.com/gm/qiwu-fuli-{n}",
            ),
            clock=FrozenClock(at),
        )
        group.member_count = g.member_count
        groups.append(group)
    ctx.session.flush()
    data = LiveCodeIn(
        name=plan.GROUP_CODE_NAME,
        kind=LiveCodeKind.GROUP,
        channel_id=channel.id,
        welcome=WelcomeIn(text=plan.GROUP_WELCOME),
        routes=[RouteIn(group_id=g.id) for g in groups],
    )
    code = ctx.code(data, at, channel.name)
    code.add_rate = 1 / (1 + plan.GROUP_SCANS_PER_JOIN)  # joins per scan of the group code
    far = ctx.now + timedelta(days=36_500)
    spans = [ctx.local(g.until_days_ago) if g.until_days_ago else far for g in GROUPS]
    by_group = {r.group_id: r for r in code.routes}
    return code, [
        Group(by_group[g.id], s.member_count, until) for g, s, until in zip(groups, GROUPS, spans, strict=True)
    ]


def _experiment(ctx: _Setup) -> tuple[int, datetime, datetime]:
    """The hook test as the operator ran it: created two days before it started, finished three weeks later.

    Written as rows (the experiments service would load SciPy, a second and a half of the build);
    the audit trail is what the service leaves for create, start and finish.
    """
    start = ctx.local(TRIAL.started_days_ago)
    end = start + timedelta(days=TRIAL.days)
    experiment = Experiment(
        workspace_id=ctx.workspace_id,
        name=TRIAL.name,
        hypothesis=TRIAL.hypothesis,
        status=ExperimentStatus.FINISHED,
        primary_metric=ExperimentMetric.ADD_RATE,
        baseline_rate=TRIAL.baseline_rate,
        minimum_detectable_effect=TRIAL.minimum_detectable_effect,
        alpha=ALPHA,
        power=POWER,
        planned_users_per_arm=users_per_arm(TRIAL.baseline_rate, TRIAL.minimum_detectable_effect),
        started_at=start,
        ended_at=end,
        created_at=start - timedelta(days=2),
    )
    ctx.session.add(experiment)
    ctx.session.flush()
    variants = [
        ExperimentVariant(
            workspace_id=ctx.workspace_id,
            experiment_id=experiment.id,
            key=key,
            name=name,
            weight=50,
            is_control=position == 0,
            position=position,
            content=content,
        )
        for position, (key, name, _, content) in enumerate(TRIAL.arms)
    ]
    ctx.session.add_all(variants)
    ctx.session.flush()
    after = {
        "name": experiment.name,
        "status": str(ExperimentStatus.DRAFT),
        "primary_metric": str(experiment.primary_metric),
        "planned_users_per_arm": experiment.planned_users_per_arm,
        "variants": [{"key": v.key, "name": v.name, "weight": v.weight, "is_control": v.is_control} for v in variants],
    }
    for action, at, before, state in (
        ("create", experiment.created_at, None, after),
        ("start", start, {"status": "draft"}, {"status": "running"}),
        ("finish", end, {"status": "running"}, {"status": "finished"}),
    ):
        record(
            ctx.session,
            ctx.actor,
            action=action,
            entity_type="experiment",
            entity_id=experiment.id,
            before=before,
            after=state,
            clock=FrozenClock(at),
        )
    return experiment.id, start, end


def users_per_arm(baseline: float, relative_effect: float, *, alpha: float = ALPHA, power: float = POWER) -> int:
    """Users per arm of a two-sided two-proportion z-test, as `siyu.experiments.stats.sample_size` plans it."""
    normal = NormalDist()
    p1, p2 = baseline, baseline * (1 + relative_effect)
    mean = (p1 + p2) / 2
    z_alpha, z_beta = normal.inv_cdf(1 - alpha / 2), normal.inv_cdf(power)
    root = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_beta * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return max(1, math.ceil(root**2 / (p2 - p1) ** 2 - 1e-9))


def finish(session: Session, acquisition: Acquisition, *, workspace_id: int, rng: random.Random) -> None:
    """Exposures, route-day counters, rotation counters and cost entries from what the funnel counted."""
    funnel = acquisition.funnel
    ws = {"workspace_id": workspace_id}
    exposures = [
        ws
        | {
            "experiment_id": acquisition.experiment_id,
            "variant_key": arm,
            "visitor_id": visitor,
            "customer_id": scan["customer_id"] if scan else None,
            "exposed_at": at,
            "converted_at": scan["added_at"] if scan else None,
        }
        for visitor, arm, at, scan in funnel.exposures
    ]
    days = [ws | {"route_id": route_id, "day": day, "taken": n} for (route_id, day), n in funnel.taken.items()]
    costs = cost_entries(
        funnel, acquisition.channel_ids, stores=acquisition.store_count, recorded_by=OPERATOR_EMAIL, rng=rng
    )
    for model, rows in ((ExperimentExposure, exposures), (LiveCodeRouteDay, days), (ChannelCostEntry, costs)):
        if rows:
            insert_rows(session, model, [ws | row for row in rows])
    for code in funnel.codes:
        if code.rotation != RotationMode.RANDOM and code.routes and code.routes[0].group_id is None:
            session.get_one(LiveCode, code.id).rotation_counter = code.routed
    session.flush()
