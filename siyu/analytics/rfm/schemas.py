"""Request bodies of the RFM and analytics-settings API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class RfmCellIn(BaseModel):
    """One drill target: a grid cell (`r` and `f`), a named segment (`segment`) or `no_recent_orders`."""

    model_config = ConfigDict(extra="forbid")
    window_days: int | None = Field(default=None, ge=1, le=1095)
    r: int | None = Field(default=None, ge=1, le=5)
    f: int | None = Field(default=None, ge=1, le=5)
    segment: str | None = Field(default=None, max_length=40)
    no_recent_orders: bool = False
    name: str | None = Field(default=None, max_length=100, description="Segment name; generated when absent.")


class SettingsIn(BaseModel):
    """Fields to change (absent fields keep their value); units as stored: basis points and fen."""

    model_config = ConfigDict(extra="forbid")
    rfm_window_days: int | None = None
    rfm_segments: list[Any] | None = None
    gross_margin_bp: int | None = None
    operating_cost_fen_per_member_month: int | None = None
    super_user_top_pct: int | None = None
    clv_horizon_days: int | None = None
    clv_time_unit: Literal["day", "week"] | None = None
