"""API shapes of channels, cost entries and channel metrics."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from siyu.channels.attribution import Attribution
from siyu.channels.metrics import ChannelMetrics, ChannelReport, ChannelRow
from siyu.kit.ids import MAX_ID, DbId
from siyu.kit.schemas import Input
from siyu.models import Channel, ChannelCostEntry, ChannelType, CostModel


class ChannelIn(Input):
    """A new channel. `cpa_fen` is required for the CPA model, `cps_basis_points` for CPS."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["包裹卡·双11"])
    type: ChannelType
    owner_user_id: DbId | None = None
    hook: str | None = Field(default=None, max_length=200, examples=["免费小样"])
    starts_on: date | None = None
    ends_on: date | None = None
    cost_model: CostModel = CostModel.ENTRIES
    cpa_fen: int | None = Field(default=None, gt=0, le=MAX_ID, description="Price per add (CPA), in fen.")
    cps_basis_points: int | None = Field(
        default=None, ge=1, le=10_000, description="Share of attributed GMV (CPS) in 1/10,000: 1500 = 15 %."
    )


class ChannelPatch(Input):
    """Fields to change; absent fields keep their value, null clears an optional one."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    type: ChannelType | None = None
    owner_user_id: DbId | None = None
    hook: str | None = Field(default=None, max_length=200)
    starts_on: date | None = None
    ends_on: date | None = None
    cost_model: CostModel | None = None
    cpa_fen: int | None = Field(default=None, gt=0, le=MAX_ID)
    cps_basis_points: int | None = Field(default=None, ge=1, le=10_000)
    is_archived: bool | None = None


class ChannelRead(BaseModel):
    id: int
    name: str
    type: str
    owner_user_id: int | None
    hook: str | None
    starts_on: date | None
    ends_on: date | None
    cost_model: str
    cpa_fen: int | None
    cps_basis_points: int | None
    is_archived: bool
    created_at: datetime


def channel_read(channel: Channel) -> ChannelRead:
    return ChannelRead(
        id=channel.id,
        name=channel.name,
        type=str(channel.type),
        owner_user_id=channel.owner_user_id,
        hook=channel.hook,
        starts_on=channel.starts_on,
        ends_on=channel.ends_on,
        cost_model=str(channel.cost_model),
        cpa_fen=channel.cpa_fen,
        cps_basis_points=channel.cps_basis_points,
        is_archived=channel.is_archived,
        created_at=channel.created_at,
    )


class CostEntryIn(Input):
    model_config = ConfigDict(extra="forbid")

    spent_on: date = Field(description="The brand-local day the money was spent.")
    amount_fen: int = Field(ge=0, le=MAX_ID)
    exposures: int | None = Field(default=None, ge=0, le=MAX_ID)
    note: str | None = Field(default=None, max_length=200)


class CostEntryRead(BaseModel):
    id: int
    channel_id: int
    spent_on: date
    amount_fen: int
    exposures: int | None
    note: str | None
    created_by: str | None
    created_at: datetime


def cost_entry_read(entry: ChannelCostEntry) -> CostEntryRead:
    return CostEntryRead(
        id=entry.id,
        channel_id=entry.channel_id,
        spent_on=entry.spent_on,
        amount_fen=entry.amount_fen,
        exposures=entry.exposures,
        note=entry.note,
        created_by=entry.created_by,
        created_at=entry.created_at,
    )


class CostEntryPage(BaseModel):
    items: list[CostEntryRead]
    next_cursor: str | None


class MetricsRead(BaseModel):
    """Metrics of a channel (or of all) over a day or a range; see docs/channels.md."""

    exposures: int | None
    scans: int
    clicks: int
    adds: int
    add_rate: float | None
    cost_fen: int
    entry_cost_fen: int
    cpa_cost_fen: int
    cps_cost_fen: int
    cac_fen: int | None
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


def metrics_read(metrics: ChannelMetrics) -> MetricsRead:
    return MetricsRead(**asdict(metrics))


class ChannelRef(BaseModel):
    id: int
    name: str
    type: str
    cost_model: str
    is_archived: bool


class ChannelTotals(BaseModel):
    channel: ChannelRef
    totals: MetricsRead


class DayTotals(BaseModel):
    """One day of the trend chart, all channels together."""

    day: date
    adds: int
    cost_fen: int
    scans: int
    clicks: int


class DayRead(BaseModel):
    day: date
    metrics: MetricsRead


class ReportBase(BaseModel):
    date_from: date = Field(serialization_alias="from")
    date_to: date = Field(serialization_alias="to")
    attribution: Attribution
    window_days: int
    as_of: datetime


class ReportRead(ReportBase):
    """Every channel's range totals, the workspace total row and the daily totals."""

    channels: list[ChannelTotals]
    totals: MetricsRead
    daily: list[DayTotals]


class ChannelReportRead(ReportBase):
    """One channel's range totals and its daily metrics."""

    channel: ChannelRef
    totals: MetricsRead
    daily: list[DayRead]


def _ref(row: ChannelRow) -> ChannelRef:
    info = row.channel
    return ChannelRef(
        id=info.id, name=info.name, type=str(info.type), cost_model=str(info.cost_model), is_archived=info.is_archived
    )


def _base(report: ChannelReport) -> dict[str, object]:
    return {
        "date_from": report.date_from,
        "date_to": report.date_to,
        "attribution": report.attribution,
        "window_days": report.window_days,
        "as_of": report.as_of,
    }


def report_read(report: ChannelReport) -> ReportRead:
    return ReportRead(
        **_base(report),  # type: ignore[arg-type]
        channels=[ChannelTotals(channel=_ref(row), totals=metrics_read(row.totals)) for row in report.channels],
        totals=metrics_read(report.totals),
        daily=[
            DayTotals(
                day=d.day,
                adds=d.metrics.adds,
                cost_fen=d.metrics.cost_fen,
                scans=d.metrics.scans,
                clicks=d.metrics.clicks,
            )
            for d in report.daily
        ],
    )


def channel_report_read(report: ChannelReport) -> ChannelReportRead:
    row = report.channels[0]
    return ChannelReportRead(
        **_base(report),  # type: ignore[arg-type]
        channel=_ref(row),
        totals=metrics_read(row.totals),
        daily=[DayRead(day=d.day, metrics=metrics_read(d.metrics)) for d in row.daily],
    )
