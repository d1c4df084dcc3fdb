"""What the overview dashboard computes: its filters, figures and trend rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from siyu.analytics.periods import Grain, Period


@dataclass(frozen=True)
class Filters:
    """Who the figures are about; None means no filter. Ids are checked against the workspace."""

    channel_id: int | None = None
    store_id: int | None = None
    staff_id: int | None = None
    tag_id: int | None = None
    segment_id: int | None = None

    def as_params(self) -> dict[str, str]:
        """The filters as query-string / form fields (only those set)."""
        return {key: str(value) for key, value in vars(self).items() if value is not None}


class Metric(StrEnum):
    """A figure whose customers a drill-down can turn into a segment."""

    POOL = "pool"
    WECOM = "wecom"
    GROUP = "group"
    OFFICIAL_ACCOUNT = "official_account"
    SMS = "sms"
    ADDS = "adds"
    DELETED_BY_CUSTOMER = "deleted_by_customer"
    DELETED_BY_STAFF = "deleted_by_staff"
    FIRST_ORDERS = "first_orders"
    REPURCHASES = "repurchases"
    GMV = "gmv"
    ACTIVE = "active"
    CONVERTED = "converted"


@dataclass(frozen=True)
class Stat:
    """One stat card: the value in the period, the previous period's, and the relative change."""

    key: str
    value: float | int | None
    previous: float | int | None
    change: float | None
    kind: str = "int"  # a tables.Kind value
    customers: int | None = None
    """Distinct customers behind a card that counts edges or orders (its drill-down's members)."""
    previous_customers: int | None = None


@dataclass(frozen=True)
class TrendRow:
    """One bucket (day, week or month) of the trend chart and its table."""

    bucket: date
    """The bucket's key: the day, the week's Monday or the month's 1st (may fall before the period)."""
    start: date
    """The first day the row covers: the bucket's start, or the period's start when that is later."""
    end: date
    """The last day the row covers: the bucket's end, or the period's end when that is earlier."""
    pool: int
    adds: int
    deleted_by_customer: int
    deleted_by_staff: int
    net_growth: int
    open_at_start: int
    deletion_rate: float | None
    first_orders: int
    repurchases: int
    gmv_fen: int
    active: int


@dataclass(frozen=True)
class PoolCounts:
    """Customers reachable at an instant, per channel and in total (each customer counted once)."""

    pool: int = 0
    wecom: int = 0
    group: int = 0
    official_account: int = 0
    sms: int = 0


@dataclass(frozen=True)
class Rate:
    """One of the three rates: numerator ÷ denominator; `reported` False when the source has no data."""

    key: str
    numerator: int
    denominator: int
    value: float | None
    previous: float | None
    change: float | None
    reported: bool = True


@dataclass
class Overview:
    period: Period
    grain: Grain
    filters: Filters
    pool: PoolCounts
    previous_pool: PoolCounts
    stats: dict[str, Stat]
    trend: list[TrendRow]
    rates: list[Rate] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing at all happened and nobody is in the pool."""
        return self.pool.pool == 0 and all(not s.value and not s.previous for s in self.stats.values())
