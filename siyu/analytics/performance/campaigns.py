"""Campaign and SOP results in one table: broadcasts started and journeys active in the period.

Broadcasts: treated vs holdout conversion and the uplift with its 95 % interval, exactly as the
broadcast's own result page (`siyu.campaigns.results.broadcast_results`, intention to treat).

Journeys (SOP) keep no holdout, so there is no uplift: a journey's row covers only its messages
planned in the period (every send step, suppressed and failed ones included). "Treated" is the
distinct customers those messages were planned for; a customer converts once, when the journey's
goal is met within the goal's window after any of their messages (anchored at `sent_at`, or at
`planned_at` for messages never sent); GMV is the net of the distinct orders paid within any of
those windows. The rate is converted customers ÷ treated customers.

One page holds at most `MAX_ROWS` broadcasts (most recently started) and `MAX_ROWS` journeys (most
recent first); `offset` pages through both, and the result says whether more are left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from siyu.analytics.performance.common import reader
from siyu.analytics.periods import Period, parse_whole, workspace_zone
from siyu.auth.permissions import Actor, Scope
from siyu.campaigns.results import broadcast_results
from siyu.campaigns.results.counts import SENT_STATES, normalise_goal, plus_days
from siyu.campaigns.results.stats import Uplift
from siyu.kit.clock import Clock
from siyu.models import (
    Broadcast,
    BroadcastStatus,
    CustomerEvent,
    Delivery,
    Journey,
    JourneyStatus,
    Order,
    OrderStatus,
    ShortLinkClick,
)

MAX_ROWS = 50
"""At most this many broadcasts and as many journeys per page of the report."""
MAX_OFFSET = 1_000_000


@dataclass(frozen=True)
class CampaignRow:
    kind: str
    """"broadcast" or "journey"."""
    id: int
    name: str
    started_at: datetime | None
    planned: int
    sent: int
    treated: int
    treated_conversions: int
    treated_rate: float | None
    treated_gmv_fen: int
    holdout: int | None
    holdout_conversions: int | None
    holdout_rate: float | None
    holdout_gmv_fen: int | None
    uplift: Uplift | None

    @property
    def url(self) -> str:
        return f"/broadcasts/{self.id}" if self.kind == "broadcast" else f"/journeys/{self.id}"


@dataclass(frozen=True)
class CampaignResult:
    period: Period
    rows: list[CampaignRow]
    zone: ZoneInfo
    """The brand's zone: the start day shown is the brand-local day."""
    offset: int = 0
    limit: int = MAX_ROWS
    more: bool = False
    """More broadcasts or journeys after this page (`offset + limit`)."""


def parse_offset(value: str | None) -> int:
    """The page offset typed in a query: a whole number from 0 to `MAX_OFFSET` (`InvalidInput` naming "offset")."""
    return parse_whole(value, "offset", low=0, high=MAX_OFFSET, default=0)


def campaign_results(
    session: Session, *, actor: Actor, period: Period, clock: Clock, offset: int = 0, limit: int = MAX_ROWS
) -> CampaignResult:
    """Broadcasts started in `period` and journeys that planned messages in it, with their results.

    At most `limit` of each, from `offset` (broadcasts by start time, journeys by id, newest first).
    """
    as_reader = reader(actor, Scope.TOUCH_READ)
    ws = actor.workspace_id
    zone = workspace_zone(session, ws)
    start, end = period.utc_bounds(zone)
    rows: list[CampaignRow] = []
    broadcasts = session.scalars(
        select(Broadcast)
        .where(
            Broadcast.workspace_id == ws,
            Broadcast.status.not_in([BroadcastStatus.DRAFT, BroadcastStatus.PENDING_APPROVAL]),
            Broadcast.started_at >= start,
            Broadcast.started_at < end,
        )
        .order_by(Broadcast.started_at.desc(), Broadcast.id.desc())
        .offset(offset)
        .limit(limit + 1)
    ).all()
    more = len(broadcasts) > limit
    for b in broadcasts[:limit]:
        r = broadcast_results(session, actor=as_reader, broadcast_id=b.id, clock=clock)
        rows.append(
            CampaignRow(
                kind="broadcast",
                id=b.id,
                name=b.name,
                started_at=b.started_at,
                planned=r.planned,
                sent=r.sent,
                treated=r.treated.customers,
                treated_conversions=r.treated.conversions,
                treated_rate=r.treated.rate if r.treated.customers else None,
                treated_gmv_fen=r.treated.gmv_fen,
                holdout=r.holdout.customers if r.holdout else None,
                holdout_conversions=r.holdout.conversions if r.holdout else None,
                holdout_rate=r.holdout.rate if r.holdout else None,
                holdout_gmv_fen=r.holdout.gmv_fen if r.holdout else None,
                uplift=r.uplift,
            )
        )
    in_period = [
        Delivery.workspace_id == ws,
        Delivery.source == "journey",
        Delivery.planned_at >= start,
        Delivery.planned_at < end,
    ]
    journeys = session.scalars(
        select(Journey)
        .where(
            Journey.workspace_id == ws,
            Journey.status != JourneyStatus.DRAFT,
            Journey.id.in_(select(Delivery.source_id).where(*in_period).distinct()),
        )
        .order_by(Journey.id.desc())
        .offset(offset)
        .limit(limit + 1)
    ).all()
    more = more or len(journeys) > limit
    journeys = journeys[:limit]
    sent = case((Delivery.status.in_(SENT_STATES) | Delivery.sent_at.is_not(None), 1), else_=0)
    counts = {
        int(source_id): (int(planned), int(sent_n or 0), int(customers))
        for source_id, planned, sent_n, customers in session.execute(
            select(Delivery.source_id, func.count(), func.sum(sent), func.count(func.distinct(Delivery.customer_id)))
            .where(*in_period, Delivery.source_id.in_([j.id for j in journeys]))
            .group_by(Delivery.source_id)
        )
    }
    for j in journeys:
        planned, sent_n, customers = counts.get(j.id, (0, 0, 0))
        converted, gmv = journey_outcome(session, journey=j, start=start, end=end)
        rows.append(
            CampaignRow(
                kind="journey",
                id=j.id,
                name=j.name,
                started_at=j.activated_at,
                planned=planned,
                sent=sent_n,
                treated=customers,
                treated_conversions=converted,
                treated_rate=converted / customers if customers else None,
                treated_gmv_fen=gmv,
                holdout=None,
                holdout_conversions=None,
                holdout_rate=None,
                holdout_gmv_fen=None,
                uplift=None,
            )
        )
    return CampaignResult(period=period, rows=rows, zone=zone, offset=offset, limit=limit, more=more)


def journey_outcome(session: Session, *, journey: Journey, start: datetime, end: datetime) -> tuple[int, int]:
    """(converted distinct customers, net GMV of distinct orders) of the journey's messages planned in [start, end).

    The goal as on the journey's own result page (default: an order within 7 days).
    """
    goal = normalise_goal(journey.goal if (journey.goal or {}).get("type") in ("order", "click", "event") else None)
    ws = journey.workspace_id
    rows = (
        select(
            Delivery.customer_id,
            Delivery.short_link_id,
            func.coalesce(Delivery.sent_at, Delivery.planned_at).label("anchor"),
        )
        .where(
            Delivery.workspace_id == ws,
            Delivery.source == "journey",
            Delivery.source_id == journey.id,
            Delivery.planned_at >= start,
            Delivery.planned_at < end,
        )
        .subquery("messages")
    )
    until = plus_days(session, rows.c.anchor, int(goal["days"]))
    orders = (
        select(Order.id, Order.customer_id, (Order.total_fen - Order.refunded_fen).label("net"), Order.status)
        .join(
            rows,
            and_(
                Order.customer_id == rows.c.customer_id,
                Order.workspace_id == ws,
                Order.paid_at >= rows.c.anchor,
                Order.paid_at < until,
            ),
        )
        .distinct()
        .subquery("orders")
    )
    paid = case((orders.c.status != OrderStatus.REFUNDED, orders.c.customer_id), else_=None)
    converted, gmv = session.execute(select(func.count(func.distinct(paid)), func.sum(orders.c.net))).one()
    if goal["type"] == "order":
        return int(converted or 0), int(gmv or 0)
    hit: Any
    if goal["type"] == "click":
        hit = (
            select(ShortLinkClick.id)
            .where(
                ShortLinkClick.link_id == rows.c.short_link_id,
                ShortLinkClick.clicked_at >= rows.c.anchor,
                ShortLinkClick.clicked_at < until,
            )
            .exists()
        )
    else:
        hit = (
            select(CustomerEvent.id)
            .where(
                CustomerEvent.workspace_id == ws,
                CustomerEvent.customer_id == rows.c.customer_id,
                CustomerEvent.type == str(goal["event_type"]),
                CustomerEvent.occurred_at >= rows.c.anchor,
                CustomerEvent.occurred_at < until,
            )
            .exists()
        )
    met = session.scalar(select(func.count(func.distinct(rows.c.customer_id))).select_from(rows).where(hit))
    return int(met or 0), int(gmv or 0)
