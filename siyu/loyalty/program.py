"""The workspace's loyalty program settings, and the calendar arithmetic they imply."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock, as_utc
from siyu.kit.sql import insert_or_ignore
from siyu.models import ExpiryPolicy, LoyaltyProgram, Workspace


def get_program(session: Session, workspace_id: int, *, clock: Clock) -> LoyaltyProgram:
    """The workspace's program; a default one (1 point per yuan, expiring at the end of next year)
    is created on first use. Safe under concurrency: the unique key picks one row."""
    program = session.scalar(select(LoyaltyProgram).where(LoyaltyProgram.workspace_id == workspace_id))
    if program is None:
        insert_or_ignore(
            session,
            LoyaltyProgram,
            {
                "workspace_id": workspace_id,
                "points_per_yuan": 1,
                "expiry_policy": ExpiryPolicy.YEAR_END,
                "expiry_n": 1,
                "expiring_notice_days": 30,
                "tier_basis": "spend",
                "tier_window": "rolling",
                "tier_window_days": 365,
                "review_period": "quarterly",
                "grace_days": 30,
                "updated_at": clock.now(),
            },
            ["workspace_id"],
        )
        program = session.scalars(select(LoyaltyProgram).where(LoyaltyProgram.workspace_id == workspace_id)).one()
    return program


def brand_zone(session: Session, workspace_id: int) -> ZoneInfo:
    """The brand's time zone: expiry dates, check-in days and review dates are its calendar days."""
    name = session.scalar(select(Workspace.timezone).where(Workspace.id == workspace_id))
    return ZoneInfo(name or "Asia/Shanghai")


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant at which `day` starts in the brand's zone."""
    return as_utc(datetime.combine(day, time(0), tzinfo=zone))


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def lot_expiry(policy: ExpiryPolicy, n: int, earned_at: datetime, zone: ZoneInfo) -> datetime | None:
    """When points earned at `earned_at` expire: the first instant they are no longer spendable
    (exclusive bound), or None for never. "End of month" means midnight starting the next month."""
    local = as_utc(earned_at).astimezone(zone).date()
    match policy:
        case ExpiryPolicy.NEVER:
            return None
        case ExpiryPolicy.DAYS:
            return as_utc(earned_at) + timedelta(days=max(n, 1))
        case ExpiryPolicy.MONTH_END:
            return local_midnight(_add_months(local.replace(day=1), max(n, 0) + 1), zone)
        case ExpiryPolicy.YEAR_END:
            return local_midnight(date(local.year + max(n, 0) + 1, 1, 1), zone)
    raise ValueError(f"unknown expiry policy {policy}")


def last_valid_day(expires_at: datetime, zone: ZoneInfo) -> date:
    """The last brand-local day on which points expiring at `expires_at` can still be spent."""
    return (as_utc(expires_at) - timedelta(microseconds=1)).astimezone(zone).date()
