"""Points as other areas and operators use them: award (tasks, referrals), adjust by hand (audited),
history, a member's summary, and the daily expiry of every member's due points.

Every write goes through `siyu.loyalty.points.ledger` under the member's row lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.customers.repository import get_visible
from siyu.kit.clock import Clock
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.loyalty.errors import InvalidPoints, MemberNotFound
from siyu.loyalty.members import ensure_member, get_member, lock_member
from siyu.loyalty.points import ledger
from siyu.loyalty.program import get_program
from siyu.loyalty.tiers.service import evaluate_tier
from siyu.models import Member, PointsEntry, PointsLot, PointsReason

EXPIRY_BATCH = 200


@dataclass(frozen=True)
class Expiring:
    """Points that expire at one instant (the member can spend them up to `last_day`)."""

    expires_at: datetime
    points: int


def award_points(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int,
    points: int,
    reason: PointsReason,
    description: str,
    idempotency_key: str,
    clock: Clock,
    source_ref: str | None = None,
) -> PointsEntry:
    """Give a customer points (creating their member row), e.g. for a task or a referral. The
    description is what the member reads. Idempotent on the key; may upgrade a points-based tier."""
    member = ensure_member(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock)
    posting = ledger.earn(
        session,
        member=member,
        points=points,
        reason=reason,
        description=description,
        idempotency_key=idempotency_key,
        clock=clock,
        source_ref=source_ref,
    )
    if not posting.replayed:
        evaluate_tier(session, member=member, clock=clock, source_ref=source_ref)
    return posting.entry


ADJUST_KEY_PREFIX = "adjust:"
MAX_ADJUST_KEY = 200 - len(ADJUST_KEY_PREFIX) - len(":settle")


def adjustment_key(idempotency_key: str) -> str:
    """The ledger key of an operator's adjustment: the client's key in its own `adjust:` namespace,
    so it can never take a key the system writes (`order:{id}:earn`, `expire:lot:…`, `task:…`) and
    the same client key always finds the same entry."""
    key = (idempotency_key or "").strip()
    if not key or len(key) > MAX_ADJUST_KEY:
        raise InvalidPoints(
            f"idempotency_key must be 1 to {MAX_ADJUST_KEY} characters", details={"field": "idempotency_key"}
        )
    return f"{ADJUST_KEY_PREFIX}{key}"


def adjust_points(
    session: Session,
    *,
    actor: Actor,
    customer_id: int,
    points: int,
    reason: str,
    idempotency_key: str,
    clock: Clock,
) -> PointsEntry:
    """An operator's correction, up (a new lot expiring per the program) or down (never below zero),
    with the reason the member will read; audited. A retry with the same key changes nothing. The key
    is the client's: it is stored as `adjust:{key}` (`adjustment_key`), apart from the system's keys."""
    actor.require(Scope.LOYALTY_ADJUST)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidPoints("a reason is required for a manual adjustment", details={"field": "reason"})
    if len(reason) > 200:
        raise InvalidPoints("reason must be at most 200 characters", details={"field": "reason"})
    key = adjustment_key(idempotency_key)
    customer = get_visible(session, actor, customer_id)
    member = ensure_member(session, workspace_id=actor.workspace_id, customer_id=customer.id, clock=clock)
    posting = ledger.adjust(
        session,
        member=member,
        points=points,
        description=reason,
        idempotency_key=key,
        clock=clock,
        actor=actor.label,
        source_ref=f"adjust:{actor.kind}:{actor.user_id or actor.token_id or 0}",
    )
    if not posting.replayed:
        record(
            session,
            actor,
            action="points.adjust",
            entity_type="member",
            entity_id=member.id,
            clock=clock,
            after={"points": points, "reason": reason, "entry_id": posting.entry.id, "balance": member.points_balance},
        )
    return posting.entry


def member_of(session: Session, *, actor: Actor, customer_id: int) -> Member:
    """The loyalty account of a customer the actor may see (`MemberNotFound` if they have none)."""
    customer = get_visible(session, actor, customer_id)
    member = get_member(session, actor.workspace_id, customer.id)
    if member is None:
        raise MemberNotFound(f"customer {customer_id} has no loyalty account yet", details={"customer_id": customer_id})
    return member


def points_history(
    session: Session, *, member: Member, cursor: str | None = None, limit: int = 50
) -> Page[PointsEntry]:
    """The member's points entries, newest first, with the reason each was written for."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(PointsEntry).where(
        PointsEntry.workspace_id == member.workspace_id, PointsEntry.member_id == member.id
    )
    if cursor:
        query = query.where(PointsEntry.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(PointsEntry.id.desc()).limit(limit + 1)))
    return Page(items=rows[:limit], next_cursor=encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)


def expiring(session: Session, *, member: Member, clock: Clock, days: int | None = None) -> list[Expiring]:
    """Points expiring within `days` (default: the program's notice period), soonest first."""
    if days is None:
        days = get_program(session, member.workspace_id, clock=clock).expiring_notice_days
    return [Expiring(at, points) for at, points in ledger.expiring_soon(session, member=member, clock=clock, days=days)]


def due_member_ids(session: Session, *, workspace_id: int, clock: Clock, limit: int = EXPIRY_BATCH) -> list[int]:
    """Members with points whose expiry has passed, in id order."""
    return list(
        session.scalars(
            select(PointsLot.member_id)
            .where(PointsLot.workspace_id == workspace_id, PointsLot.remaining > 0, PointsLot.expires_at <= clock.now())
            .group_by(PointsLot.member_id)
            .order_by(PointsLot.member_id)
            .limit(limit)
        )
    )


def expire_all_due(session: Session, *, workspace_id: int, clock: Clock, limit: int = EXPIRY_BATCH) -> int:
    """Expire due points of up to `limit` members (locked in id order); returns the number of expiry
    entries written. Call again (a new transaction each time) until it returns 0: each member done
    has nothing due left, so an interrupted run resumes where it stopped."""
    written = 0
    for member_id in due_member_ids(session, workspace_id=workspace_id, clock=clock, limit=limit):
        member = lock_member(session, workspace_id, member_id)
        written += len(ledger.expire_due(session, member=member, clock=clock))
    return written
