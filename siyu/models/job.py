"""Background jobs as rows: the database is the source of truth for work in flight."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Job(Base):
    """One run of a background actor; its status, progress and error show in the console."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_ws_created", "workspace_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"))
    """Null for installation-wide jobs."""
    kind: Mapped[str] = mapped_column(String(60))
    """The actor name, e.g. "import_customers"."""
    args: Mapped[dict[str, Any]]
    status: Mapped[JobStatus] = mapped_column(String(12), default=JobStatus.QUEUED)
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int | None]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class ScheduledRun(Base):
    """The last run of one periodic task; schedulers claim a due run with one conditional UPDATE,
    so several scheduler processes never start the same run twice."""

    __tablename__ = "scheduled_runs"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_started_at: Mapped[datetime | None]
    last_job_id: Mapped[int | None] = mapped_column(BigInteger)
