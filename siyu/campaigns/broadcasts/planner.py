"""Planning a broadcast in batches: stream the segment's members in id order, plan each batch in
its own transaction, and move `planned_through` forward in that same transaction.

A planner killed anywhere resumes after the last committed batch; two planners of the same
broadcast (a job delivered twice) serialise on the broadcast row and the second one stops as
soon as it sees the first one ahead of it. Memory stays flat: one batch of ids at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.campaigns.broadcasts.service import audience_size, coupon_template_of
from siyu.commerce.coupons.issuing import issue_coupon
from siyu.db import Database
from siyu.kit.clock import Clock
from siyu.kit.errors import DomainError
from siyu.messaging import admission
from siyu.messaging.content import content_hash
from siyu.messaging.planning import PlanCounts, PlanSpec, Variant, plan_batch
from siyu.models import (
    Broadcast,
    BroadcastStatus,
    ChannelAccount,
    ContentItem,
    Customer,
    Delivery,
    DeliveryStatus,
    QuietHoursMode,
    Segment,
)
from siyu.segments.service.members import member_ids
from siyu.workspaces.scope import bind_workspace

BATCH_SIZE = 2000


def spec_for(session: Session, broadcast: Broadcast, send_at: datetime) -> PlanSpec:
    """The plan of a broadcast: its accounts in preference order and its variants."""
    accounts = {
        a.id: a
        for a in session.scalars(select(ChannelAccount).where(ChannelAccount.id.in_(broadcast.channel_account_ids)))
    }
    contents = {
        c.id: c
        for c in session.scalars(
            select(ContentItem).where(ContentItem.id.in_([v["content_id"] for v in broadcast.variants]))
        )
    }
    return PlanSpec(
        source="broadcast",
        source_id=broadcast.id,
        step="",
        accounts=[accounts[i] for i in broadcast.channel_account_ids if i in accounts and accounts[i].is_active],
        variants=[
            Variant(v["key"], v["content_id"], content_hash(contents[v["content_id"]]), int(v.get("weight", 1)))
            for v in broadcast.variants
            if v["content_id"] in contents
        ],
        send_at=send_at,
        priority=broadcast.priority,
        holdout_pct=broadcast.holdout_pct,
        hold_quiet_hours=broadcast.quiet_hours == QuietHoursMode.HOLD,
        salt=f"broadcast:{broadcast.id}",
    )


def attach_coupons(
    session: Session, broadcast: Broadcast, template_id: int, ids: list[int], clock: Clock, counts: PlanCounts
) -> None:
    """Issue each queued recipient of the batch a coupon (key `broadcast:{id}:c{customer}`, so a
    re-planned batch issues nothing twice) and put its code in the delivery's variables. Holdout
    and suppressed recipients get none. A recipient the template cannot serve (out of stock, at
    their limit) is suppressed with the error's code as reason, and their cap slot given back."""
    rows = session.scalars(
        select(Delivery)
        .where(
            Delivery.workspace_id == broadcast.workspace_id,
            Delivery.source == "broadcast",
            Delivery.source_id == broadcast.id,
            Delivery.step == "",
            Delivery.customer_id.in_(ids),
            Delivery.status == DeliveryStatus.QUEUED,
        )
        .order_by(Delivery.customer_id)
    ).all()
    refused: list[Delivery] = []
    for delivery in rows:
        try:
            with session.begin_nested():
                coupon = issue_coupon(
                    session,
                    workspace_id=broadcast.workspace_id,
                    template_id=template_id,
                    customer_id=delivery.customer_id,
                    source=f"broadcast:{broadcast.id}",
                    idempotency_key=f"broadcast:{broadcast.id}:c{delivery.customer_id}",
                    clock=clock,
                    actor_label=f"broadcast:{broadcast.id}",
                )
        except DomainError as exc:
            delivery.status, delivery.reason = DeliveryStatus.SUPPRESSED, exc.code[:30]
            counts.by_status[str(DeliveryStatus.QUEUED)] -= 1
            counts.by_status[str(DeliveryStatus.SUPPRESSED)] += 1
            counts.by_reason[exc.code[:30]] += 1
            refused.append(delivery)
            continue
        message = dict(delivery.message or {})
        message["vars"] = {**(message.get("vars") or {}), "coupon_code": coupon.code}
        delivery.message = message
    admission.release_slots(session, refused, clock)


def start_planning(database: Database, workspace_id: int, broadcast_id: int, clock: Clock) -> datetime | None:
    """Move a due broadcast to `planning`; returns its start time (the "now" its segment is
    evaluated at, the same for every batch), or None when it is not ready to plan."""
    with database.transaction() as session:
        bind_workspace(session, workspace_id)
        broadcast = session.scalar(select(Broadcast).where(Broadcast.id == broadcast_id).with_for_update())
        if broadcast is None:
            return None
        if broadcast.status == BroadcastStatus.SCHEDULED:
            if broadcast.scheduled_at is not None and broadcast.scheduled_at > clock.now():
                return None
            # The segment may have grown since it was submitted (a scheduled send, an edited
            # definition, a new upload): over the threshold without an approval, it waits for one.
            size = audience_size(session, broadcast, clock)
            if size > admission.approval_threshold(session, workspace_id) and broadcast.approved_at is None:
                broadcast.status, broadcast.audience_size = BroadcastStatus.PENDING_APPROVAL, size
                return None
            broadcast.status, broadcast.started_at = BroadcastStatus.PLANNING, clock.now()
        if broadcast.status != BroadcastStatus.PLANNING or broadcast.started_at is None:
            return None
        return broadcast.started_at


def _member_batches(database: Database, segment: Segment, after: int, at: datetime, size: int) -> Iterator[list[int]]:
    with database.transaction(read_only=True) as session:
        statement = member_ids(session, segment, now=at, extra=Customer.id > after).order_by(Customer.id)
        result = session.execute(statement.execution_options(yield_per=size, siyu_unscoped=True))
        for partition in result.partitions(size):
            yield [row[0] for row in partition]


def run_planning(
    database: Database,
    workspace_id: int,
    broadcast_id: int,
    clock: Clock,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> PlanCounts:
    """Plan every remaining member of a broadcast; returns what this call planned."""
    totals = PlanCounts()
    started = start_planning(database, workspace_id, broadcast_id, clock)
    if started is None:
        return totals
    with database.transaction(read_only=True) as session:
        broadcast = session.get(Broadcast, broadcast_id)
        assert broadcast is not None
        segment = session.get(Segment, broadcast.segment_id)
        after = broadcast.planned_through
        if segment is not None:
            session.expunge(segment)
    if segment is not None:
        for ids in _member_batches(database, segment, after, started, batch_size):
            if not _plan_one(database, workspace_id, broadcast_id, ids, after, started, clock, totals):
                return totals  # cancelled, or another planner is ahead
            after = ids[-1]
            if progress is not None:
                progress(totals.by_status.total())
    with database.transaction() as session:
        bind_workspace(session, workspace_id)
        broadcast = session.scalar(select(Broadcast).where(Broadcast.id == broadcast_id).with_for_update())
        if (
            broadcast is not None
            and broadcast.status == BroadcastStatus.PLANNING
            and broadcast.planned_through == after
        ):
            broadcast.status, broadcast.planned_at = BroadcastStatus.SENDING, clock.now()
    return totals


def _plan_one(
    database: Database,
    workspace_id: int,
    broadcast_id: int,
    ids: list[int],
    expected_through: int,
    started: datetime,
    clock: Clock,
    totals: PlanCounts,
) -> bool:
    with database.transaction() as session:
        bind_workspace(session, workspace_id)
        # The broadcast row is the planning lock: one batch at a time, in order.
        broadcast = session.scalar(select(Broadcast).where(Broadcast.id == broadcast_id).with_for_update())
        if (
            broadcast is None
            or broadcast.status != BroadcastStatus.PLANNING
            or broadcast.planned_through != expected_through
        ):
            return False
        config = admission.load_config(session, workspace_id)
        spec = spec_for(session, broadcast, send_at=max(started, clock.now()))
        counts = plan_batch(session, workspace_id, spec, ids, clock, config)
        if (template_id := coupon_template_of(broadcast)) is not None:
            attach_coupons(session, broadcast, template_id, ids, clock, counts)
        totals.add(counts)
        broadcast.planned_through = ids[-1]
    return True
