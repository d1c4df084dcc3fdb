"""The audit log: who changed what, with before/after."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class AuditEntry(WorkspaceScoped, Base):
    """One change made by a person or an API token. Rows are only ever added."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_ws_time", "workspace_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    actor_type: Mapped[str] = mapped_column(String(10))
    """"user", "token" or "system"."""
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    actor_token_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_label: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))
    """"create", "update", "delete", "merge", "unmerge", "erase", "export", "import", "login"…"""
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    request_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
