"""Operations bookkeeping: the Parquet archives written by data retention."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class RetentionArchive(WorkspaceScoped, Base):
    """One Parquet file of archived rows: a table's rows of one workspace and one UTC month.

    A retention batch merges its rows into the month's file, then deletes them in the same
    transaction that updates this row, so `rows` and `sha256` always describe the file on disk.
    """

    __tablename__ = "retention_archives"
    __table_args__ = (UniqueConstraint("workspace_id", "table_name", "period"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    table_name: Mapped[str] = mapped_column(String(60))
    period: Mapped[str] = mapped_column(String(7))
    """The UTC month of the rows' timestamps, "YYYY-MM"."""
    rows: Mapped[int] = mapped_column(BigInteger)
    """Rows in the file (all batches so far)."""
    path: Mapped[str] = mapped_column(String(300))
    """Relative to the archive directory: "<workspace id>/<table>/<YYYY-MM>.parquet"."""
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
