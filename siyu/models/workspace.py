"""Workspaces: one per brand (and its WeCom corp)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId


class Workspace(Base):
    """A brand. Every other record belongs to exactly one workspace."""

    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    wecom_corp_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    """The brand's WeCom corp id (企业ID), when connected."""
    survivorship: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Per-field survivorship overrides for merges: {"name": "oldest"}; default "most_recent"."""
    created_at: Mapped[datetime]
