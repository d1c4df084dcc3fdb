"""JSON API of community challenges and posts (moderation actions included)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from siyu.auth.permissions import Scope
from siyu.community.challenges import posts, service
from siyu.community.challenges.schemas import ChallengeIn, RewardPostIn, StatusIn
from siyu.models import Customer
from siyu.models.challenge import Challenge, Post
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["challenges"])
Reader = Annotated[Ctx, Depends(require(Scope.COMMUNITY_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.COMMUNITY_WRITE))]
Moderator = Annotated[Ctx, Depends(require(Scope.COMMUNITY_MODERATE))]


class ChallengeRead(BaseModel):
    id: int
    title: str
    topic: str
    description: str
    starts_on: date
    ends_on: date
    days_required: int
    points_per_day: int
    completion_bonus: int
    certificate_title: str
    status: str
    created_at: datetime
    updated_at: datetime


def challenge_read(row: Challenge) -> ChallengeRead:
    return ChallengeRead(
        id=row.id,
        title=row.title,
        topic=row.topic,
        description=row.description,
        starts_on=row.starts_on,
        ends_on=row.ends_on,
        days_required=row.days_required,
        points_per_day=row.points_per_day,
        completion_bonus=row.completion_bonus,
        certificate_title=row.certificate_title,
        status=str(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class BoardRowRead(BaseModel):
    rank: int
    customer_id: int
    name: str
    days_done: int
    last_day: date | None
    is_complete: bool
    certificate_no: str | None


class PostRead(BaseModel):
    id: int
    customer_id: int
    author: str
    challenge_id: int | None
    day: date | None
    topic: str
    body: str
    status: str
    likes_count: int
    rewarded_points: int
    moderated_at: datetime | None
    created_at: datetime


def post_read(row: Post, author: str) -> PostRead:
    return PostRead(
        id=row.id,
        customer_id=row.customer_id,
        author=author,
        challenge_id=row.challenge_id,
        day=row.day,
        topic=row.topic,
        body=row.body,
        status=str(row.status),
        likes_count=row.likes_count,
        rewarded_points=row.rewarded_points,
        moderated_at=row.moderated_at,
        created_at=row.created_at,
    )


@router.get("/challenges", response_model=list[ChallengeRead])
def list_challenges(ctx: Reader, status: Annotated[str | None, Query(max_length=10)] = None) -> list[ChallengeRead]:
    """The workspace's challenges, newest start first (filter by status)."""
    rows = service.list_challenges(ctx.session, workspace_id=ctx.actor.workspace_id, status=status)
    return [challenge_read(r) for r in rows]


@router.post("/challenges", status_code=201, response_model=ChallengeRead)
def create_challenge(body: ChallengeIn, ctx: Writer) -> ChallengeRead:
    """A new draft challenge; 422 naming the field when the dates or days don't fit."""
    return challenge_read(service.create_challenge(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/challenges/{challenge_id}", response_model=ChallengeRead)
def get_challenge(challenge_id: IdPath, ctx: Reader) -> ChallengeRead:
    return challenge_read(
        service.get_challenge(ctx.session, workspace_id=ctx.actor.workspace_id, challenge_id=challenge_id)
    )


@router.put("/challenges/{challenge_id}", response_model=ChallengeRead)
def update_challenge(challenge_id: IdPath, body: ChallengeIn, ctx: Writer) -> ChallengeRead:
    return challenge_read(
        service.update_challenge(ctx.session, actor=ctx.actor, challenge_id=challenge_id, data=body, clock=ctx.clock)
    )


@router.post("/challenges/{challenge_id}/status", response_model=ChallengeRead)
def set_status(challenge_id: IdPath, body: StatusIn, ctx: Writer) -> ChallengeRead:
    """Publish, archive or return to draft."""
    return challenge_read(
        service.set_status(ctx.session, actor=ctx.actor, challenge_id=challenge_id, status=body.status, clock=ctx.clock)
    )


@router.get("/challenges/{challenge_id}/leaderboard", response_model=list[BoardRowRead])
def leaderboard(
    challenge_id: IdPath, ctx: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[BoardRowRead]:
    """Participants by days done, then the earliest latest check-in."""
    challenge = service.get_challenge(ctx.session, workspace_id=ctx.actor.workspace_id, challenge_id=challenge_id)
    rows = service.leaderboard(ctx.session, workspace_id=ctx.actor.workspace_id, challenge_id=challenge.id, limit=limit)
    return [BoardRowRead(**row.__dict__) for row in rows]


@router.get("/posts", response_model=list[PostRead])
def list_posts(
    ctx: Reader,
    topic: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=10)] = None,
    challenge_id: Annotated[int | None, Query(gt=0)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[PostRead]:
    """Posts newest first, filtered by topic, status and challenge."""
    rows = posts.list_posts(
        ctx.session, actor=ctx.actor, topic=topic, status=status, challenge_id=challenge_id, limit=limit
    )
    return [post_read(p, author) for p, author in rows]


def _author(ctx: Ctx, post: Post) -> str:
    customer = ctx.session.get(Customer, post.customer_id)
    return posts.display_name(customer.name if customer else None, post.customer_id)


@router.get("/posts/{post_id}", response_model=PostRead)
def get_post(post_id: IdPath, ctx: Reader) -> PostRead:
    post = posts.get_post(ctx.session, actor=ctx.actor, post_id=post_id)
    return post_read(post, _author(ctx, post))


def _moderate(post_id: int, action: str, ctx: Ctx) -> PostRead:
    post = posts.moderate(ctx.session, actor=ctx.actor, post_id=post_id, action=action, clock=ctx.clock)
    return post_read(post, _author(ctx, post))


@router.post("/posts/{post_id}/feature", response_model=PostRead)
def feature_post(post_id: IdPath, ctx: Moderator) -> PostRead:
    """Feature (精选): shown first in the feed."""
    return _moderate(post_id, "feature", ctx)


@router.post("/posts/{post_id}/unfeature", response_model=PostRead)
def unfeature_post(post_id: IdPath, ctx: Moderator) -> PostRead:
    return _moderate(post_id, "unfeature", ctx)


@router.post("/posts/{post_id}/hide", response_model=PostRead)
def hide_post(post_id: IdPath, ctx: Moderator) -> PostRead:
    """Hide: only the author still sees it."""
    return _moderate(post_id, "hide", ctx)


@router.post("/posts/{post_id}/unhide", response_model=PostRead)
def unhide_post(post_id: IdPath, ctx: Moderator) -> PostRead:
    return _moderate(post_id, "unhide", ctx)


@router.post("/posts/{post_id}/reward", response_model=PostRead)
def reward_post(post_id: IdPath, body: RewardPostIn, ctx: Moderator) -> PostRead:
    """Give the author points once, with the reason they read; 409 `post_already_rewarded` after."""
    post = posts.reward_post(
        ctx.session, actor=ctx.actor, post_id=post_id, points=body.points, reason=body.reason, clock=ctx.clock
    )
    return post_read(post, _author(ctx, post))
