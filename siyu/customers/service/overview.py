"""The home-page overview of the pool: size, open relationships, adds and deletions per day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.customers import repository
from siyu.kit.clock import Clock
from siyu.models import Customer, Relationship, Workspace

KPI_DAYS = 30
CHART_DAYS = 90


@dataclass
class DailyPoint:
    day: date
    adds: int
    deletions: int


@dataclass
class Overview:
    """What the home page shows; counts are limited to the part of the pool the actor sees."""

    pool_size: int
    open_relationships: int
    adds_30d: int
    deletions_30d: int
    daily: list[DailyPoint]
    """One point per local calendar day, oldest first, the last `CHART_DAYS` days up to today."""


def _local_day(session: Session, column: Any, tz: ZoneInfo, now: datetime) -> ColumnElement[str]:
    """The brand-local calendar day of a UTC timestamp column, as ISO text, on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone(tz.key, column), "YYYY-MM-DD")
    # SQLite stores naive UTC text: shift by the zone's current offset (no DST in Chinese zones).
    offset = now.astimezone(tz).utcoffset() or timedelta(0)
    return func.date(column, f"{int(offset.total_seconds())} seconds")


def _relationships(actor: Actor) -> ColumnElement[bool]:
    """Relationships of customers the actor may see."""
    return Relationship.customer_id.in_(
        select(Customer.id).where(Customer.workspace_id == actor.workspace_id, repository.visibility_clause(actor))
    )


def overview(session: Session, actor: Actor, clock: Clock) -> Overview:
    """Pool size, open relationships, adds/deletions in the last 30 days and a 90-day daily series."""
    actor.require(Scope.CUSTOMERS_READ)
    workspace = session.get(Workspace, actor.workspace_id)
    tz = ZoneInfo(workspace.timezone if workspace else "Asia/Shanghai")
    now = clock.now()
    pool_size = session.scalar(repository.pool_query(actor).with_only_columns(func.count(Customer.id)).order_by(None))
    visible = _relationships(actor)
    open_count = session.scalar(
        select(func.count(Relationship.id)).where(
            Relationship.workspace_id == actor.workspace_id, Relationship.removed_at.is_(None), visible
        )
    )
    since_kpi = now - timedelta(days=KPI_DAYS)
    adds_30d = session.scalar(
        select(func.count(Relationship.id)).where(
            Relationship.workspace_id == actor.workspace_id, Relationship.added_at >= since_kpi, visible
        )
    )
    deletions_30d = session.scalar(
        select(func.count(Relationship.id)).where(
            Relationship.workspace_id == actor.workspace_id, Relationship.removed_at >= since_kpi, visible
        )
    )
    today = now.astimezone(tz).date()
    first_day = today - timedelta(days=CHART_DAYS - 1)
    chart_start = datetime.combine(first_day, datetime.min.time(), tzinfo=tz).astimezone(UTC)
    series: dict[str, list[int]] = {}
    for index, column in enumerate((Relationship.added_at, Relationship.removed_at)):
        day = _local_day(session, column, tz, now).label("day")
        rows = session.execute(
            select(day, func.count(Relationship.id))
            .where(Relationship.workspace_id == actor.workspace_id, column >= chart_start, visible)
            .group_by(day)
        ).all()
        for key, count in rows:
            series.setdefault(str(key), [0, 0])[index] = int(count)
    daily = []
    for offset in range(CHART_DAYS):
        day_ = first_day + timedelta(days=offset)
        adds, deletions = series.get(day_.isoformat(), [0, 0])
        daily.append(DailyPoint(day=day_, adds=adds, deletions=deletions))
    return Overview(
        pool_size=int(pool_size or 0),
        open_relationships=int(open_count or 0),
        adds_30d=int(adds_30d or 0),
        deletions_30d=int(deletions_30d or 0),
        daily=daily,
    )
