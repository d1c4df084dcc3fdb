"""Click statistics of a campaign link, its recipient links included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from siyu.experiments.assignment import variants_of
from siyu.kit.clock import Clock
from siyu.models import ShortLink, ShortLinkClick, Workspace
from siyu.shortlinks.service import get_link

DEFAULT_DAYS = 30
MAX_DAYS = 366


@dataclass(frozen=True)
class DayClicks:
    day: date
    clicks: int
    unique_visitors: int


@dataclass(frozen=True)
class VariantClicks:
    key: str
    name: str
    clicks: int
    unique_visitors: int
    unique_customers: int


@dataclass(frozen=True)
class LinkStats:
    """Clicks of a campaign link and every recipient link made from it."""

    total_clicks: int
    unique_visitors: int
    """Distinct visitor cookies that clicked."""
    unique_customers: int
    """Distinct customers who clicked their per-recipient link."""
    recipients: int
    """Per-recipient links made from this link."""
    by_day: list[DayClicks]
    """One point per brand-local day, oldest first, zero days included."""
    by_variant: list[VariantClicks]


def local_day(session: Session, column: Any, tz: ZoneInfo, now: datetime) -> ColumnElement[str]:
    """The brand-local calendar day of a UTC timestamp column as ISO text, on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone(tz.key, column), "YYYY-MM-DD")
    # SQLite stores naive UTC text: shift by the zone's current offset (Chinese zones keep no DST).
    offset = now.astimezone(tz).utcoffset() or timedelta(0)
    return func.date(column, f"{int(offset.total_seconds())} seconds")


def workspace_tz(session: Session, workspace_id: int) -> ZoneInfo:
    workspace = session.get(Workspace, workspace_id)
    return ZoneInfo(workspace.timezone if workspace else "Asia/Shanghai")


def link_stats(
    session: Session,
    *,
    workspace_id: int,
    link_id: int,
    clock: Clock,
    days: int = DEFAULT_DAYS,
) -> LinkStats:
    """Totals, uniques, the last `days` brand-local days and per-variant counts of a campaign link."""
    link = get_link(session, workspace_id=workspace_id, link_id=link_id)
    campaign_id = link.parent_id or link.id
    days = max(1, min(days, MAX_DAYS))
    scope = (ShortLinkClick.workspace_id == workspace_id, ShortLinkClick.campaign_link_id == campaign_id)
    total, visitors, customers = session.execute(
        select(
            func.count(ShortLinkClick.id),
            func.count(func.distinct(ShortLinkClick.visitor_id)),
            func.count(func.distinct(ShortLinkClick.customer_id)),
        ).where(*scope)
    ).one()
    recipients = session.scalar(
        select(func.count(ShortLink.id)).where(
            ShortLink.workspace_id == workspace_id, ShortLink.parent_id == campaign_id
        )
    )
    tz = workspace_tz(session, workspace_id)
    now = clock.now()
    today = now.astimezone(tz).date()
    first_day = today - timedelta(days=days - 1)
    since = datetime.combine(first_day, datetime.min.time(), tzinfo=tz).astimezone(UTC)
    day = local_day(session, ShortLinkClick.clicked_at, tz, now).label("day")
    counted = {
        str(key): (int(clicks), int(uniques))
        for key, clicks, uniques in session.execute(
            select(day, func.count(ShortLinkClick.id), func.count(func.distinct(ShortLinkClick.visitor_id)))
            .where(*scope, ShortLinkClick.clicked_at >= since)
            .group_by(day)
        )
    }
    by_day = []
    for offset in range(days):
        current = first_day + timedelta(days=offset)
        clicks, uniques = counted.get(current.isoformat(), (0, 0))
        by_day.append(DayClicks(day=current, clicks=clicks, unique_visitors=uniques))
    return LinkStats(
        total_clicks=int(total),
        unique_visitors=int(visitors),
        unique_customers=int(customers),
        recipients=int(recipients or 0),
        by_day=by_day,
        by_variant=_by_variant(session, scope, link.experiment_id),
    )


def _by_variant(session: Session, scope: tuple[Any, ...], experiment_id: int | None) -> list[VariantClicks]:
    rows: dict[str, tuple[int, int, int]] = {
        str(key): (int(clicks), int(visitors), int(customers))
        for key, clicks, visitors, customers in session.execute(
            select(
                ShortLinkClick.variant,
                func.count(ShortLinkClick.id),
                func.count(func.distinct(ShortLinkClick.visitor_id)),
                func.count(func.distinct(ShortLinkClick.customer_id)),
            )
            .where(*scope, ShortLinkClick.variant.is_not(None))
            .group_by(ShortLinkClick.variant)
        )
    }
    names: dict[str, str] = {}
    if experiment_id is not None:
        names = {v.key: v.name for v in variants_of(session, experiment_id)}
    keys = list(names) + sorted(k for k in rows if k not in names)
    return [VariantClicks(key, names.get(key, key), *rows.get(key, (0, 0, 0))) for key in keys]
