"""A member's progress in a program: qualified and pending invitees, unlock ladder, rewards."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.models import Referral, ReferralProgram, ReferralReward, ReferralStatus
from siyu.referrals.errors import ProgramNotFound
from siyu.referrals.programs import unlocks_of


@dataclass(frozen=True)
class UnlockProgress:
    """One rung of the unlock ladder."""

    threshold: int
    name: str
    reached: bool


@dataclass(frozen=True)
class MemberProgress:
    """What the member's H5 page shows for one program."""

    qualified: int
    pending: int
    """Attributed, waiting for the condition or for review (pending + flagged)."""
    target_count: int
    unlocks: list[UnlockProgress] = field(default_factory=list)
    rewards: list[ReferralReward] = field(default_factory=list)
    """The member's rewards in the program, newest first, reversed ones included."""


def member_progress(session: Session, *, workspace_id: int, customer_id: int, program_id: int) -> MemberProgress:
    """The member's counts, unlocks and rewards in one program of the workspace."""
    program = session.get(ReferralProgram, program_id)
    if program is None or program.workspace_id != workspace_id:
        raise ProgramNotFound(f"referral program {program_id} not found", details={"program_id": program_id})
    counts = dict(
        session.execute(
            select(Referral.status, func.count())
            .where(Referral.program_id == program_id, Referral.referrer_customer_id == customer_id)
            .group_by(Referral.status)
        ).all()
    )
    qualified = int(counts.get(ReferralStatus.QUALIFIED, 0))
    pending = int(counts.get(ReferralStatus.PENDING, 0)) + int(counts.get(ReferralStatus.FLAGGED, 0))
    rewards = list(
        session.scalars(
            select(ReferralReward)
            .where(ReferralReward.program_id == program_id, ReferralReward.customer_id == customer_id)
            .order_by(ReferralReward.issued_at.desc(), ReferralReward.id.desc())
        )
    )
    return MemberProgress(
        qualified=qualified,
        pending=pending,
        target_count=program.target_count,
        unlocks=[
            UnlockProgress(u.threshold, u.name, qualified >= u.threshold) for u in unlocks_of(session, program_id)
        ],
        rewards=rewards,
    )
