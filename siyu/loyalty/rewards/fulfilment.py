"""Redemptions after the fact: the fulfilment queue, shipping and delivery of gifts, and cancelling.

States: a gift starts `awaiting_shipment` → `shipped` (with a tracking number) → `delivered`; other
rewards are `completed` at once. Cancelling (a gift before it ships, or a privilege / lottery
entry) gives the points back to exactly the lots they came from (`ledger.restore_spend`), the
stock back to the reward, and frees the member's per-member slot (the slot becomes `-id`).
Operators see the redemptions of the customers they may see; every step is audited.
"""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor
from siyu.customers.repository import visibility_clause
from siyu.kit.clock import Clock
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.loyalty.errors import InvalidTransition, RedemptionNotFound
from siyu.loyalty.members import lock_member
from siyu.loyalty.points.ledger import restore_spend
from siyu.loyalty.rewards.catalog import get_reward
from siyu.models import Customer, Member, Redemption, RedemptionStatus, RewardKind


def _visible(actor: Actor) -> Select[Redemption]:
    return (
        select(Redemption)
        .join(Member, Member.id == Redemption.member_id)
        .join(Customer, Customer.id == Member.customer_id)
        .where(Redemption.workspace_id == actor.workspace_id, visibility_clause(actor))
    )


def get_redemption(session: Session, *, actor: Actor, redemption_id: int, for_update: bool = False) -> Redemption:
    """A redemption of a customer the actor may see, or `RedemptionNotFound`."""
    query = _visible(actor).where(Redemption.id == redemption_id)
    if for_update:
        query = query.with_for_update(of=Redemption).execution_options(populate_existing=True)
    redemption = session.scalar(query)
    if redemption is None:
        raise RedemptionNotFound(f"redemption {redemption_id} not found", details={"redemption_id": redemption_id})
    return redemption


def list_redemptions(
    session: Session,
    *,
    actor: Actor,
    status: RedemptionStatus | None = None,
    reward_id: int | None = None,
    customer_id: int | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Redemption]:
    """Redemptions newest first (the fulfilment queue: `status=awaiting_shipment`), cursor-paginated."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = _visible(actor)
    if status is not None:
        query = query.where(Redemption.status == status)
    if reward_id is not None:
        query = query.where(Redemption.reward_id == reward_id)
    if customer_id is not None:
        query = query.where(Member.customer_id == customer_id)
    if cursor:
        query = query.where(Redemption.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(Redemption.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


def _audit(session: Session, actor: Actor, redemption: Redemption, before: str, clock: Clock, **extra: object) -> None:
    record(
        session,
        actor,
        action=f"redemption.{redemption.status}",
        entity_type="redemption",
        entity_id=redemption.id,
        clock=clock,
        before={"status": before},
        after={"status": str(redemption.status), **extra},
    )


def ship_redemption(
    session: Session, *, actor: Actor, redemption_id: int, tracking_no: str, clock: Clock
) -> Redemption:
    """Mark a gift shipped with its tracking number. Shipping it again with the same number is a
    retry (nothing changes); any other state is `InvalidTransition`."""
    tracking = (tracking_no or "").strip()
    if not 1 <= len(tracking) <= 100:
        raise InvalidTransition("a tracking number is required to ship", details={"field": "tracking_no"})
    redemption = get_redemption(session, actor=actor, redemption_id=redemption_id, for_update=True)
    if redemption.status == RedemptionStatus.SHIPPED and redemption.tracking_no == tracking:
        return redemption
    if redemption.status != RedemptionStatus.AWAITING_SHIPMENT:
        raise InvalidTransition(
            f"redemption {redemption_id} is {redemption.status}; only one awaiting shipment can ship",
            details={"status": str(redemption.status)},
        )
    redemption.status = RedemptionStatus.SHIPPED
    redemption.tracking_no = tracking
    redemption.shipped_at = clock.now()
    session.flush()
    _audit(session, actor, redemption, RedemptionStatus.AWAITING_SHIPMENT, clock, tracking_no=tracking)
    return redemption


def deliver_redemption(session: Session, *, actor: Actor, redemption_id: int, clock: Clock) -> Redemption:
    """Mark a shipped gift delivered (again: nothing changes)."""
    redemption = get_redemption(session, actor=actor, redemption_id=redemption_id, for_update=True)
    if redemption.status == RedemptionStatus.DELIVERED:
        return redemption
    if redemption.status != RedemptionStatus.SHIPPED:
        raise InvalidTransition(
            f"redemption {redemption_id} is {redemption.status}; only a shipped gift can be delivered",
            details={"status": str(redemption.status)},
        )
    redemption.status = RedemptionStatus.DELIVERED
    redemption.delivered_at = clock.now()
    session.flush()
    _audit(session, actor, redemption, RedemptionStatus.SHIPPED, clock)
    return redemption


def cancel_redemption(
    session: Session, *, actor: Actor, redemption_id: int, reason: str | None, clock: Clock
) -> Redemption:
    """Cancel before shipping: points back to their lots, stock back, the member's slot freed.

    Locks in the brief's order: the member, then the redemption, then the reward. A coupon
    reward cannot be cancelled (the coupon is out: void it instead), nor a gift once shipped.
    Cancelling twice is a retry."""
    found = get_redemption(session, actor=actor, redemption_id=redemption_id)
    member = lock_member(session, actor.workspace_id, found.member_id)
    redemption = get_redemption(session, actor=actor, redemption_id=redemption_id, for_update=True)
    if redemption.status == RedemptionStatus.CANCELLED:
        return redemption
    reward = get_reward(session, workspace_id=actor.workspace_id, reward_id=redemption.reward_id, for_update=True)
    cancellable = redemption.status == RedemptionStatus.AWAITING_SHIPMENT or (
        redemption.status == RedemptionStatus.COMPLETED and reward.kind != RewardKind.COUPON
    )
    if not cancellable:
        raise InvalidTransition(
            f"redemption {redemption_id} is {redemption.status} and can no longer be cancelled",
            details={"status": str(redemption.status)},
        )
    before = str(redemption.status)
    if reward.kind == RewardKind.LOTTERY_ENTRY and reward.lottery_draw_id is not None:
        from siyu.community.lottery.entries import withdraw_for_redemption

        withdraw_for_redemption(session, redemption=redemption, reward=reward)
    if redemption.points_entry_id is not None:
        restore_spend(
            session,
            member=member,
            entry_id=redemption.points_entry_id,
            description=f"取消兑换：{reward.name}，积分退回",
            # not under `redemption:`: that namespace is the clients' (`redemption:{their key}`)
            idempotency_key=f"cancel:redemption:{redemption.id}",
            clock=clock,
            source_ref=f"redemption:{redemption.id}",
            actor=actor.label,
        )
    if reward.stock is not None:
        reward.stock += 1
    reward.redeemed_count = max(reward.redeemed_count - 1, 0)
    reward.updated_at = clock.now()
    redemption.slot = -redemption.id
    redemption.status = RedemptionStatus.CANCELLED
    redemption.cancelled_at = clock.now()
    redemption.cancel_reason = (reason or "").strip()[:200] or None
    session.flush()
    _audit(session, actor, redemption, before, clock, reason=redemption.cancel_reason)
    return redemption
