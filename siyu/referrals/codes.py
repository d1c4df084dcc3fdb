"""Members' referral codes: one per member per program, 8 unambiguous characters, unique everywhere."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.models import ReferralCode, ReferralProgram
from siyu.referrals.errors import MemberNotFound, NotEligible, ProgramNotActive, ProgramNotFound
from siyu.referrals.programs import is_running, live_customer, member_is_eligible

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 8
_ATTEMPTS = 8


def new_code() -> str:
    """A random code (31^8 ≈ 8.5e11 values)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalise(code: str) -> str:
    """Upper case, without spaces or dashes, as printed and typed."""
    return "".join(code.split()).replace("-", "").upper()


def find_code(session: Session, code: str) -> ReferralCode | None:
    """The code as typed or scanned (any case), in any workspace; None if unknown or malformed."""
    value = normalise(code or "")
    if len(value) != LENGTH or any(c not in ALPHABET for c in value):
        return None
    return session.scalar(select(ReferralCode).where(ReferralCode.code == value))


def _existing(session: Session, program_id: int, customer_id: int) -> ReferralCode | None:
    return session.scalar(
        select(ReferralCode).where(ReferralCode.program_id == program_id, ReferralCode.customer_id == customer_id)
    )


def code_for(session: Session, *, workspace_id: int, program_id: int, customer_id: int, clock: Clock) -> ReferralCode:
    """The member's code in a program, created on first ask.

    Refuses `ProgramNotFound`, `MemberNotFound` (unknown, merged or erased), `ProgramNotActive`
    (draft, paused, ended or outside its dates) and `NotEligible` (segment/tier)."""
    program = session.get(ReferralProgram, program_id)
    if program is None or program.workspace_id != workspace_id:
        raise ProgramNotFound(f"referral program {program_id} not found", details={"program_id": program_id})
    if live_customer(session, workspace_id, customer_id) is None:
        raise MemberNotFound(f"member {customer_id} not found", details={"customer_id": customer_id})
    if not is_running(program, clock.now()):
        raise ProgramNotActive(f"program {program.name!r} is not running", details={"program_id": program_id})
    if (found := _existing(session, program_id, customer_id)) is not None:
        return found
    if not member_is_eligible(session, program=program, customer_id=customer_id, clock=clock):
        raise NotEligible("this member may not invite in this program", details={"program_id": program_id})
    for _ in range(_ATTEMPTS):
        row = ReferralCode(
            workspace_id=workspace_id,
            program_id=program_id,
            customer_id=customer_id,
            code=new_code(),
            created_at=clock.now(),
        )
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            # a concurrent first ask for the same member, or (rarely) a code collision
            if (found := _existing(session, program_id, customer_id)) is not None:
                return found
            continue
        return row
    raise RuntimeError("could not draw a free referral code")
