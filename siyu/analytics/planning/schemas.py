"""Request bodies of the planning API."""

from __future__ import annotations

from pydantic import BaseModel, Field

from siyu.analytics.planning.kpi import MAX_FEN, MAX_POOL


class KpiPlanCreate(BaseModel):
    """A KPI plan as the API takes it: months as "2026-12", money in fen, rates as fractions."""

    name: str = Field(max_length=100)
    first_month: str = Field(max_length=10)
    last_month: str = Field(max_length=10)
    start_pool: int | None = Field(default=None, le=MAX_POOL, description="Defaults to the pool now.")
    target_pool: int = Field(le=MAX_POOL)
    target_gmv_fen: int = Field(le=MAX_FEN)
    # rates: checked 0–1 (NaN and infinity too) by kpi.validate, which names the field
    monthly_deletion_rate: float | None = Field(default=None, description="Defaults to the measured rate.")
    first_order_rate: float | None = None
    repurchase_rate: float | None = None
    aov_fen: int | None = Field(default=None, le=MAX_FEN)
    start_buyers: int | None = Field(default=None, le=MAX_POOL)
