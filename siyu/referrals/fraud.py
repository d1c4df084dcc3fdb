"""Review of flagged referrals (bursts): approve (→ pending, or qualified if its condition is already
met) or reject, with a note; audited."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.customers.repository import visibility_clause
from siyu.kit.clock import Clock
from siyu.models import (
    Customer,
    GroupMember,
    Order,
    Referral,
    ReferralCondition,
    ReferralProgram,
    ReferralStatus,
)
from siyu.referrals import attribution
from siyu.referrals.errors import NotReviewable, ReferralNotFound
from siyu.referrals.rewards import lock_referrer


def get_referral(session: Session, *, actor: Actor, referral_id: int) -> Referral:
    """A referral of the workspace whose referee the actor may see."""
    actor.require(Scope.GROWTH_READ)
    referral = session.scalar(
        select(Referral)
        .join(Customer, Customer.id == Referral.referee_customer_id)
        .where(Referral.id == referral_id, Referral.workspace_id == actor.workspace_id, visibility_clause(actor))
    )
    if referral is None:
        raise ReferralNotFound(f"referral {referral_id} not found", details={"referral_id": referral_id})
    return referral


def _condition_met(session: Session, program: ReferralProgram, referral: Referral) -> tuple[bool | None, int | None]:
    """Is the program's condition met for this referral now: True (with the qualifying order if any),
    False (not yet), or None (it can never be: a first order under the minimum)."""
    if program.condition == ReferralCondition.ADDED_STAFF:
        return True, None
    if program.condition == ReferralCondition.JOINED_GROUP:
        query = select(GroupMember.id).where(
            GroupMember.customer_id == referral.referee_customer_id,
            GroupMember.left_at.is_(None),
            GroupMember.joined_at >= referral.attributed_at,
        )
        if program.group_id is not None:
            query = query.where(GroupMember.group_id == program.group_id)
        return session.scalar(query.limit(1)) is not None, None
    first = session.scalar(
        select(Order)
        .where(Order.customer_id == referral.referee_customer_id)
        .order_by(Order.paid_at, Order.id)
        .limit(1)
    )
    if first is None:
        return False, None
    if not attribution.order_meets(program, first):
        return None, first.id
    return True, first.id


def review(session: Session, *, actor: Actor, referral_id: int, approve: bool, note: str, clock: Clock) -> Referral:
    """Decide a flagged referral (growth:review). Approving qualifies it at once when its condition
    was met meanwhile; rejecting keeps the note as the reason. Reviewing a decided one is a 409."""
    actor.require(Scope.GROWTH_REVIEW)
    referral = get_referral(session, actor=actor, referral_id=referral_id)
    lock_referrer(session, referral.program_id, referral.referrer_customer_id)
    session.refresh(referral)
    if referral.status != ReferralStatus.FLAGGED:
        raise NotReviewable(
            f"referral {referral_id} is {referral.status}, not flagged", details={"status": str(referral.status)}
        )
    note = (note or "").strip()[:200]
    referral.reviewed_by_user_id = actor.user_id
    referral.reviewed_at = clock.now()
    if approve:
        referral.status = ReferralStatus.PENDING
        referral.reason = note or None
        session.flush()
        program = session.get(ReferralProgram, referral.program_id)
        assert program is not None
        met, order_id = _condition_met(session, program, referral)
        if met:
            attribution.qualify(session, referral=referral, order_id=order_id, clock=clock)
        elif met is None:  # the first order came in under the minimum, as attribution would decide
            referral.status = ReferralStatus.REJECTED
            referral.reason = "first_order_below_minimum"
            session.flush()
    else:
        referral.status = ReferralStatus.REJECTED
        referral.reason = f"review: {note}"[:200] if note else "review"
        session.flush()
    record(
        session,
        actor,
        action="referral.review",
        entity_type="referral",
        entity_id=referral.id,
        clock=clock,
        before={"status": "flagged"},
        after={"status": str(referral.status), "note": note},
    )
    return referral


def list_referrals(
    session: Session,
    *,
    actor: Actor,
    status: ReferralStatus | None = None,
    program_id: int | None = None,
    referrer_customer_id: int | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[Referral]:
    """Referrals newest first (the review queue is `status=flagged`), referees the actor may see."""
    actor.require(Scope.GROWTH_READ)
    query = (
        select(Referral)
        .join(Customer, Customer.id == Referral.referee_customer_id)
        .where(Referral.workspace_id == actor.workspace_id, visibility_clause(actor))
    )
    if status is not None:
        query = query.where(Referral.status == status)
    if program_id is not None:
        query = query.where(Referral.program_id == program_id)
    if referrer_customer_id is not None:
        query = query.where(Referral.referrer_customer_id == referrer_customer_id)
    if before_id is not None:
        query = query.where(Referral.id < before_id)
    return list(session.scalars(query.order_by(Referral.id.desc()).limit(max(1, min(limit, 500)))))
