"""What retention may archive, and the settings that say how long rows stay.

Only append-only tables whose old rows nothing needs for correctness are in scope; the reasons
for each table in (and out) are in docs/backups.md. A table's `only` narrows it further: rows a
rule still needs (an unprocessed callback, a visit a referral points at) are never archived.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import ColumnElement, Table, exists, select

from siyu.config import Settings
from siyu.models import DeliveryCallback, IntegrationEvent, LiveCodeScan, Referral, ReferralVisit, ShortLinkClick
from siyu.models.integration import EventStatus


@dataclass(frozen=True)
class RetainedTable:
    """A table retention archives: rows whose `time_column` is before the cutoff (and match `only`)."""

    name: str
    time_column: str
    only: Callable[[Table], ColumnElement[bool]] | None = None


def _table(model: type) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


def _settled_events(table: Table) -> ColumnElement[bool]:
    # Received and failed events are still work in flight (a retry may follow).
    return table.c.status.in_([EventStatus.PROCESSED.value, EventStatus.IGNORED.value])


def _unreferenced_visits(table: Table) -> ColumnElement[bool]:
    # A referral keeps the scan that brought its invitee (fraud review reads it); deleting the
    # visit would null that link.
    return ~exists(select(_table(Referral).c.id).where(_table(Referral).c.visit_id == table.c.id))


RETAINED: tuple[RetainedTable, ...] = (
    RetainedTable(_table(LiveCodeScan).name, "scanned_at"),
    RetainedTable(_table(ShortLinkClick).name, "clicked_at"),
    RetainedTable(_table(ReferralVisit).name, "occurred_at", _unreferenced_visits),
    RetainedTable(_table(DeliveryCallback).name, "received_at"),
    RetainedTable(_table(IntegrationEvent).name, "received_at", _settled_events),
)
"""Every table retention may touch, in the order a run visits them."""

BY_NAME = {spec.name: spec for spec in RETAINED}


class RetentionConfigError(ValueError):
    """The retention settings cannot be understood (names the setting and the bad part)."""


@dataclass(frozen=True)
class RetentionPolicy:
    """Months kept per table (0: forever) and where archives go."""

    months: dict[str, int]
    archive_dir: Path
    default_months: int = 0
    overrides: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """Read `retention_months`, `retention_overrides` and `archive_dir`; a typo fails loudly."""
        overrides: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in settings.retention_overrides.split(","))):
            name, sep, value = part.partition("=")
            name, value = name.strip(), value.strip()
            if not sep or name not in BY_NAME:
                raise RetentionConfigError(
                    f"SIYU_RETENTION_OVERRIDES: {part!r} is not <table>=<months> with a table of {', '.join(BY_NAME)}"
                )
            if not value.isascii() or not value.isdigit():
                raise RetentionConfigError(f"SIYU_RETENTION_OVERRIDES: months of {name} must be a whole number ≥ 0")
            overrides[name] = int(value)
        months = {spec.name: overrides.get(spec.name, settings.retention_months) for spec in RETAINED}
        archive_dir = settings.archive_dir or settings.data_dir / "archive"
        return cls(months, archive_dir, settings.retention_months, overrides)


def cutoff(now: datetime, months: int) -> datetime:
    """The start of the UTC month `months` months before `now`'s: rows before it are archived.

    Whole months, so a month's file is complete once written (late rows merge into it later)."""
    index = now.year * 12 + (now.month - 1) - months
    return now.replace(year=index // 12, month=index % 12 + 1, day=1, hour=0, minute=0, second=0, microsecond=0)
