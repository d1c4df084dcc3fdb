"""Channel metrics per brand-local day and over any date range, for every channel at once.

A report runs a fixed number of aggregate queries (see `attribution`) whatever the number of
channels, then adds up integer counts in Python: range totals are the sums of the daily counts,
and every rate is derived from summed counts, never averaged. Definitions: docs/channels.md.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.channels import attribution as sql
from siyu.channels.attribution import Attribution
from siyu.channels.repository import list_channels, workspace_zone
from siyu.kit.clock import Clock
from siyu.kit.errors import InvalidInput
from siyu.models import Channel, ChannelType, CostModel

DEFAULT_WINDOW_DAYS = 30
MAX_WINDOW_DAYS = 365
MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30


@dataclass(frozen=True)
class Tally:
    """Additive counts of one channel (or all) over some days; every metric derives from these."""

    exposures: int | None = None
    entry_cost_fen: int = 0
    cpa_cost_fen: int = 0
    cps_cost_fen: int = 0
    scans: int = 0
    clicks: int = 0
    adds: int = 0
    matured_7d: int = 0
    deleted_7d: int = 0
    deleted_by_customer_7d: int = 0
    matured_30d: int = 0
    deleted_30d: int = 0
    deleted_by_customer_30d: int = 0
    first_orders: int = 0
    gmv_fen: int = 0

    def __add__(self, other: Tally) -> Tally:
        values: dict[str, int | None] = {}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            values[f.name] = None if mine is None and theirs is None else (mine or 0) + (theirs or 0)
        return Tally(**values)  # type: ignore[arg-type]


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _fen_per(cost_fen: int, count: int) -> int | None:
    """Cost per unit in whole fen, rounded half up (`count` > 0)."""
    return (2 * cost_fen + count) // (2 * count) if count else None


@dataclass(frozen=True)
class ChannelMetrics:
    """What the operator reads for a channel (or the workspace) over a day or a range."""

    exposures: int | None
    scans: int
    clicks: int
    adds: int
    add_rate: float | None
    """adds / (scans + clicks); None without scans or clicks."""
    cost_fen: int
    """entry_cost_fen + cpa_cost_fen + cps_cost_fen."""
    entry_cost_fen: int
    cpa_cost_fen: int
    cps_cost_fen: int
    cac_fen: int | None
    """cost / adds in fen, rounded half up; None without adds."""
    matured_7d: int
    deleted_7d: int
    deleted_by_customer_7d: int
    deletion_rate_7d: float | None
    customer_deletion_rate_7d: float | None
    matured_30d: int
    deleted_30d: int
    deleted_by_customer_30d: int
    deletion_rate_30d: float | None
    customer_deletion_rate_30d: float | None
    first_orders: int
    gmv_fen: int
    roi: float | None
    """GMV / cost (投产比); None when the cost is 0."""

    @classmethod
    def of(cls, tally: Tally) -> ChannelMetrics:
        """Derive the rates from the counts."""
        cost = tally.entry_cost_fen + tally.cpa_cost_fen + tally.cps_cost_fen
        return cls(
            exposures=tally.exposures,
            scans=tally.scans,
            clicks=tally.clicks,
            adds=tally.adds,
            add_rate=_ratio(tally.adds, tally.scans + tally.clicks),
            cost_fen=cost,
            entry_cost_fen=tally.entry_cost_fen,
            cpa_cost_fen=tally.cpa_cost_fen,
            cps_cost_fen=tally.cps_cost_fen,
            cac_fen=_fen_per(cost, tally.adds),
            matured_7d=tally.matured_7d,
            deleted_7d=tally.deleted_7d,
            deleted_by_customer_7d=tally.deleted_by_customer_7d,
            deletion_rate_7d=_ratio(tally.deleted_7d, tally.matured_7d),
            customer_deletion_rate_7d=_ratio(tally.deleted_by_customer_7d, tally.matured_7d),
            matured_30d=tally.matured_30d,
            deleted_30d=tally.deleted_30d,
            deleted_by_customer_30d=tally.deleted_by_customer_30d,
            deletion_rate_30d=_ratio(tally.deleted_30d, tally.matured_30d),
            customer_deletion_rate_30d=_ratio(tally.deleted_by_customer_30d, tally.matured_30d),
            first_orders=tally.first_orders,
            gmv_fen=tally.gmv_fen,
            roi=_ratio(tally.gmv_fen, cost),
        )


@dataclass(frozen=True)
class DayMetrics:
    day: date
    metrics: ChannelMetrics


@dataclass(frozen=True)
class ChannelInfo:
    id: int
    name: str
    type: ChannelType
    cost_model: CostModel
    is_archived: bool


@dataclass(frozen=True)
class ChannelRow:
    """One channel's range totals and its daily series (every day of the range, oldest first)."""

    channel: ChannelInfo
    totals: ChannelMetrics
    daily: list[DayMetrics]


@dataclass(frozen=True)
class ChannelReport:
    date_from: date
    date_to: date
    attribution: Attribution
    window_days: int
    as_of: datetime
    """The clock's now: deletion rates count only adds old enough at this instant."""
    channels: list[ChannelRow]
    totals: ChannelMetrics
    """The workspace total row: the listed channels' counts added up."""
    daily: list[DayMetrics]
    """Workspace totals per day."""

    @property
    def days(self) -> list[date]:
        return [d.day for d in self.daily]


def resolve_range(
    session: Session, *, workspace_id: int, clock: Clock, date_from: date | None, date_to: date | None
) -> tuple[date, date]:
    """The range asked for; a missing end is today (brand time zone), a missing start 30 days before the end."""
    if date_to is None:
        date_to = clock.now().astimezone(workspace_zone(session, workspace_id)).date()
    if date_from is None:
        date_from = date_to - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    return date_from, date_to


def check_range(date_from: date, date_to: date, window_days: int) -> None:
    """422 naming the field for a reversed or too-long range or a window outside 1–365 days."""
    if date_from > date_to:
        raise InvalidInput("from must be on or before to", details={"field": "from"})
    if (date_to - date_from).days + 1 > MAX_RANGE_DAYS:
        raise InvalidInput(f"the range may cover at most {MAX_RANGE_DAYS} days", details={"field": "to"})
    if not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise InvalidInput(f"window_days must be between 1 and {MAX_WINDOW_DAYS}", details={"field": "window_days"})


def parse_attribution(value: str | Attribution) -> Attribution:
    try:
        return Attribution(value)
    except ValueError:
        raise InvalidInput("attribution must be first_touch or last_touch", details={"field": "attribution"}) from None


def channel_report(
    session: Session,
    *,
    actor: Actor,
    date_from: date,
    date_to: date,
    clock: Clock,
    attribution: Attribution | str = Attribution.FIRST_TOUCH,
    window_days: int = DEFAULT_WINDOW_DAYS,
    channel_ids: list[int] | None = None,
) -> ChannelReport:
    """Metrics of every channel (or of `channel_ids`) for [date_from, date_to] in the brand's days.

    Archived channels are listed only when they have something in the range. A constant number
    of queries, whatever the number of channels.
    """
    actor.require(Scope.ACQUISITION_READ)
    check_range(date_from, date_to, window_days)
    model = parse_attribution(attribution)
    workspace_id = actor.workspace_id
    tz = workspace_zone(session, workspace_id)
    start = datetime.combine(date_from, time.min, tzinfo=tz).astimezone(UTC)
    end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)
    scope = sql.Scope(
        workspace_id=workspace_id,
        start=start,
        end=end,
        date_from=date_from,
        date_to=date_to,
        tz=tz,
        now=clock.now(),
        attribution=model,
        window_days=window_days,
        channel_ids=channel_ids,
    )
    channels = [c for c in list_channels(session, workspace_id) if channel_ids is None or c.id in channel_ids]
    tallies = _tallies(session, scope, {c.id: c for c in channels})
    days = [date_from + timedelta(days=n) for n in range((date_to - date_from).days + 1)]
    rows: list[ChannelRow] = []
    per_day_total = {day: Tally() for day in days}
    for channel in channels:
        daily = [tallies.get((channel.id, day), Tally()) for day in days]
        total = sum(daily, Tally())
        if channel.is_archived and channel_ids is None and total == Tally():
            continue  # an archived channel with nothing in the range is not worth a row
        for day, tally in zip(days, daily, strict=True):
            per_day_total[day] += tally
        rows.append(
            ChannelRow(
                channel=ChannelInfo(
                    id=channel.id,
                    name=channel.name,
                    type=channel.type,
                    cost_model=channel.cost_model,
                    is_archived=channel.is_archived,
                ),
                totals=ChannelMetrics.of(total),
                daily=[DayMetrics(day, ChannelMetrics.of(t)) for day, t in zip(days, daily, strict=True)],
            )
        )
    return ChannelReport(
        date_from=date_from,
        date_to=date_to,
        attribution=model,
        window_days=window_days,
        as_of=scope.now,
        channels=rows,
        totals=ChannelMetrics.of(sum(per_day_total.values(), Tally())),
        daily=[DayMetrics(day, ChannelMetrics.of(per_day_total[day])) for day in days],
    )


def _tallies(session: Session, scope: sql.Scope, channels: dict[int, Channel]) -> dict[sql.Key, Tally]:
    """The counts of every (channel, day) with activity, from one query per source."""
    parts: dict[sql.Key, dict[str, int | None]] = {}

    def put(key: sql.Key, **values: int | None) -> None:
        if key[0] in channels:
            parts.setdefault(key, {}).update(values)

    for key, (amount, exposures) in sql.cost_counts(session, scope).items():
        put(key, entry_cost_fen=amount, exposures=exposures)
    for key, scans in sql.scan_counts(session, scope).items():
        put(key, scans=scans)
    for key, clicks in sql.click_counts(session, scope).items():
        put(key, clicks=clicks)
    for key, counts in sql.touch_counts(session, scope).items():
        put(key, **counts)
    out: dict[sql.Key, Tally] = {}
    for key, values in parts.items():
        channel = channels[key[0]]
        adds = int(values.get("adds") or 0)
        if channel.cost_model == CostModel.CPA:
            values["cpa_cost_fen"] = (channel.cpa_fen or 0) * adds
        if channel.cost_model != CostModel.CPS:
            values["cps_cost_fen"] = 0
        out[key] = Tally(**values)  # type: ignore[arg-type]
    return out
