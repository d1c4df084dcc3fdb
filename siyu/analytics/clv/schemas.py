"""Results of the Pareto table and the CLV fit, as plain dataclasses (the API serialises them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class ParetoRow:
    """The top `top_pct` % of customers and the share of revenue they bring."""

    top_pct: int
    customers: int
    """Customers in the top group among buyers (customers with revenue > 0 in the window)."""
    revenue_fen: int
    share: float | None
    """Their share of the window's revenue (None without revenue)."""
    pool_customers: int
    """The top `top_pct` % of every customer not merged away (buyers or not): "全部客户"."""
    pool_share: float | None
    """The revenue share of that group."""
    multiple: float | None = None
    """Mean revenue of a buyer in the top group ÷ mean revenue of the other buyers (None if none)."""


@dataclass(frozen=True)
class ParetoResult:
    start: date
    end: date
    window_days: int
    pool: int
    """Every customer not merged away ("全部客户"), buyers or not."""
    buyers: int
    revenue_fen: int
    rows: list[ParetoRow] = field(default_factory=list)
    top20_multiple: float | None = None
    """Mean revenue of a top-20 % buyer ÷ mean revenue of the other buyers (None if there are none)."""


@dataclass(frozen=True)
class SuperUsers:
    """Super users of the latest finished fit and what they bought in the Pareto window."""

    count: int
    customers: int
    """Customers with a predicted value."""
    revenue_fen: int
    share: float | None
    segment_id: int | None
    """The tracked "超级用户" segment, if it exists."""
