"""Broadcast rules: drafting, submitting (approval above the threshold), approving, cancelling.

Lifecycle: draft → (pending_approval →) scheduled → planning → sending → done, or cancelled
from any state before done. Planning and sending run in jobs (see `planner.py`, `tasks.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.campaigns.broadcasts.schemas import BroadcastIn
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput, NotFound
from siyu.messaging import admission, content
from siyu.messaging.adapters import adapter_for
from siyu.models import (
    AdapterKind,
    Broadcast,
    BroadcastStatus,
    ChannelAccount,
    ContentItem,
    CouponTemplate,
    CouponTemplateStatus,
    Delivery,
    DeliveryStatus,
    Segment,
)
from siyu.segments.service.members import member_ids

EDITABLE = (BroadcastStatus.DRAFT, BroadcastStatus.PENDING_APPROVAL)
CANCELLABLE = (
    BroadcastStatus.DRAFT,
    BroadcastStatus.PENDING_APPROVAL,
    BroadcastStatus.SCHEDULED,
    BroadcastStatus.PLANNING,
    BroadcastStatus.SENDING,
)


def get_broadcast(session: Session, actor: Actor, broadcast_id: int, *, for_update: bool = False) -> Broadcast:
    actor.require(Scope.TOUCH_READ)
    query = select(Broadcast).where(Broadcast.id == broadcast_id, Broadcast.workspace_id == actor.workspace_id)
    broadcast = session.scalar(query.with_for_update() if for_update else query)
    if broadcast is None:
        raise NotFound(f"broadcast {broadcast_id} not found")
    return broadcast


def list_broadcasts(session: Session, actor: Actor, *, status: BroadcastStatus | None = None) -> Sequence[Broadcast]:
    actor.require(Scope.TOUCH_READ)
    query = select(Broadcast).where(Broadcast.workspace_id == actor.workspace_id)
    if status is not None:
        query = query.where(Broadcast.status == status)
    return session.scalars(query.order_by(Broadcast.id.desc()).limit(500)).all()


def _check_references(session: Session, actor: Actor, data: BroadcastIn) -> None:
    """Every id must be this workspace's, live, and usable together; errors name the field."""
    segment = session.scalar(
        select(Segment).where(Segment.id == data.segment_id, Segment.workspace_id == actor.workspace_id)
    )
    if segment is None or segment.archived_at is not None:
        raise InvalidInput("unknown or archived segment", details={"field": "segment_id"})
    if data.coupon_template_id is not None:
        template = session.scalar(
            select(CouponTemplate).where(
                CouponTemplate.id == data.coupon_template_id, CouponTemplate.workspace_id == actor.workspace_id
            )
        )
        if template is None or template.status != CouponTemplateStatus.ACTIVE:
            raise InvalidInput("unknown or archived coupon template", details={"field": "coupon_template_id"})
    accounts = {
        a.id: a
        for a in session.scalars(
            select(ChannelAccount).where(
                ChannelAccount.workspace_id == actor.workspace_id, ChannelAccount.id.in_(data.channel_account_ids)
            )
        )
    }
    for index, account_id in enumerate(data.channel_account_ids):
        account = accounts.get(account_id)
        if account is None or not account.is_active:
            raise InvalidInput("unknown or inactive channel account", details={"field": f"channel_account_ids.{index}"})
        if adapter_for(account).capabilities.group_messages:
            raise InvalidInput(
                "group channels post to groups; use a group calendar", details={"field": f"channel_account_ids.{index}"}
            )
    contents = {
        c.id: c
        for c in session.scalars(
            select(ContentItem).where(
                ContentItem.workspace_id == actor.workspace_id,
                ContentItem.id.in_([v.content_id for v in data.variants]),
            )
        )
    }
    for index, variant in enumerate(data.variants):
        item = contents.get(variant.content_id)
        if item is None or item.archived_at is not None:
            raise InvalidInput("unknown or archived content", details={"field": f"variants.{index}.content_id"})
        try:
            used = content.check_content(item)
        except InvalidInput as exc:
            raise InvalidInput(
                f"content {item.name!r}: {exc.message}",
                details={
                    **exc.details,
                    "template_field": exc.details.get("field"),
                    "field": f"variants.{index}.content_id",
                },
            ) from exc
        for account in accounts.values():
            kinds = adapter_for(account).capabilities.content_kinds
            if item.kind not in kinds:
                raise InvalidInput(
                    f"{account.name} cannot send {item.kind} content",
                    details={"field": f"variants.{index}.content_id"},
                )
        unresolvable = _unresolvable(used, list(accounts.values()), has_coupon=data.coupon_template_id is not None)
        if unresolvable:
            variable, why = unresolvable
            raise InvalidInput(
                f"content {item.name!r}: {{{{ {variable} }}}} {why}",
                details={"field": f"variants.{index}.content_id", "variable": variable},
            )


PER_CUSTOMER = {"name", "city", "tier", "points", "unsubscribe_url", "coupon_code"}
"""Variables whose value differs per customer (a WeCom mass message is one text per staff member)."""


def _unresolvable(
    used: set[str], accounts: list[ChannelAccount], *, has_coupon: bool = False
) -> tuple[str, str] | None:
    """A variable this broadcast could not fill for some recipient, with the reason — so it is
    refused now rather than failing every delivery at send time."""
    if "coupon_code" in used and not has_coupon:
        return "coupon_code", "needs a coupon template on the broadcast (coupon_template_id) to issue one each"
    kinds = {AdapterKind(a.kind) for a in accounts}
    if "staff_name" in used and not kinds <= {AdapterKind.WECOM_CUSTOMER}:
        return "staff_name", "needs a WeCom sender; other channels have no staff member"
    if AdapterKind.WECOM_CUSTOMER in kinds:
        for variable in sorted(used & PER_CUSTOMER):
            return variable, "differs per customer, but a WeCom mass message is one text per staff member"
    return None


def _values(data: BroadcastIn) -> dict[str, Any]:
    # The coupon is the campaign's hook (抓手): it is kept with the brief.
    coupon = {"coupon_template_id": data.coupon_template_id} if data.coupon_template_id is not None else {}
    return {
        "name": data.name.strip(),
        "segment_id": data.segment_id,
        "channel_account_ids": list(data.channel_account_ids),
        "variants": [v.model_dump() for v in data.variants],
        "holdout_pct": data.holdout_pct,
        "goal": data.goal.model_dump() if data.goal else {},
        "brief": data.brief.model_dump() | coupon,
        "quiet_hours": data.quiet_hours,
        "scheduled_at": data.scheduled_at,
    }


def create_broadcast(session: Session, *, actor: Actor, data: BroadcastIn, clock: Clock) -> Broadcast:
    """Save a draft; nothing is sent until it is submitted."""
    actor.require(Scope.TOUCH_WRITE)
    _check_references(session, actor, data)
    now = clock.now()
    broadcast = Broadcast(
        workspace_id=actor.workspace_id,
        status=BroadcastStatus.DRAFT,
        created_by=actor.label,
        created_at=now,
        updated_at=now,
        **_values(data),
    )
    session.add(broadcast)
    session.flush()
    record(
        session,
        actor,
        action="create",
        entity_type="broadcast",
        entity_id=broadcast.id,
        after=_values(data) | {"scheduled_at": str(data.scheduled_at)},
        clock=clock,
    )
    return broadcast


def update_broadcast(
    session: Session, *, actor: Actor, broadcast_id: int, data: BroadcastIn, clock: Clock
) -> Broadcast:
    """Change a draft (or one awaiting approval, which goes back to draft)."""
    actor.require(Scope.TOUCH_WRITE)
    broadcast = get_broadcast(session, actor, broadcast_id, for_update=True)
    if broadcast.status not in EDITABLE:
        raise Conflict(f"a {broadcast.status} broadcast cannot be changed", details={"status": str(broadcast.status)})
    _check_references(session, actor, data)
    for key, value in _values(data).items():
        setattr(broadcast, key, value)
    broadcast.status, broadcast.updated_at = BroadcastStatus.DRAFT, clock.now()
    broadcast.approved_by = broadcast.approved_at = None
    record(
        session,
        actor,
        action="update",
        entity_type="broadcast",
        entity_id=broadcast.id,
        after={"name": broadcast.name},
        clock=clock,
    )
    return broadcast


def coupon_template_of(broadcast: Broadcast) -> int | None:
    """The coupon template each recipient of the broadcast is issued, if any."""
    value = (broadcast.brief or {}).get("coupon_template_id")
    return int(value) if value is not None else None


def audience_size(session: Session, broadcast: Broadcast, clock: Clock) -> int:
    segment = session.get(Segment, broadcast.segment_id)
    if segment is None:
        raise InvalidInput("the segment no longer exists", details={"field": "segment_id"})
    ids = member_ids(session, segment, now=clock.now()).subquery()
    return int(session.scalar(select(func.count()).select_from(ids)) or 0)


def submit_broadcast(session: Session, *, actor: Actor, broadcast_id: int, clock: Clock) -> Broadcast:
    """Send (now or at its time): over the approval threshold it waits for an admin instead.

    An empty segment is refused: there would be nothing to send and nothing to measure.
    """
    actor.require(Scope.TOUCH_WRITE)
    broadcast = get_broadcast(session, actor, broadcast_id, for_update=True)
    if broadcast.status != BroadcastStatus.DRAFT:
        raise Conflict(f"a {broadcast.status} broadcast cannot be submitted", details={"status": str(broadcast.status)})
    size = audience_size(session, broadcast, clock)
    if size == 0:
        raise InvalidInput("the segment has no members", details={"field": "segment_id"})
    threshold = admission.approval_threshold(session, actor.workspace_id)
    broadcast.audience_size, broadcast.requested_by = size, actor.label
    broadcast.updated_at = clock.now()
    if size > threshold and not actor.can(Scope.TOUCH_APPROVE):
        broadcast.status = BroadcastStatus.PENDING_APPROVAL
    else:
        _schedule(broadcast, actor, clock, approved=size > threshold)
    record(
        session,
        actor,
        action="submit",
        entity_type="broadcast",
        entity_id=broadcast.id,
        after={"status": str(broadcast.status), "audience_size": size},
        clock=clock,
    )
    return broadcast


def approve_broadcast(session: Session, *, actor: Actor, broadcast_id: int, clock: Clock) -> Broadcast:
    """An admin lets a large broadcast go."""
    actor.require(Scope.TOUCH_APPROVE)
    broadcast = get_broadcast(session, actor, broadcast_id, for_update=True)
    if broadcast.status != BroadcastStatus.PENDING_APPROVAL:
        raise Conflict(f"a {broadcast.status} broadcast needs no approval", details={"status": str(broadcast.status)})
    _schedule(broadcast, actor, clock, approved=True)
    record(
        session,
        actor,
        action="approve",
        entity_type="broadcast",
        entity_id=broadcast.id,
        after={"status": str(broadcast.status)},
        clock=clock,
    )
    return broadcast


def _schedule(broadcast: Broadcast, actor: Actor, clock: Clock, *, approved: bool) -> None:
    from siyu.campaigns.broadcasts.tasks import queue_planning  # tasks import this module

    broadcast.status = BroadcastStatus.SCHEDULED
    if approved:
        broadcast.approved_by, broadcast.approved_at = actor.label, clock.now()
    if broadcast.scheduled_at is None or broadcast.scheduled_at <= clock.now():
        queue_planning(broadcast, clock)


def cancel_broadcast(session: Session, *, actor: Actor, broadcast_id: int, clock: Clock) -> Broadcast:
    """Stop a broadcast: what is not sent yet is suppressed (reason "cancelled"), caps given back
    by the sender when it sees the status."""
    actor.require(Scope.TOUCH_WRITE)
    broadcast = get_broadcast(session, actor, broadcast_id, for_update=True)
    if broadcast.status not in CANCELLABLE:
        raise Conflict(f"a {broadcast.status} broadcast cannot be cancelled", details={"status": str(broadcast.status)})
    broadcast.status, broadcast.finished_at, broadcast.updated_at = BroadcastStatus.CANCELLED, clock.now(), clock.now()
    cancelled = cancel_queued(session, broadcast, clock)
    record(
        session,
        actor,
        action="cancel",
        entity_type="broadcast",
        entity_id=broadcast.id,
        after={"cancelled_deliveries": cancelled},
        clock=clock,
    )
    return broadcast


def cancel_queued(session: Session, broadcast: Broadcast, clock: Clock) -> int:
    """Suppress the broadcast's deliveries still queued, giving back their cap slots."""
    rows = session.scalars(
        select(Delivery)
        .where(
            Delivery.workspace_id == broadcast.workspace_id,
            Delivery.source == "broadcast",
            Delivery.source_id == broadcast.id,
            Delivery.status == DeliveryStatus.QUEUED,
        )
        .order_by(Delivery.customer_id)
        .with_for_update()
    ).all()
    for delivery in rows:
        delivery.status, delivery.reason = DeliveryStatus.SUPPRESSED, "cancelled"
    admission.release_slots(session, rows, clock)
    return len(rows)
