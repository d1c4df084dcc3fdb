"""The results of one broadcast: delivery numbers, variants, arms, uplift and staff completion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor, Scope
from siyu.campaigns.broadcasts.service import get_broadcast
from siyu.campaigns.results.counts import (
    DELIVERED_STATES,
    SENT_STATES,
    StatusCounts,
    conversions,
    normalise_goal,
    status_groups,
)
from siyu.campaigns.results.stats import Arm, Uplift, uplift
from siyu.kit.clock import Clock
from siyu.models import Broadcast, Delivery, DeliveryStatus, Staff


@dataclass(frozen=True)
class VariantResults:
    """One A/B variant's treated customers (holdout excluded) and what they did."""

    key: str
    content_id: int | None
    recipients: int
    """Treated audience rows given this variant, sent or not (intention to treat)."""
    sent: int
    clicked: int
    conversions: int
    gmv_fen: int


@dataclass(frozen=True)
class StaffCompletion:
    """How much of what was assigned to a staff member's WeCom account went out."""

    staff_id: int
    name: str
    assigned: int
    sent: int
    delivered: int


@dataclass(frozen=True)
class BroadcastResults:
    broadcast: Broadcast
    planned: int
    """Every audience row: holdout, suppressed, queued, sent, failed…"""
    by_status: dict[str, int]
    suppressed_by_reason: dict[str, int]
    sent: int
    delivered: int
    read: int
    failed: int
    clicked: int
    """Rows whose per-recipient short link has at least one click."""
    unsubscribed: int
    """Rows whose own unsubscribe link was used."""
    variants: list[VariantResults]
    treated: Arm
    """Every non-holdout row, suppressed and failed ones included (intention to treat)."""
    holdout: Arm | None
    """None when the broadcast kept no holdout rows."""
    uplift: Uplift | None
    goal: dict[str, Any]
    """The goal as measured (`is_default` when the broadcast named none)."""
    staff: list[StaffCompletion]


def _rows_of(broadcast: Broadcast) -> list[ColumnElement[bool]]:
    return [
        Delivery.workspace_id == broadcast.workspace_id,
        Delivery.source == "broadcast",
        Delivery.source_id == broadcast.id,
        Delivery.step == "",
    ]


def broadcast_results(session: Session, *, actor: Actor, broadcast_id: int, clock: Clock) -> BroadcastResults:
    """What a broadcast did and what it was worth against its holdout (touch:read).

    Intention to treat: the treated arm is every audience row outside the holdout, including the
    ones the policy suppressed or the provider failed. The holdout was drawn at random from the
    same audience, so only this comparison is unbiased; counting only delivered customers would
    compare the reachable (usually the more engaged) with everyone. Rows never sent are measured
    from the broadcast's start, sent ones from their `sent_at`. Read-only: nothing is written.
    """
    actor.require(Scope.TOUCH_READ)
    broadcast = get_broadcast(session, actor, broadcast_id)
    where = _rows_of(broadcast)
    goal = normalise_goal(broadcast.goal)
    total = StatusCounts()
    by_variant: dict[str, StatusCounts] = {}
    variant_content: dict[str, int | None] = {}
    for row in status_groups(session, where, extra=[Delivery.variant, Delivery.content_id]):
        total.add_group(row.status, row.reason, row)
        if row.status == DeliveryStatus.HOLDOUT or row.variant is None:
            continue
        by_variant.setdefault(row.variant, StatusCounts()).add_group(row.status, row.reason, row)
        variant_content.setdefault(row.variant, row.content_id)
    is_holdout = case((Delivery.status == DeliveryStatus.HOLDOUT, 1), else_=0)
    anchor = broadcast.started_at or broadcast.planned_at or clock.now()
    outcomes = conversions(
        session,
        workspace_id=broadcast.workspace_id,
        where=where,
        goal=goal,
        fallback_anchor=anchor,
        group=[is_holdout, Delivery.variant],
        since=anchor,  # every row is sent after the broadcast started
    )
    holdout_rows = total.by_status.get(DeliveryStatus.HOLDOUT, 0)
    treated = Arm(
        customers=total.planned - holdout_rows,
        conversions=sum(o.conversions for (h, _), o in outcomes.items() if h == 0),
        gmv_fen=sum(o.gmv_fen for (h, _), o in outcomes.items() if h == 0),
    )
    holdout = (
        Arm(
            customers=holdout_rows,
            conversions=sum(o.conversions for (h, _), o in outcomes.items() if h == 1),
            gmv_fen=sum(o.gmv_fen for (h, _), o in outcomes.items() if h == 1),
        )
        if holdout_rows
        else None
    )
    keys = [str(v["key"]) for v in broadcast.variants] + sorted(
        set(by_variant) - {str(v["key"]) for v in broadcast.variants}
    )
    variants = []
    for key in keys:
        counts = by_variant.get(key, StatusCounts())
        outcome = outcomes.get((0, key))
        configured = next((v.get("content_id") for v in broadcast.variants if str(v["key"]) == key), None)
        variants.append(
            VariantResults(
                key=key,
                content_id=variant_content.get(key, configured),
                recipients=counts.planned,
                sent=counts.sent,
                clicked=counts.clicked,
                conversions=outcome.conversions if outcome else 0,
                gmv_fen=outcome.gmv_fen if outcome else 0,
            )
        )
    return BroadcastResults(
        broadcast=broadcast,
        planned=total.planned,
        by_status=dict(total.by_status),
        suppressed_by_reason=dict(total.suppressed_by_reason),
        sent=total.sent,
        delivered=total.delivered,
        read=total.read,
        failed=total.failed,
        clicked=total.clicked,
        unsubscribed=total.unsubscribed,
        variants=variants,
        treated=treated,
        holdout=holdout,
        uplift=uplift(treated, holdout),
        goal=goal,
        staff=staff_completion(session, where),
    )


def staff_completion(session: Session, where: list[ColumnElement[bool]]) -> list[StaffCompletion]:
    """Per staff member whose WeCom account sends (rows with a `staff_id`): assigned, sent, delivered."""
    sent = case((Delivery.status.in_(SENT_STATES) | Delivery.sent_at.is_not(None), 1), else_=0)
    delivered = case((Delivery.status.in_(DELIVERED_STATES) | Delivery.delivered_at.is_not(None), 1), else_=0)
    statement = (
        select(
            Delivery.staff_id,
            Staff.name,
            func.count().label("assigned"),
            func.sum(sent).label("sent"),
            func.sum(delivered).label("delivered"),
        )
        .join(Staff, Staff.id == Delivery.staff_id)
        .where(*where, Delivery.staff_id.is_not(None))
        .group_by(Delivery.staff_id, Staff.name)
        .order_by(Delivery.staff_id)
    )
    return [
        StaffCompletion(
            staff_id=int(row.staff_id),
            name=row.name,
            assigned=int(row.assigned),
            sent=int(row.sent or 0),
            delivered=int(row.delivered or 0),
        )
        for row in session.execute(statement)
    ]
