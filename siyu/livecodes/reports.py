"""What the console and API show about live codes: scan logs, per-code and per-route figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.livecodes.routing import routes_taken_on
from siyu.models import LiveCodeScan


@dataclass(frozen=True)
class CodeFigures:
    scans: int
    unique_visitors: int
    adds: int
    scans_today: int
    adds_today: int

    @property
    def add_rate(self) -> float | None:
        return self.adds / self.scans if self.scans else None


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC start and end of a brand-local day."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    return start, start + timedelta(days=1)


def figures_by_code(
    session: Session, code_ids: Sequence[int], *, now: datetime, tz: ZoneInfo
) -> dict[int, CodeFigures]:
    """Scans, unique visitors and adds per code, all time and today, in two grouped queries."""
    if not code_ids:
        return {}
    start, end = day_bounds(now.astimezone(tz).date(), tz)
    today = and_(LiveCodeScan.scanned_at >= start, LiveCodeScan.scanned_at < end)
    rows = session.execute(
        select(
            LiveCodeScan.live_code_id,
            func.count(),
            func.count(func.distinct(LiveCodeScan.visitor_id)),
            func.count(LiveCodeScan.customer_id),
            func.count().filter(today),
            func.count(LiveCodeScan.customer_id).filter(today),
        )
        .where(LiveCodeScan.live_code_id.in_(code_ids))
        .group_by(LiveCodeScan.live_code_id)
    ).all()
    found = {row[0]: CodeFigures(*(int(v) for v in row[1:])) for row in rows}
    return {code_id: found.get(code_id, CodeFigures(0, 0, 0, 0, 0)) for code_id in code_ids}


def taken_today(session: Session, route_ids: Sequence[int], *, now: datetime, tz: ZoneInfo) -> dict[int, int]:
    return routes_taken_on(session, route_ids, now.astimezone(tz).date())


def scan_log(
    session: Session, *, workspace_id: int, live_code_id: int, cursor: str | None = None, limit: int = 50
) -> Page[LiveCodeScan]:
    """A code's scans, newest first, cursor-paginated."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(LiveCodeScan).where(
        LiveCodeScan.workspace_id == workspace_id, LiveCodeScan.live_code_id == live_code_id
    )
    if cursor:
        query = query.where(LiveCodeScan.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(LiveCodeScan.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)
