"""Measure (数字化): analytics settings, saved reports, CLV fits and per-customer values, KPI plans.

Every figure is computed from the tables the operations write (customers, relationships, orders,
events…); these tables hold only configuration and the results of model fits, never a second copy
of the operational data.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, JsonDoc, WorkspaceScoped


class AnalyticsSettings(WorkspaceScoped, Base):
    """One row per workspace: the operator's choices for the measure pages (absent row: defaults)."""

    __tablename__ = "analytics_settings"
    __table_args__ = (UniqueConstraint("workspace_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rfm_window_days: Mapped[int] = mapped_column(default=365)
    """RFM looks at orders paid in the last N days."""
    rfm_segments: Mapped[list[Any]] = mapped_column(JsonDoc, default=list)
    """The RFM naming table: `[{"key", "name_en", "name_zh", "r": [lo, hi], "fm": [lo, hi]}]`, first
    match wins; empty means the shipped default (see `siyu.analytics.rfm.naming`)."""
    gross_margin_bp: Mapped[int | None]
    """Gross margin the operator entered, in 1/10,000 of GMV (4500 = 45 %); used by the fit check and ROI."""
    operating_cost_fen_per_member_month: Mapped[int | None] = mapped_column(BigInteger)
    """What running the pool costs per member per month (staff, tools, content), in fen."""
    super_user_top_pct: Mapped[int] = mapped_column(default=20)
    """Super users (超级用户) are the top N % of customers by predicted value."""
    clv_horizon_days: Mapped[int] = mapped_column(default=365)
    """Predicted purchases and value look this many days ahead."""
    clv_time_unit: Mapped[str] = mapped_column(String(10), default="week")
    """The BG/NBD time unit: "day" or "week"."""
    updated_at: Mapped[datetime]


class ReportKind(StrEnum):
    FUNNEL = "funnel"
    RETENTION = "retention"


class SavedReport(WorkspaceScoped, Base):
    """A funnel or cohort report definition saved under a name, to open again with fresh figures."""

    __tablename__ = "saved_reports"
    __table_args__ = (UniqueConstraint("workspace_id", "kind", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[ReportKind] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    config: Mapped[dict[str, Any]]
    """The report's definition as its area parses it (steps and windows, cohort settings…)."""
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ClvFitStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ClvFit(WorkspaceScoped, Base):
    """One fit of BG/NBD + Gamma-Gamma on the order history, with its parameters and validation."""

    __tablename__ = "clv_fits"
    __table_args__ = (Index("ix_clv_fits_ws_started", "workspace_id", "started_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    status: Mapped[ClvFitStatus] = mapped_column(String(10), default=ClvFitStatus.RUNNING)
    calibration_end: Mapped[date]
    """Orders paid up to this brand-local day (inclusive) were used to fit."""
    holdout_end: Mapped[date | None]
    """For a validation fit: orders after `calibration_end` up to this day are the hold-out."""
    time_unit: Mapped[str] = mapped_column(String(10))
    horizon_days: Mapped[int]
    customers: Mapped[int] = mapped_column(default=0)
    """Customers with at least one order by `calibration_end` (the fitted population)."""
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """`{"r", "alpha", "a", "b", "bgnbd_ll", "p", "q", "v", "gg_ll", "gg_customers"}`."""
    validation: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    """Hold-out check: predicted vs actual purchases per calibration frequency bucket."""
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class CustomerValue(WorkspaceScoped, Base):
    """A customer's predicted value from the workspace's latest finished CLV fit (one row per customer)."""

    __tablename__ = "customer_values"
    __table_args__ = (
        UniqueConstraint("customer_id"),
        Index("ix_customer_values_ws_rank", "workspace_id", "value_rank"),
        Index("ix_customer_values_ws_super", "workspace_id", "is_super_user", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    fit_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("clv_fits.id", ondelete="CASCADE"), index=True)
    frequency: Mapped[int]
    """Repeat purchase days (purchase days after the first)."""
    recency: Mapped[float] = mapped_column(Float)
    """Time units from the first to the last purchase day."""
    age: Mapped[float] = mapped_column(Float)
    """T: time units from the first purchase day to the calibration end."""
    average_spend_fen: Mapped[int] = mapped_column(BigInteger)
    """Mean spend per repeat purchase day (0 without repeats): the Gamma-Gamma input."""
    expected_purchases: Mapped[float] = mapped_column(Float)
    """Purchase days expected within the fit's horizon."""
    p_alive: Mapped[float] = mapped_column(Float)
    expected_spend_fen: Mapped[int] = mapped_column(BigInteger)
    """Gamma-Gamma expected spend per purchase."""
    expected_value_fen: Mapped[int] = mapped_column(BigInteger)
    """expected_purchases × expected_spend over the horizon (undiscounted)."""
    value_rank: Mapped[int]
    """1 for the highest expected value in the workspace."""
    is_super_user: Mapped[bool] = mapped_column(default=False)
    computed_at: Mapped[datetime]


class KpiPlan(WorkspaceScoped, Base):
    """A target (目标) broken down by month: adds, pool, orders and GMV needed, checked against actuals."""

    __tablename__ = "kpi_plans"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    first_month: Mapped[date]
    """The first day of the plan's first month."""
    last_month: Mapped[date]
    """The first day of the plan's last month (the target is due at its end)."""
    start_pool: Mapped[int]
    """The pool size at the start of `first_month`."""
    target_pool: Mapped[int]
    target_gmv_fen: Mapped[int] = mapped_column(BigInteger)
    """GMV from the pool over the plan's months, in fen."""
    assumptions: Mapped[dict[str, Any]]
    """`{"monthly_deletion_rate", "first_order_rate", "repurchase_rate", "aov_fen", …}` as entered
    (pre-filled from measured history)."""
    months: Mapped[list[Any]] = mapped_column(JsonDoc, default=list)
    """The decomposition: one entry per month with the planned adds, pool, orders and GMV."""
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
