"""A/B experiments on hooks, copy and form."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class ExperimentStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    FINISHED = "finished"


class ExperimentMetric(StrEnum):
    """The primary metric: the share of exposed visitors who…"""

    ADD_RATE = "add_rate"  # …added a staff member (live codes)
    FIRST_ORDER_RATE = "first_order_rate"  # …placed a first order within the window
    CLICK_RATE = "click_rate"  # …clicked (per-recipient short links)


class Experiment(WorkspaceScoped, Base):
    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    hypothesis: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[ExperimentStatus] = mapped_column(String(10), default=ExperimentStatus.DRAFT)
    primary_metric: Mapped[ExperimentMetric] = mapped_column(String(20))
    conversion_window_days: Mapped[int] = mapped_column(default=7)
    """First-order rate: how long after exposure an order still counts."""
    baseline_rate: Mapped[float | None]
    """Planning inputs of the sample-size calculator (rates, not money: floats are fine here)."""
    minimum_detectable_effect: Mapped[float | None]
    """Relative lift the test should detect (0.2 = +20 %)."""
    alpha: Mapped[float] = mapped_column(default=0.05)
    power: Mapped[float] = mapped_column(default=0.8)
    planned_users_per_arm: Mapped[int | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class ExperimentVariant(WorkspaceScoped, Base):
    """An arm. `content` carries what differs: {"hook": …, "welcome_text": …, "target_url": …}."""

    __tablename__ = "experiment_variants"
    __table_args__ = (UniqueConstraint("experiment_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("experiments.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(20))
    """Short stable key ("A", "B", "control") carried in live code states and exposure rows."""
    name: Mapped[str] = mapped_column(String(100))
    weight: Mapped[int] = mapped_column(default=1)
    is_control: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ExperimentExposure(WorkspaceScoped, Base):
    """A visitor's first exposure to an experiment, and whether (and when) they converted."""

    __tablename__ = "experiment_exposures"
    __table_args__ = (
        UniqueConstraint("experiment_id", "visitor_id"),
        Index("ix_experiment_exposures_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("experiments.id", ondelete="CASCADE"))
    variant_key: Mapped[str] = mapped_column(String(20))
    visitor_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="SET NULL"))
    exposed_at: Mapped[datetime]
    converted_at: Mapped[datetime | None]
    """Set by the add (add rate) or the click (click rate); first-order rate reads orders instead."""
