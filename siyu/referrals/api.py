"""JSON API of referral programs: programs, codes, the referral tree, fraud review and metrics."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from siyu.auth.permissions import Scope
from siyu.kit.ids import MAX_ID
from siyu.models import ProgramStatus, Referral, ReferralProgram, ReferralStatus
from siyu.referrals import fraud, metrics, programs, tree
from siyu.referrals.schemas import ProgramIn, ProgramPatch, ReviewIn, StatusIn
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["referrals"])
Reader = Annotated[Ctx, Depends(require(Scope.GROWTH_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.GROWTH_WRITE))]
Reviewer = Annotated[Ctx, Depends(require(Scope.GROWTH_REVIEW))]
OptionalId = Annotated[int | None, Query(gt=0, le=MAX_ID)]


class UnlockRead(BaseModel):
    id: int
    threshold: int
    name: str
    reward: dict[str, Any]


class ProgramRead(BaseModel):
    id: int
    name: str
    kind: str
    status: str
    starts_at: datetime | None
    ends_at: datetime | None
    eligible_segment_id: int | None
    eligible_tier_ids: list[int]
    condition: str
    min_order_fen: int
    live_code_id: int | None
    group_id: int | None
    target_count: int
    referrer_reward: dict[str, Any]
    referee_reward: dict[str, Any]
    attribution_days: int
    daily_cap_per_referrer: int | None
    burst_threshold: int | None
    burst_window_minutes: int
    point_cost_fen: int
    poster_title: str
    poster_text: str
    has_poster_background: bool
    unlocks: list[UnlockRead]
    created_at: datetime
    updated_at: datetime


def program_read(ctx: Ctx, program: ReferralProgram) -> ProgramRead:
    return ProgramRead(
        id=program.id,
        name=program.name,
        kind=str(program.kind),
        status=str(program.status),
        starts_at=program.starts_at,
        ends_at=program.ends_at,
        eligible_segment_id=program.eligible_segment_id,
        eligible_tier_ids=[int(t) for t in program.eligible_tier_ids or []],
        condition=str(program.condition),
        min_order_fen=program.min_order_fen,
        live_code_id=program.live_code_id,
        group_id=program.group_id,
        target_count=program.target_count,
        referrer_reward=dict(program.referrer_reward or {}),
        referee_reward=dict(program.referee_reward or {}),
        attribution_days=program.attribution_days,
        daily_cap_per_referrer=program.daily_cap_per_referrer,
        burst_threshold=program.burst_threshold,
        burst_window_minutes=program.burst_window_minutes,
        point_cost_fen=program.point_cost_fen,
        poster_title=program.poster_title,
        poster_text=program.poster_text,
        has_poster_background=program.poster_background_png is not None,
        unlocks=[
            UnlockRead(id=u.id, threshold=u.threshold, name=u.name, reward=dict(u.reward or {}))
            for u in programs.unlocks_of(ctx.session, program.id)
        ],
        created_at=program.created_at,
        updated_at=program.updated_at,
    )


class ReferralRead(BaseModel):
    id: int
    program_id: int
    referrer_customer_id: int
    referee_customer_id: int
    status: str
    reason: str | None
    attributed_at: datetime
    qualified_at: datetime | None
    qualifying_order_id: int | None
    reversed_at: datetime | None
    reviewed_at: datetime | None


def referral_read(row: Referral) -> ReferralRead:
    return ReferralRead(
        id=row.id,
        program_id=row.program_id,
        referrer_customer_id=row.referrer_customer_id,
        referee_customer_id=row.referee_customer_id,
        status=str(row.status),
        reason=row.reason,
        attributed_at=row.attributed_at,
        qualified_at=row.qualified_at,
        qualifying_order_id=row.qualifying_order_id,
        reversed_at=row.reversed_at,
        reviewed_at=row.reviewed_at,
    )


class PeriodRead(BaseModel):
    period_start: date
    shares: int
    scans: int
    invites: int
    inviting_members: int
    members: int
    code_holders: int
    referred: int
    qualified: int
    k_factor: float
    cost_fen: int
    cost_per_referred_fen: int | None


class MetricsRead(BaseModel):
    program_id: int
    start: date
    end: date
    period: str
    totals: PeriodRead
    rows: list[PeriodRead]


class TreeNodeRead(BaseModel):
    customer_id: int
    name: str
    referral_id: int | None
    status: str | None
    depth: int
    children: list[TreeNodeRead]


def _node(node: tree.TreeNode) -> TreeNodeRead:
    return TreeNodeRead(
        customer_id=node.customer_id,
        name=node.name,
        referral_id=node.referral_id,
        status=node.status,
        depth=node.depth,
        children=[_node(c) for c in node.children],
    )


@router.get("/referral-programs", response_model=list[ProgramRead])
def list_programs(ctx: Reader, status: ProgramStatus | None = None) -> list[ProgramRead]:
    """The workspace's referral programs, newest first."""
    return [program_read(ctx, p) for p in programs.list_programs(ctx.session, actor=ctx.actor, status=status)]


@router.post("/referral-programs", status_code=201, response_model=ProgramRead)
def create_program(body: ProgramIn, ctx: Writer) -> ProgramRead:
    """A new draft program (422 naming the field on a bad reference or rule)."""
    return program_read(ctx, programs.create_program(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/referral-programs/{program_id}", response_model=ProgramRead)
def get_program(program_id: IdPath, ctx: Reader) -> ProgramRead:
    return program_read(ctx, programs.get_program(ctx.session, actor=ctx.actor, program_id=program_id))


@router.patch("/referral-programs/{program_id}", response_model=ProgramRead)
def update_program(program_id: IdPath, body: ProgramPatch, ctx: Writer) -> ProgramRead:
    """Change the fields given; `unlocks`, when given, replaces the ladder."""
    program = programs.update_program(ctx.session, actor=ctx.actor, program_id=program_id, data=body, clock=ctx.clock)
    return program_read(ctx, program)


@router.post("/referral-programs/{program_id}/status", response_model=ProgramRead)
def set_status(program_id: IdPath, body: StatusIn, ctx: Writer) -> ProgramRead:
    """active / paused / ended (ended is final)."""
    program = programs.set_status(
        ctx.session, actor=ctx.actor, program_id=program_id, status=body.status, clock=ctx.clock
    )
    return program_read(ctx, program)


@router.get("/referral-programs/{program_id}/metrics", response_model=MetricsRead)
def program_metrics(
    program_id: IdPath,
    ctx: Reader,
    start: date,
    end: date,
    period: Annotated[str, Query(pattern="^(day|week|month)$")] = "week",
) -> MetricsRead:
    """Shares, scans, invites, inviting members, referred, qualified, K-factor and cost per period."""
    result = metrics.program_metrics(
        ctx.session, actor=ctx.actor, program_id=program_id, start=start, end=end, period=period
    )
    return MetricsRead(
        program_id=result.program_id,
        start=result.start,
        end=result.end,
        period=result.period,
        totals=PeriodRead.model_validate(result.totals, from_attributes=True),
        rows=[PeriodRead.model_validate(r, from_attributes=True) for r in result.rows],
    )


@router.get("/referrals", response_model=list[ReferralRead])
def list_referrals(
    ctx: Reader,
    status: ReferralStatus | None = None,
    program_id: OptionalId = None,
    referrer_customer_id: OptionalId = None,
    before_id: OptionalId = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ReferralRead]:
    """Referrals newest first; `status=flagged` is the review queue; page with `before_id`."""
    rows = fraud.list_referrals(
        ctx.session,
        actor=ctx.actor,
        status=status,
        program_id=program_id,
        referrer_customer_id=referrer_customer_id,
        before_id=before_id,
        limit=limit,
    )
    return [referral_read(r) for r in rows]


@router.post("/referrals/{referral_id}/review", response_model=ReferralRead)
def review_referral(referral_id: IdPath, body: ReviewIn, ctx: Reviewer) -> ReferralRead:
    """Approve or reject a flagged referral (409 if it is not flagged)."""
    referral = fraud.review(
        ctx.session, actor=ctx.actor, referral_id=referral_id, approve=body.approve, note=body.note, clock=ctx.clock
    )
    return referral_read(referral)


@router.get("/referral-tree", response_model=list[TreeNodeRead])
def referral_tree(
    ctx: Reader,
    program_id: OptionalId = None,
    root_customer_id: OptionalId = None,
    max_depth: Annotated[int, Query(ge=1, le=tree.MAX_DEPTH)] = 5,
) -> list[TreeNodeRead]:
    """Top-level referrers and their referees (or the tree under one customer)."""
    nodes = tree.referral_tree(
        ctx.session, actor=ctx.actor, program_id=program_id, root_customer_id=root_customer_id, max_depth=max_depth
    )
    return [_node(n) for n in nodes]
