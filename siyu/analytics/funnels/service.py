"""Funnels: how many customers entered with the first step in the period and how far they got.

`run_funnel` fetches each step's occurrences in one query, matches customers in Python
(`engine.match`), applies exclusions and splits the counts by the breakdown. The drop-off drill
and the reached drill recompute the same result and turn the customers who stopped at a step, or who
reached it, into a static segment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from statistics import median
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.analytics import drill, periods, saved
from siyu.analytics.funnels import collect, engine
from siyu.analytics.funnels.schemas import (
    DEFAULT_DEFINITION,
    BreakdownBy,
    FunnelDefinition,
    FunnelOrder,
    parse_definition,
)
from siyu.analytics.periods import Period, workspace_zone
from siyu.analytics.tables import ratio
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput, NotFound
from siyu.models import Channel, CustomerTag, LiveCode, ReportKind, SavedReport, Segment, Staff, Tag, TagGroup

NONE_KEY = ""
"""The breakdown value of customers with no channel / staff / variant / tag."""


@dataclass(frozen=True)
class StepFigures:
    number: int
    customers: int
    step_conversion: float | None
    """Share of the previous step's customers who reached this one (None for the first step)."""
    overall_conversion: float | None
    """Share of the entrants who reached this step."""
    median_hours: float | None
    """Median hours from the previous step (ordered) or from the entry (any order); None for step 1."""


@dataclass(frozen=True)
class FunnelGroup:
    key: str
    label: str | None
    """The breakdown value's name (channel, staff, tag, "live code · variant"); None for the total or "none"."""
    steps: list[StepFigures]

    @property
    def entered(self) -> int:
        return self.steps[0].customers


@dataclass
class FunnelResult:
    definition: FunnelDefinition
    period: Period
    total: FunnelGroup
    breakdown: list[FunnelGroup]
    levels: dict[int, int] = field(repr=False)
    """Customer id → the number of steps they reached."""
    groups: dict[int, tuple[str, ...]] = field(repr=False)
    """Customer id → the breakdown keys they count under (empty without a breakdown)."""

    def drop_off_ids(self, step: int, key: str | None = None) -> list[int]:
        """Customers who reached `step` (1-based) and not the next one, optionally in one breakdown group."""
        return sorted(
            c for c, level in self.levels.items() if level == step and (key is None or key in self.groups.get(c, ()))
        )

    def reached_ids(self, step: int, key: str | None = None) -> list[int]:
        """Customers who reached `step` (1-based; perhaps further), optionally in one breakdown group:
        the people behind customers(k) in the step and breakdown tables."""
        return sorted(
            c for c, level in self.levels.items() if level >= step and (key is None or key in self.groups.get(c, ()))
        )


def _figures(paths: Sequence[engine.Path], n: int, order: FunnelOrder) -> list[StepFigures]:
    counts = [0] * n
    gaps: list[list[float]] = [[] for _ in range(n)]
    for path in paths:
        for k in range(path.level):
            counts[k] += 1
            if k:
                base = path.times[k - 1] if order == FunnelOrder.ORDERED else path.times[0]
                gaps[k].append(path.times[k] - base)
    out = []
    for k in range(n):
        out.append(
            StepFigures(
                number=k + 1,
                customers=counts[k],
                step_conversion=None if k == 0 else ratio(counts[k], counts[k - 1]),
                overall_conversion=ratio(counts[k], counts[0]),
                median_hours=median(gaps[k]) / 3600 if k and gaps[k] else None,
            )
        )
    return out


_NO_ATTRS: collect.Attrs = (None, None, None, None)


def _variant_keys(
    session: Session, workspace_id: int, entry_attrs: dict[int, collect.Attrs], customers: Sequence[int]
) -> tuple[dict[int, tuple[str, ...]], dict[str, str]]:
    """Experiment variants keyed "<live code id>:<variant>" (two codes' "A" are different arms),
    labelled "<live code name> · <variant>"; a variant without a live code is keyed ":<variant>"."""
    keys: dict[int, tuple[str, ...]] = {}
    arms: dict[str, tuple[int | None, str]] = {}
    for c in customers:
        _channel, _staff, variant, code_id = entry_attrs.get(c, _NO_ATTRS)
        if variant is None:
            keys[c] = (NONE_KEY,)
            continue
        key = f"{'' if code_id is None else code_id}:{variant}"
        keys[c] = (key,)
        arms[key] = (code_id, variant)
    code_ids = {code_id for code_id, _variant in arms.values() if code_id is not None}
    names: dict[int, str] = {}
    if code_ids:
        codes = select(LiveCode.id, LiveCode.name).where(
            LiveCode.workspace_id == workspace_id, LiveCode.id.in_(code_ids)
        )
        names = {int(i): n for i, n in session.execute(codes)}
    labels = {
        key: variant if code_id is None else f"{names.get(code_id, f'#{code_id}')} · {variant}"
        for key, (code_id, variant) in arms.items()
    }
    return keys, labels


def _group_keys(
    session: Session,
    workspace_id: int,
    definition: FunnelDefinition,
    entry_attrs: dict[int, collect.Attrs],
    customers: Sequence[int],
) -> tuple[dict[int, tuple[str, ...]], dict[str, str]]:
    """Each customer's breakdown keys and the label of every key (tags of this workspace only)."""
    b = definition.breakdown
    if b is None:
        return {}, {}
    keys: dict[int, tuple[str, ...]] = {}
    if b.by == BreakdownBy.VARIANT:
        return _variant_keys(session, workspace_id, entry_attrs, customers)
    if b.by != BreakdownBy.TAG:
        slot = {BreakdownBy.CHANNEL: 0, BreakdownBy.STAFF: 1}[b.by]
        for c in customers:
            value = entry_attrs.get(c, _NO_ATTRS)[slot]
            keys[c] = (NONE_KEY if value is None else str(value),)
        ids = {int(k) for (k,) in keys.values() if k}
        if b.by == BreakdownBy.CHANNEL:
            channels = select(Channel.id, Channel.name).where(Channel.workspace_id == workspace_id, Channel.id.in_(ids))
            labels = {str(i): n for i, n in session.execute(channels)}
        else:
            staff = select(Staff.id, Staff.name).where(Staff.workspace_id == workspace_id, Staff.id.in_(ids))
            labels = {str(i): n for i, n in session.execute(staff)}
        return keys, labels
    tags = select(Tag.id, Tag.name).where(Tag.workspace_id == workspace_id)
    tags = tags.where(Tag.group_id == b.tag_group_id) if b.tag_group_id else tags.where(Tag.id.in_(b.tag_ids))
    labels = {str(i): n for i, n in session.execute(tags)}
    if b.tag_group_id:
        group = session.get(TagGroup, b.tag_group_id)
        if group is None or group.workspace_id != workspace_id:
            raise NotFound(
                f"tag group {b.tag_group_id} not found", details={"field": "definition.breakdown.tag_group_id"}
            )
    missing = [t for t in b.tag_ids if str(t) not in labels]
    if missing:
        raise NotFound(f"tag {missing[0]} not found", details={"field": "definition.breakdown.tag_ids"})
    held: dict[int, list[str]] = defaultdict(list)
    wanted = [int(k) for k in labels]
    entered = set(customers)
    if wanted and entered:
        rows = session.execute(
            select(CustomerTag.customer_id, CustomerTag.tag_id).where(
                CustomerTag.workspace_id == workspace_id, CustomerTag.tag_id.in_(wanted)
            )
        )
        for customer_id, tag_id in rows:
            if customer_id in entered:
                held[customer_id].append(str(tag_id))
    keys = {c: tuple(sorted(set(held[c]))) if held.get(c) else (NONE_KEY,) for c in customers}
    return keys, labels


def run_funnel(
    session: Session, *, actor: Actor, definition: dict[str, Any], period: Period, clock: Clock
) -> FunnelResult:
    """Count the customers whose first step fell in `period` and how far they got, per breakdown value.

    `definition` is the JSON of `schemas.parse_definition` (`InvalidInput` naming the field when
    malformed). Later steps may happen after the period ends, up to their windows.
    """
    actor.require(Scope.ANALYTICS_READ)
    parsed = parse_definition(definition)
    ws = actor.workspace_id
    lo, hi = period.utc_bounds(workspace_zone(session, ws))
    reach = engine.windows(parsed.steps)
    first = collect.occurrences(session, parsed.steps[0], workspace_id=ws, lo=lo, hi=hi)
    entries = {c: occurrences[0] for c, occurrences in first.times.items()}
    among = collect.entrants(parsed.steps[0], ws, lo, hi)
    # step k is fetched only as far as an ordered path could reach it (its own cumulative window)
    later = [
        collect.occurrences(
            session, spec, workspace_id=ws, lo=lo, hi=hi + timedelta(seconds=reach[k]), among=among
        ).times
        if entries
        else {}
        for k, spec in enumerate(parsed.steps[1:])
    ]
    paths = engine.match(entries, parsed.steps, later, parsed.order)
    for exclusion in parsed.exclusions:
        # between steps i and j: nothing after step j's latest reach matters
        until = hi + timedelta(seconds=reach[exclusion.between[1] - 2])
        excluded = collect.occurrences(session, exclusion.step, workspace_id=ws, lo=lo, hi=until, among=among)
        engine.exclude(paths, excluded.times, exclusion.between)
    n = len(parsed.steps)
    keys, labels = _group_keys(session, ws, parsed, first.first_attrs, list(paths))
    by_key: dict[str, list[engine.Path]] = defaultdict(list)
    for customer_id, path in paths.items():
        for key in keys.get(customer_id, ()):
            by_key[key].append(path)
    breakdown = [
        FunnelGroup(key, labels.get(key), _figures(group, n, parsed.order))
        for key, group in sorted(by_key.items(), key=lambda kv: (-len(kv[1]), kv[0] == NONE_KEY, kv[0]))
    ]
    total = FunnelGroup("total", None, _figures(list(paths.values()), n, parsed.order))
    return FunnelResult(parsed, period, total, breakdown, {c: p.level for c, p in paths.items()}, keys)


def drop_off_segment(
    session: Session,
    *,
    actor: Actor,
    definition: dict[str, Any],
    period: Period,
    step: int,
    clock: Clock,
    breakdown_value: str | None = None,
    name: str | None = None,
) -> tuple[Segment, int]:
    """A static segment of the customers who reached `step` and not the next one (recomputed here).

    Returns the segment and its member count. `step` must be 1 … n − 1.
    """
    return _drill(
        session,
        actor=actor,
        definition=definition,
        period=period,
        step=step,
        clock=clock,
        breakdown_value=breakdown_value,
        name=name,
        reached=False,
    )


def reached_segment(
    session: Session,
    *,
    actor: Actor,
    definition: dict[str, Any],
    period: Period,
    step: int,
    clock: Clock,
    breakdown_value: str | None = None,
    name: str | None = None,
) -> tuple[Segment, int]:
    """A static segment of the customers who reached `step` (the figure customers(k), in total or in
    one breakdown group), recomputed here. Returns the segment and its member count; `step` is 1 … n."""
    return _drill(
        session,
        actor=actor,
        definition=definition,
        period=period,
        step=step,
        clock=clock,
        breakdown_value=breakdown_value,
        name=name,
        reached=True,
    )


def _drill(
    session: Session,
    *,
    actor: Actor,
    definition: dict[str, Any],
    period: Period,
    step: int,
    clock: Clock,
    breakdown_value: str | None,
    name: str | None,
    reached: bool,
) -> tuple[Segment, int]:
    actor.require(Scope.ANALYTICS_WRITE)
    parsed = parse_definition(definition)
    last = len(parsed.steps) if reached else len(parsed.steps) - 1
    if not 1 <= step <= last:
        raise InvalidInput(f"step must be from 1 to {last}", details={"field": "step"})
    result = run_funnel(session, actor=actor, definition=definition, period=period, clock=clock)
    group = None
    if breakdown_value is not None:
        group = next((g for g in result.breakdown if g.key == breakdown_value), None)
        if group is None:
            raise InvalidInput("no such breakdown value in this funnel", details={"field": "breakdown_value"})
    span = f"{period.start.isoformat()}~{period.end.isoformat()}"
    where = "" if group is None else f" {group.label or ('未记录' if group.key == NONE_KEY else group.key)}"
    if reached:
        ids = result.reached_ids(step, breakdown_value)
        default = f"漏斗到达 第{step}步{where} {span}"
        source, description = f"analytics:funnel:reached:{step}", f"reached step {step}"
    else:
        ids = result.drop_off_ids(step, breakdown_value)
        default = f"漏斗流失 第{step}步{where} {span}"
        source = f"analytics:funnel:drop-off:{step}"
        description = f"reached step {step} and not step {step + 1}"
    if breakdown_value is not None:
        description += f", breakdown value {breakdown_value!r}"
    segment = drill.segment_from_ids(
        session,
        actor=actor,
        name=name or default,
        customer_ids=ids,
        source=source,
        clock=clock,
        description=description,
    )
    return segment, len(ids)


# --- saved funnels ----------------------------------------------------------------------------------


def list_funnels(session: Session, *, actor: Actor) -> Sequence[SavedReport]:
    return saved.list_reports(session, actor=actor, kind=ReportKind.FUNNEL)


def get_funnel(session: Session, *, actor: Actor, report_id: int) -> SavedReport:
    return saved.get_report(session, actor=actor, kind=ReportKind.FUNNEL, report_id=report_id)


def save_funnel(
    session: Session,
    *,
    actor: Actor,
    name: str,
    definition: dict[str, Any],
    clock: Clock,
    report_id: int | None = None,
) -> SavedReport:
    """Validate and save (or replace) a funnel definition under `name`; stored in canonical form."""
    actor.require(Scope.ANALYTICS_WRITE)
    config = parse_definition(definition).as_json()
    return saved.save_report(
        session, actor=actor, kind=ReportKind.FUNNEL, name=name, config=config, clock=clock, report_id=report_id
    )


def delete_funnel(session: Session, *, actor: Actor, report_id: int, clock: Clock) -> None:
    saved.delete_report(session, actor=actor, kind=ReportKind.FUNNEL, report_id=report_id, clock=clock)


def resolve_period(
    session: Session, *, actor: Actor, clock: Clock, date_from: str | None, date_to: str | None
) -> Period:
    """The brand-local range asked for (default: the last 30 days); `InvalidInput` on "from"/"to"."""
    return periods.resolve_period(session, actor.workspace_id, clock, date_from, date_to)


def resolve_definition(
    session: Session, *, actor: Actor, definition: dict[str, Any] | None, report_id: int | None
) -> dict[str, Any]:
    """The definition given, else the saved funnel's, else the default one."""
    if definition is not None:
        return definition
    if report_id is not None:
        return dict(get_funnel(session, actor=actor, report_id=report_id).config)
    return DEFAULT_DEFINITION
