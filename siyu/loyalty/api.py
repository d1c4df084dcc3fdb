"""HTTP API of the loyalty program, tiers, members, points and tier history."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

import siyu.loyalty.merge  # noqa: F401 - registers the member fold on customer merges
from siyu.auth.permissions import Scope
from siyu.customers.repository import get_visible
from siyu.kit.ids import MAX_ID
from siyu.loyalty.points import service as points
from siyu.loyalty.program import brand_zone, get_program, last_valid_day
from siyu.loyalty.tiers import catalogue
from siyu.loyalty.tiers import service as tiers
from siyu.loyalty.tiers.schemas import ProgramIn, TierIn
from siyu.models import LoyaltyProgram, Member, PointsEntry, Tier, TierChange
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["loyalty"])
Reader = Annotated[Ctx, Depends(require(Scope.LOYALTY_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.LOYALTY_WRITE))]
Adjuster = Annotated[Ctx, Depends(require(Scope.LOYALTY_ADJUST))]
Limit = Annotated[int, Query(ge=1, le=200)]


class ProgramRead(ProgramIn):
    model_config = ConfigDict(extra="ignore")

    last_review_on: date | None
    updated_at: datetime


class TierRead(BaseModel):
    id: int
    name: str
    rank: int
    threshold: int
    is_paid: bool
    price_fen: int | None
    validity_days: int | None
    points_multiplier_pct: int
    benefits: dict[str, Any]
    color: str | None
    created_at: datetime
    updated_at: datetime


class TierRef(BaseModel):
    id: int
    name: str
    rank: int


class ProgressRead(BaseModel):
    basis: str
    qualifying_value: int
    window_start: datetime
    window_end: datetime
    window_label: str
    next_tier: TierRef | None
    to_next: int | None
    grace_until: datetime | None


class ExpiringRead(BaseModel):
    points: int
    expires_at: datetime
    last_day: date
    """The last brand-local day the points can be spent."""


class MemberRead(BaseModel):
    customer_id: int
    member_id: int
    tier: TierRef | None
    earned_tier: TierRef | None
    paid_tier: TierRef | None
    paid_tier_until: datetime | None
    points_balance: int
    points_debt: int
    points_earned_total: int
    progress: ProgressRead
    expiring: list[ExpiringRead]
    created_at: datetime


class PointsEntryRead(BaseModel):
    id: int
    amount: int
    kind: str
    reason: str
    description: str
    source_ref: str | None
    balance_after: int
    shortfall: int
    actor: str | None
    occurred_at: datetime


class PointsPage(BaseModel):
    items: list[PointsEntryRead]
    next_cursor: str | None


class TierChangeRead(BaseModel):
    id: int
    from_tier_id: int | None
    to_tier_id: int | None
    reason: str
    detail: str | None
    source_ref: str | None
    actor: str | None
    changed_at: datetime


class TierChangePage(BaseModel):
    items: list[TierChangeRead]
    next_cursor: str | None


class AdjustmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: int = Field(description="Signed: positive adds, negative takes away (never below zero).")
    reason: str = Field(max_length=200, description="Shown to the member.")
    idempotency_key: str = Field(min_length=1, max_length=186, description="Yours: a retry with it changes nothing.")


class PaidTierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier_id: int = Field(gt=0, le=MAX_ID)
    idempotency_key: str = Field(min_length=1, max_length=190)


class ManualTierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier_id: int = Field(gt=0, le=MAX_ID)
    reason: str = Field(max_length=300)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=190)


def program_read(program: LoyaltyProgram) -> ProgramRead:
    return ProgramRead.model_validate(program, from_attributes=True)


def tier_read(tier: Tier) -> TierRead:
    return TierRead.model_validate(tier, from_attributes=True)


def _ref(tier: Tier | None) -> TierRef | None:
    return TierRef(id=tier.id, name=tier.name, rank=tier.rank) if tier else None


def entry_read(entry: PointsEntry) -> PointsEntryRead:
    return PointsEntryRead.model_validate(entry, from_attributes=True)


def change_read(change: TierChange) -> TierChangeRead:
    return TierChangeRead.model_validate(change, from_attributes=True)


def member_read(ctx: Ctx, member: Member) -> MemberRead:
    progress = tiers.tier_progress(ctx.session, member=member, clock=ctx.clock)
    zone = brand_zone(ctx.session, member.workspace_id)
    return MemberRead(
        customer_id=member.customer_id,
        member_id=member.id,
        tier=_ref(progress.tier),
        earned_tier=_ref(progress.earned_tier),
        paid_tier=_ref(progress.paid_tier),
        paid_tier_until=progress.paid_until,
        points_balance=member.points_balance,
        points_debt=member.points_debt,
        points_earned_total=member.points_earned_total,
        progress=ProgressRead(
            basis=progress.basis,
            qualifying_value=progress.qualifying_value,
            window_start=progress.window.start,
            window_end=progress.window.end,
            window_label=progress.window.label,
            next_tier=_ref(progress.next_tier),
            to_next=progress.to_next,
            grace_until=progress.grace_until,
        ),
        expiring=[
            ExpiringRead(points=e.points, expires_at=e.expires_at, last_day=last_valid_day(e.expires_at, zone))
            for e in points.expiring(ctx.session, member=member, clock=ctx.clock)
        ],
        created_at=member.created_at,
    )


# --- program and tiers --------------------------------------------------------------------------


@router.get("/loyalty/program", response_model=ProgramRead)
def read_program(ctx: Reader) -> ProgramRead:
    """The program's settings (a default program is created on first use)."""
    return program_read(get_program(ctx.session, ctx.actor.workspace_id, clock=ctx.clock))


@router.put("/loyalty/program", response_model=ProgramRead)
def put_program(body: ProgramIn, ctx: Writer) -> ProgramRead:
    """Change how points are earned and expire and how tiers qualify; audited."""
    return program_read(catalogue.update_program(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/loyalty/tiers", response_model=list[TierRead])
def list_tiers(ctx: Reader) -> list[TierRead]:
    """Every tier, lowest rank first."""
    return [tier_read(t) for t in catalogue.list_tiers(ctx.session, workspace_id=ctx.actor.workspace_id)]


@router.post("/loyalty/tiers", status_code=201, response_model=TierRead)
def create_tier(body: TierIn, ctx: Writer) -> TierRead:
    return tier_read(catalogue.create_tier(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/loyalty/tiers/{tier_id}", response_model=TierRead)
def get_tier(tier_id: IdPath, ctx: Reader) -> TierRead:
    return tier_read(catalogue.get_tier(ctx.session, workspace_id=ctx.actor.workspace_id, tier_id=tier_id))


@router.put("/loyalty/tiers/{tier_id}", response_model=TierRead)
def update_tier(tier_id: IdPath, body: TierIn, ctx: Writer) -> TierRead:
    """Change a tier; members keep their tier until the next order or review."""
    return tier_read(catalogue.update_tier(ctx.session, actor=ctx.actor, tier_id=tier_id, data=body, clock=ctx.clock))


@router.delete("/loyalty/tiers/{tier_id}", status_code=204)
def delete_tier(tier_id: IdPath, ctx: Writer) -> Response:
    """Delete a tier nobody is in (409 otherwise)."""
    catalogue.delete_tier(ctx.session, actor=ctx.actor, tier_id=tier_id, clock=ctx.clock)
    return Response(status_code=204)


# --- members ------------------------------------------------------------------------------------


@router.get("/members/{customer_id}", response_model=MemberRead)
def get_member(customer_id: IdPath, ctx: Reader) -> MemberRead:
    """A customer's loyalty account: tier, progress to the next tier, balance and points expiring soon."""
    return member_read(ctx, points.member_of(ctx.session, actor=ctx.actor, customer_id=customer_id))


@router.get("/members/{customer_id}/points", response_model=PointsPage)
def list_points(customer_id: IdPath, ctx: Reader, cursor: str | None = None, limit: Limit = 50) -> PointsPage:
    """Points history, newest first, each entry with the reason the member reads."""
    member = points.member_of(ctx.session, actor=ctx.actor, customer_id=customer_id)
    page = points.points_history(ctx.session, member=member, cursor=cursor, limit=limit)
    return PointsPage(items=[entry_read(e) for e in page.items], next_cursor=page.next_cursor)


@router.post("/members/{customer_id}/points/adjustments", status_code=201, response_model=PointsEntryRead)
def adjust_points(customer_id: IdPath, body: AdjustmentIn, ctx: Adjuster) -> PointsEntryRead:
    """Adjust a member's points by hand with a reason; a retry with the same key returns the same entry."""
    entry = points.adjust_points(
        ctx.session,
        actor=ctx.actor,
        customer_id=customer_id,
        points=body.points,
        reason=body.reason,
        idempotency_key=body.idempotency_key,
        clock=ctx.clock,
    )
    return entry_read(entry)


@router.get("/members/{customer_id}/tier-changes", response_model=TierChangePage)
def list_tier_changes(customer_id: IdPath, ctx: Reader, cursor: str | None = None, limit: Limit = 50) -> TierChangePage:
    """Every tier change of the member, newest first, with its reason."""
    member = points.member_of(ctx.session, actor=ctx.actor, customer_id=customer_id)
    page = tiers.tier_changes(ctx.session, member=member, cursor=cursor, limit=limit)
    return TierChangePage(items=[change_read(c) for c in page.items], next_cursor=page.next_cursor)


@router.post("/members/{customer_id}/paid-tier", response_model=MemberRead)
def buy_paid_tier(customer_id: IdPath, body: PaidTierIn, ctx: Writer) -> MemberRead:
    """Grant a paid tier bought by the customer (from now, or extending the same card); idempotent."""
    customer = get_visible(ctx.session, ctx.actor, customer_id)
    member = tiers.buy_paid_tier(
        ctx.session,
        workspace_id=ctx.actor.workspace_id,
        customer_id=customer.id,
        tier_id=body.tier_id,
        idempotency_key=body.idempotency_key,
        clock=ctx.clock,
        actor_label=ctx.actor.label,
    )
    return member_read(ctx, member)


@router.post("/members/{customer_id}/tier", response_model=MemberRead)
def set_tier(customer_id: IdPath, body: ManualTierIn, ctx: Adjuster) -> MemberRead:
    """Put a member in an earned tier by hand, with a reason; audited. Reviews still apply."""
    tiers.set_tier(
        ctx.session,
        actor=ctx.actor,
        customer_id=customer_id,
        tier_id=body.tier_id,
        reason=body.reason,
        clock=ctx.clock,
        idempotency_key=body.idempotency_key,
    )
    return member_read(ctx, points.member_of(ctx.session, actor=ctx.actor, customer_id=customer_id))
