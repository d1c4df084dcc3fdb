"""The tier ladder (create, change, delete tiers) and the program settings, audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.kit.clock import Clock
from siyu.loyalty.errors import InvalidProgram, InvalidTier, TierInUse, TierNotFound
from siyu.loyalty.program import brand_zone, get_program
from siyu.loyalty.tiers.rules import review_date
from siyu.loyalty.tiers.schemas import ProgramIn, TierIn
from siyu.models import ExpiryPolicy, LoyaltyProgram, Member, Tier

PROGRAM_FIELDS = tuple(ProgramIn.model_fields)


def list_tiers(session: Session, *, workspace_id: int) -> list[Tier]:
    """All tiers, lowest rank first."""
    return list(session.scalars(select(Tier).where(Tier.workspace_id == workspace_id).order_by(Tier.rank)))


def get_tier(session: Session, *, workspace_id: int, tier_id: int) -> Tier:
    tier = session.scalar(select(Tier).where(Tier.workspace_id == workspace_id, Tier.id == tier_id))
    if tier is None:
        raise TierNotFound(f"tier {tier_id} not found", details={"tier_id": tier_id})
    return tier


def _values(data: TierIn) -> dict[str, Any]:
    values = data.model_dump(exclude={"benefits"})
    values["name"] = data.name.strip()
    values["benefits"] = data.benefits.model_dump(exclude_none=True)
    if data.is_paid:
        values["threshold"] = 0
    else:
        values["price_fen"] = None
        values["validity_days"] = None
    return values


def _check(session: Session, workspace_id: int, values: dict[str, Any], tier_id: int | None) -> None:
    """Refuse a tier that breaks the ladder, naming the field."""
    if not values["name"]:
        raise InvalidTier("name must not be blank", details={"field": "name"})
    if values["is_paid"]:
        if values["rank"] == 0:
            raise InvalidTier(
                "rank 0 is the base tier every member starts in: it cannot be paid", details={"field": "rank"}
            )
        if not values.get("price_fen") or not values.get("validity_days"):
            field = "price_fen" if not values.get("price_fen") else "validity_days"
            raise InvalidTier("a paid tier needs a price and a validity in days", details={"field": field})
    elif values["rank"] == 0 and values["threshold"] != 0:
        raise InvalidTier("the base tier (rank 0) has threshold 0", details={"field": "threshold"})
    others = [t for t in session.scalars(select(Tier).where(Tier.workspace_id == workspace_id)) if t.id != tier_id]
    for other in others:
        if other.rank == values["rank"]:
            raise InvalidTier(f"rank {values['rank']} is taken by {other.name!r}", details={"field": "rank"})
        if other.name == values["name"]:
            raise InvalidTier(f"a tier named {values['name']!r} exists", details={"field": "name"})
    if values["is_paid"]:
        return
    for other in others:
        if other.is_paid:
            continue
        below, above = (other, values) if other.rank < values["rank"] else (values, other)
        low = below.threshold if isinstance(below, Tier) else below["threshold"]
        high = above.threshold if isinstance(above, Tier) else above["threshold"]
        if high <= low:
            raise InvalidTier(
                f"thresholds must rise with rank: {other.name!r} (rank {other.rank}) has {other.threshold}",
                details={"field": "threshold"},
            )


def _snapshot(tier: Tier) -> dict[str, Any]:
    return {
        "name": tier.name,
        "rank": tier.rank,
        "threshold": tier.threshold,
        "is_paid": tier.is_paid,
        "price_fen": tier.price_fen,
        "validity_days": tier.validity_days,
        "points_multiplier_pct": tier.points_multiplier_pct,
        "benefits": dict(tier.benefits or {}),
        "color": tier.color,
    }


def create_tier(session: Session, *, actor: Actor, data: TierIn, clock: Clock) -> Tier:
    actor.require(Scope.LOYALTY_WRITE)
    values = _values(data)
    _check(session, actor.workspace_id, values, None)
    now = clock.now()
    tier = Tier(workspace_id=actor.workspace_id, created_at=now, updated_at=now, **values)
    session.add(tier)
    session.flush()
    record(
        session, actor, action="tier.create", entity_type="tier", entity_id=tier.id, clock=clock, after=_snapshot(tier)
    )
    return tier


def update_tier(session: Session, *, actor: Actor, tier_id: int, data: TierIn, clock: Clock) -> Tier:
    """Change a tier. Members keep their tier; new thresholds apply from the next order or review."""
    actor.require(Scope.LOYALTY_WRITE)
    tier = get_tier(session, workspace_id=actor.workspace_id, tier_id=tier_id)
    values = _values(data)
    _check(session, actor.workspace_id, values, tier.id)
    if values["is_paid"] != tier.is_paid and _members_in(session, tier):
        raise TierInUse(
            "members are in this tier: it cannot switch between paid and earned", details={"field": "is_paid"}
        )
    before = _snapshot(tier)
    for key, value in values.items():
        setattr(tier, key, value)
    tier.updated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action="tier.update",
        entity_type="tier",
        entity_id=tier.id,
        clock=clock,
        before=before,
        after=_snapshot(tier),
    )
    return tier


def _members_in(session: Session, tier: Tier) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                Member.workspace_id == tier.workspace_id,
                or_(Member.tier_id == tier.id, Member.earned_tier_id == tier.id, Member.paid_tier_id == tier.id),
            )
        )
        or 0
    )


def delete_tier(session: Session, *, actor: Actor, tier_id: int, clock: Clock) -> None:
    """Delete a tier nobody is in (the base tier stays while any tier exists above it)."""
    actor.require(Scope.LOYALTY_WRITE)
    tier = get_tier(session, workspace_id=actor.workspace_id, tier_id=tier_id)
    if count := _members_in(session, tier):
        raise TierInUse(f"{count} members are in tier {tier.name!r}", details={"tier_id": tier.id, "members": count})
    if tier.rank == 0 and session.scalar(
        select(Tier.id).where(Tier.workspace_id == tier.workspace_id, Tier.id != tier.id)
    ):
        raise TierInUse("the base tier (rank 0) is deleted last", details={"tier_id": tier.id})
    before = _snapshot(tier)
    session.delete(tier)
    session.flush()
    record(session, actor, action="tier.delete", entity_type="tier", entity_id=tier_id, clock=clock, before=before)


def program_snapshot(program: LoyaltyProgram) -> dict[str, Any]:
    return {name: getattr(program, name) for name in PROGRAM_FIELDS}


def update_program(session: Session, *, actor: Actor, data: ProgramIn, clock: Clock) -> LoyaltyProgram:
    """Change the program's settings. Points already earned keep their expiry; a changed review
    period applies from its next review date."""
    actor.require(Scope.LOYALTY_WRITE)
    if data.expiry_policy == ExpiryPolicy.DAYS and data.expiry_n < 1:
        raise InvalidProgram("expiry_n must be at least 1 day with the days policy", details={"field": "expiry_n"})
    get_program(session, actor.workspace_id, clock=clock)
    program = session.scalars(
        select(LoyaltyProgram)
        .where(LoyaltyProgram.workspace_id == actor.workspace_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    before = program_snapshot(program)
    if data.review_period != program.review_period:
        # The new period's first review is its next review date, not the one just passed.
        today = clock.now().astimezone(brand_zone(session, actor.workspace_id)).date()
        program.last_review_on = review_date(data.review_period, today)
    for name in PROGRAM_FIELDS:
        setattr(program, name, getattr(data, name))
    program.updated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action="loyalty_program.update",
        entity_type="loyalty_program",
        entity_id=program.id,
        clock=clock,
        before=before,
        after=program_snapshot(program),
    )
    return program
