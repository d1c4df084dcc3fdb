"""Organisation inside a workspace: regions → stores → staff (导购)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class Region(WorkspaceScoped, Base):
    __tablename__ = "regions"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class Store(WorkspaceScoped, Base):
    """A store (门店); staff belong to one."""

    __tablename__ = "stores"
    __table_args__ = (UniqueConstraint("workspace_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    region_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("regions.id"), index=True)
    code: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(50))


class Staff(WorkspaceScoped, Base):
    """A staff member (导购/顾问) whose WeCom account holds customer relationships."""

    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("workspace_id", "wecom_user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("stores.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    wecom_user_id: Mapped[str | None] = mapped_column(String(64))
    """The staff member's WeCom userid (成员 UserID), used by the WeCom integration."""
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
