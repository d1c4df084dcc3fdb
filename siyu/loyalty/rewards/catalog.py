"""The operator's rewards: create, change (stock included, under the reward's row lock), list, retire."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor
from siyu.kit.clock import Clock
from siyu.kit.errors import DomainError
from siyu.loyalty.errors import InvalidReward, RewardNotFound
from siyu.loyalty.rewards.schemas import RewardIn
from siyu.models import CouponTemplate, LotteryDraw, Reward, RewardKind, Segment, Tier


def _fail(message: str, field: str) -> InvalidReward:
    return InvalidReward(message, details={"field": field})


def check_audience(
    session: Session,
    *,
    workspace_id: int,
    tier_ids: Sequence[int],
    segment_id: int | None,
    fields: tuple[str, str] = ("visible_tier_ids", "visible_segment_id"),
    fail: Callable[[str, str], DomainError] = _fail,
) -> list[int]:
    """The audience of something shown to some members only (see `service.audience_allows`): the
    tier ids, deduplicated in order, each a tier of the workspace, and the segment, if any, one of
    the workspace's that is not archived. A refusal is `fail(message, field)` (`InvalidReward` by
    default) naming `fields[0]` (tiers) or `fields[1]` (segment)."""
    tier_ids = list(dict.fromkeys(tier_ids))
    if tier_ids:
        known = set(session.scalars(select(Tier.id).where(Tier.workspace_id == workspace_id, Tier.id.in_(tier_ids))))
        if unknown := [t for t in tier_ids if t not in known]:
            raise fail(f"tier {unknown[0]} not found", fields[0])
    if segment_id is not None:
        segment = session.scalar(select(Segment).where(Segment.workspace_id == workspace_id, Segment.id == segment_id))
        if segment is None or segment.archived_at is not None:
            raise fail(f"segment {segment_id} not found", fields[1])
    return tier_ids


def validate_reward(session: Session, *, workspace_id: int, data: RewardIn) -> dict[str, Any]:
    """The column values of a valid reward, or `InvalidReward` naming the field."""
    name = data.name.strip()
    if not name:
        raise _fail("name is required", "name")
    if data.kind == RewardKind.COUPON:
        if data.coupon_template_id is None:
            raise _fail("a coupon reward needs coupon_template_id", "coupon_template_id")
        template = session.scalar(
            select(CouponTemplate.id).where(
                CouponTemplate.workspace_id == workspace_id, CouponTemplate.id == data.coupon_template_id
            )
        )
        if template is None:
            raise _fail(f"coupon template {data.coupon_template_id} not found", "coupon_template_id")
    elif data.coupon_template_id is not None:
        raise _fail("only a coupon reward has a coupon template", "coupon_template_id")
    if data.lottery_draw_id is not None:
        if data.kind != RewardKind.LOTTERY_ENTRY:
            raise _fail("only a lottery-entry reward enters a draw", "lottery_draw_id")
        draw = session.scalar(
            select(LotteryDraw.id).where(
                LotteryDraw.workspace_id == workspace_id, LotteryDraw.id == data.lottery_draw_id
            )
        )
        if draw is None:
            raise _fail(f"lottery draw {data.lottery_draw_id} not found", "lottery_draw_id")
    tier_ids = check_audience(
        session, workspace_id=workspace_id, tier_ids=data.visible_tier_ids, segment_id=data.visible_segment_id
    )
    image_url = (data.image_url or "").strip() or None
    if image_url is not None and not image_url.startswith(("https://", "http://", "/")):
        raise _fail("image_url must be an http(s) URL or a path on this site", "image_url")
    return {
        "name": name,
        "kind": data.kind,
        "points_price": data.points_price,
        "stock": data.stock,
        "per_member_limit": data.per_member_limit,
        "visible_tier_ids": tier_ids,
        "visible_segment_id": data.visible_segment_id,
        "coupon_template_id": data.coupon_template_id,
        "lottery_draw_id": data.lottery_draw_id,
        "description": (data.description or "").strip() or None,
        "image_url": image_url,
        "is_active": data.is_active,
        "sort_order": data.sort_order,
    }


def snapshot(reward: Reward) -> dict[str, Any]:
    return {
        "name": reward.name,
        "kind": str(reward.kind),
        "points_price": reward.points_price,
        "stock": reward.stock,
        "per_member_limit": reward.per_member_limit,
        "visible_tier_ids": list(reward.visible_tier_ids or []),
        "visible_segment_id": reward.visible_segment_id,
        "coupon_template_id": reward.coupon_template_id,
        "lottery_draw_id": reward.lottery_draw_id,
        "is_active": reward.is_active,
    }


def get_reward(session: Session, *, workspace_id: int, reward_id: int, for_update: bool = False) -> Reward:
    """One reward of the workspace (locked `FOR UPDATE` on request: the last lock in the lock order)."""
    query = select(Reward).where(Reward.workspace_id == workspace_id, Reward.id == reward_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    reward = session.scalar(query)
    if reward is None:
        raise RewardNotFound(f"reward {reward_id} not found", details={"reward_id": reward_id})
    return reward


def list_rewards(session: Session, *, workspace_id: int, include_inactive: bool = True) -> Sequence[Reward]:
    """The workspace's rewards in display order."""
    query = select(Reward).where(Reward.workspace_id == workspace_id)
    if not include_inactive:
        query = query.where(Reward.is_active.is_(True))
    return session.scalars(query.order_by(Reward.sort_order, Reward.id)).all()


def create_reward(session: Session, *, actor: Actor, data: RewardIn, clock: Clock) -> Reward:
    values = validate_reward(session, workspace_id=actor.workspace_id, data=data)
    now = clock.now()
    reward = Reward(workspace_id=actor.workspace_id, redeemed_count=0, created_at=now, updated_at=now, **values)
    session.add(reward)
    session.flush()
    record(
        session, actor, action="create", entity_type="reward", entity_id=reward.id, clock=clock, after=snapshot(reward)
    )
    return reward


def update_reward(session: Session, *, actor: Actor, reward_id: int, data: RewardIn, clock: Clock) -> Reward:
    """Change a reward; `stock` sets what is left to redeem, under the reward's row lock, so it never
    races a redemption. The kind stays (redemptions were made of it)."""
    reward = get_reward(session, workspace_id=actor.workspace_id, reward_id=reward_id, for_update=True)
    values = validate_reward(session, workspace_id=actor.workspace_id, data=data)
    if values["kind"] != reward.kind:
        raise _fail("the kind of a reward cannot change", "kind")
    before = snapshot(reward)
    for name, value in values.items():
        setattr(reward, name, value)
    reward.updated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action="update",
        entity_type="reward",
        entity_id=reward.id,
        clock=clock,
        before=before,
        after=snapshot(reward),
    )
    return reward


def deactivate_reward(session: Session, *, actor: Actor, reward_id: int, clock: Clock) -> Reward:
    """Take a reward out of the mall; its redemptions (and their fulfilment) carry on."""
    reward = get_reward(session, workspace_id=actor.workspace_id, reward_id=reward_id, for_update=True)
    if reward.is_active:
        reward.is_active = False
        reward.updated_at = clock.now()
        session.flush()
        record(
            session,
            actor,
            action="deactivate",
            entity_type="reward",
            entity_id=reward.id,
            clock=clock,
            before={"is_active": True},
            after={"is_active": False},
        )
    return reward
