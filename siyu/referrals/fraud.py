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
    Referral,
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
        attribution.settle_pending(session, program=program, referral=referral, clock=clock)
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
