"""The SQL behind channel metrics: which adds count for a channel, and which orders follow them.

Every function runs one aggregate query (GROUP BY channel and brand-local day) over the whole
workspace, whatever the number of channels, and reads the same on SQLite and PostgreSQL.
See docs/channels.md for the definitions these queries implement.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import CTE, Subquery, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from siyu.channels.repository import local_day, plus_days
from siyu.models import (
    Channel,
    ChannelCostEntry,
    CostModel,
    LiveCodeScan,
    Order,
    Relationship,
    RemovedBy,
    ShortLink,
    ShortLinkClick,
)

DELETION_WINDOWS = (7, 30)
"""Days after an add within which a removal counts towards the 7- and 30-day deletion rates."""


class Attribution(StrEnum):
    """Which adds of a customer a channel is credited with."""

    FIRST_TOUCH = "first_touch"
    """The customer's earliest add with a channel, ever; each customer counts once."""
    LAST_TOUCH = "last_touch"
    """Every add with a channel; each order goes to the latest such add at or before payment."""


@dataclass(frozen=True)
class Scope:
    """What one report reads: a workspace, a UTC half-open interval and the brand calendar."""

    workspace_id: int
    start: datetime
    """UTC instant the first day begins (brand time zone)."""
    end: datetime
    """UTC instant after the last day ends."""
    date_from: date
    date_to: date
    tz: ZoneInfo
    now: datetime
    attribution: Attribution
    window_days: int
    channel_ids: Collection[int] | None = None
    """Only these channels (None: all)."""


Key = tuple[int, date]
"""(channel id, brand-local day)."""


def _day(scope: Scope, text: Any) -> date:
    """A day as the database returned it; kept inside the range (SQLite's fixed offset, see `local_day`)."""
    value = text if isinstance(text, date) else date.fromisoformat(str(text)[:10])
    return min(max(value, scope.date_from), scope.date_to)


def _channel_filter(scope: Scope, column: Any) -> Any:
    return column.is_not(None) if scope.channel_ids is None else column.in_(list(scope.channel_ids))


def touches(session: Session, scope: Scope) -> CTE:
    """The adds credited to channels in the range, one row per add (relationship).

    Last touch: every relationship with a channel added in the range. First touch: only a
    customer's earliest relationship with a channel ever (ties broken by id), when that falls in
    the range — an anti-join on the customer's earlier relationships (customer_id index), so
    only the range's adds are read, never the whole table. Materialised: read twice, built once.
    """
    touch = aliased(Relationship, name="touch")
    query = select(
        touch.id,
        touch.customer_id,
        touch.channel_id,
        touch.added_at,
        touch.removed_at,
        touch.removed_by,
    ).where(
        touch.workspace_id == scope.workspace_id,
        _channel_filter(scope, touch.channel_id),
        touch.added_at >= scope.start,
        touch.added_at < scope.end,
    )
    if scope.attribution == Attribution.FIRST_TOUCH:
        earlier = aliased(Relationship, name="earlier")
        query = query.where(
            ~exists().where(
                earlier.workspace_id == scope.workspace_id,
                earlier.customer_id == touch.customer_id,
                earlier.channel_id.is_not(None),
                or_(earlier.added_at < touch.added_at, and_(earlier.added_at == touch.added_at, earlier.id < touch.id)),
            )
        )
    return query.cte("touches").prefix_with("MATERIALIZED")


def credited_orders(session: Session, scope: Scope, t: CTE) -> Subquery:
    """Per add (touch): GMV and CPS commission of the orders credited to it (adds with none are absent).

    An order is credited to an add when it is paid at or after the add and less than
    `window_days` after it, and the customer had paid no order before the add (a new buyer).
    Last touch also needs the add to be the customer's latest add with a channel at or before
    payment. GMV is `total_fen - refunded_fen`; CPS commission is rounded half up per order.
    """
    order = aliased(Order, name="o")
    before = aliased(Order, name="before")
    net = order.total_fen - order.refunded_fen
    conditions: list[Any] = [
        order.workspace_id == scope.workspace_id,
        order.customer_id == t.c.customer_id,
        order.paid_at >= t.c.added_at,
        order.paid_at < plus_days(session, t.c.added_at, scope.window_days),
        ~exists().where(
            before.workspace_id == scope.workspace_id,
            before.customer_id == t.c.customer_id,
            before.paid_at < t.c.added_at,
        ),
    ]
    if scope.attribution == Attribution.LAST_TOUCH:
        later = aliased(Relationship, name="later")
        conditions.append(
            ~exists().where(
                later.workspace_id == scope.workspace_id,
                later.customer_id == t.c.customer_id,
                later.channel_id.is_not(None),
                later.added_at <= order.paid_at,
                or_(later.added_at > t.c.added_at, and_(later.added_at == t.c.added_at, later.id > t.c.id)),
            )
        )
    commission = case(
        (
            Channel.cost_model == CostModel.CPS.value,
            (net * func.coalesce(Channel.cps_basis_points, 0) + 5000) // 10000,
        ),
        else_=0,
    )
    return (
        select(t.c.id.label("touch_id"), func.sum(net).label("gmv_fen"), func.sum(commission).label("cps_cost_fen"))
        .select_from(t)
        .join(order, and_(*conditions))
        .join(Channel, Channel.id == t.c.channel_id)
        .group_by(t.c.id)
        .subquery("credited")
    )


def touch_counts(session: Session, scope: Scope) -> dict[Key, dict[str, int]]:
    """Adds per channel and brand-local day of the add, with what followed them, in one query.

    - `adds`: the touches (see `touches`).
    - For each window n in (7, 30): `matured_<n>d` adds at least n days old at `scope.now`;
      `deleted_<n>d` of those removed (by either side) less than n days after the add;
      `deleted_by_customer_<n>d` of those removed by the customer.
    - `first_orders`: adds with at least one credited order — the customer's first-ever order is
      among them, as no order came before the add; `gmv_fen`, `cps_cost_fen`: their orders' sums
      (see `credited_orders`), counted on the day of the add.
    """
    t = touches(session, scope)
    credited = credited_orders(session, scope, t)
    day = local_day(session, t.c.added_at, scope.tz, scope.start).label("day")
    columns: list[Any] = [t.c.channel_id, day, func.count().label("adds")]
    for days in DELETION_WINDOWS:
        matured = t.c.added_at <= scope.now - timedelta(days=days)
        deleted = and_(
            matured,
            t.c.removed_at.is_not(None),
            t.c.removed_at < plus_days(session, t.c.added_at, days),
            # handed to another staff member (在职/离职继承) is not a deletion: the customer stays
            or_(t.c.removed_by.is_(None), t.c.removed_by != RemovedBy.TRANSFERRED.value),
        )
        by_customer = and_(deleted, t.c.removed_by == RemovedBy.CUSTOMER.value)
        columns += [
            func.sum(case((matured, 1), else_=0)).label(f"matured_{days}d"),
            func.sum(case((deleted, 1), else_=0)).label(f"deleted_{days}d"),
            func.sum(case((by_customer, 1), else_=0)).label(f"deleted_by_customer_{days}d"),
        ]
    columns += [
        func.count(credited.c.touch_id).label("first_orders"),
        func.sum(credited.c.gmv_fen).label("gmv_fen"),
        func.sum(credited.c.cps_cost_fen).label("cps_cost_fen"),
    ]
    query = (
        select(*columns).select_from(t).outerjoin(credited, credited.c.touch_id == t.c.id).group_by(t.c.channel_id, day)
    )
    out: dict[Key, dict[str, int]] = {}
    for row in session.execute(query).mappings():
        counts = out.setdefault((int(row["channel_id"]), _day(scope, row["day"])), {})
        for name, value in row.items():
            if name not in ("channel_id", "day"):
                counts[name] = counts.get(name, 0) + int(value or 0)
    return out


def scan_counts(session: Session, scope: Scope) -> dict[Key, int]:
    """Live code scans per channel and day (the scan's own channel)."""
    day = local_day(session, LiveCodeScan.scanned_at, scope.tz, scope.start).label("day")
    query = (
        select(LiveCodeScan.channel_id, day, func.count())
        .where(
            LiveCodeScan.workspace_id == scope.workspace_id,
            _channel_filter(scope, LiveCodeScan.channel_id),
            LiveCodeScan.scanned_at >= scope.start,
            LiveCodeScan.scanned_at < scope.end,
        )
        .group_by(LiveCodeScan.channel_id, day)
    )
    return _summed(scope, session.execute(query).all())


def click_counts(session: Session, scope: Scope) -> dict[Key, int]:
    """Short link clicks per channel and day; a click belongs to the channel of its campaign link."""
    campaign = aliased(ShortLink, name="campaign")
    day = local_day(session, ShortLinkClick.clicked_at, scope.tz, scope.start).label("day")
    query = (
        select(campaign.channel_id, day, func.count())
        .select_from(ShortLinkClick)
        .join(campaign, campaign.id == ShortLinkClick.campaign_link_id)
        .where(
            ShortLinkClick.workspace_id == scope.workspace_id,
            campaign.workspace_id == scope.workspace_id,
            _channel_filter(scope, campaign.channel_id),
            ShortLinkClick.clicked_at >= scope.start,
            ShortLinkClick.clicked_at < scope.end,
        )
        .group_by(campaign.channel_id, day)
    )
    return _summed(scope, session.execute(query).all())


def cost_counts(session: Session, scope: Scope) -> dict[Key, tuple[int, int | None]]:
    """(Money in fen, exposures or None when none reported) per channel and day of cost entries."""
    query = (
        select(
            ChannelCostEntry.channel_id,
            ChannelCostEntry.spent_on,
            func.sum(ChannelCostEntry.amount_fen),
            func.sum(ChannelCostEntry.exposures),
        )
        .where(
            ChannelCostEntry.workspace_id == scope.workspace_id,
            _channel_filter(scope, ChannelCostEntry.channel_id),
            ChannelCostEntry.spent_on >= scope.date_from,
            ChannelCostEntry.spent_on <= scope.date_to,
        )
        .group_by(ChannelCostEntry.channel_id, ChannelCostEntry.spent_on)
    )
    return {
        (int(channel_id), _day(scope, spent_on)): (int(amount or 0), None if exposures is None else int(exposures))
        for channel_id, spent_on, amount, exposures in session.execute(query).all()
    }


def _summed(scope: Scope, rows: Any) -> dict[Key, int]:
    out: dict[Key, int] = {}
    for channel_id, day, count in rows:
        key = (int(channel_id), _day(scope, day))
        out[key] = out.get(key, 0) + int(count)
    return out
