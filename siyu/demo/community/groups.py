"""The demo brand's community groups (社群), through the groups services: four long-term groups and
a flash group (闪群) for 双 11 that has ended, each with its owner staff and an assistant, members
joining over the last two months and some leaving (churn), and a count for every day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from siyu.community.groups.days import snapshot_day
from siyu.community.groups.membership import add_staff, dismiss_due, join_group, leave_group, set_role
from siyu.community.groups.schemas import GroupCreate
from siyu.community.groups.service import create_group
from siyu.demo.community.context import Ctx
from siyu.demo.community.timeline import Step
from siyu.kit.clock import FrozenClock
from siyu.models import CommunityGroup, GroupKind, GroupMemberRole, Relationship, Staff, Tag


@dataclass(frozen=True)
class GroupSpec:
    name: str
    kind: GroupKind
    created_days_ago: int
    joins: int
    limit: int
    tags: tuple[str, ...]
    description: str
    ends_days_ago: int | None = None


GROUPS = (
    GroupSpec("栖梧穿搭交流群", GroupKind.LONG_TERM, 62, 70, 200, ("穿搭",), "每日穿搭分享与搭配答疑"),
    GroupSpec("栖梧新品体验官", GroupKind.LONG_TERM, 58, 45, 150, ("穿搭", "极简"), "新品试穿、体验反馈"),
    GroupSpec("静安店会员群", GroupKind.LONG_TERM, 55, 40, 200, ("门店",), "上海静安店会员活动通知"),
    GroupSpec("好友福利裂变群", GroupKind.LONG_TERM, 42, 8, 300, ("老带新",), "邀请好友进群领福利"),
    GroupSpec("双 11 闪购群", GroupKind.FLASH, 28, 60, 300, ("高敏感",), "双 11 限时闪购，活动结束后解散", 16),
)
FISSION_GROUP = 3
KOC_GROUPS = (0, 1)
CHURN = 0.22
REMOVED = 0.03


def create_groups(ctx: Ctx) -> list[int]:
    """Create the groups as of their creation days (owner staff seated, an assistant added)."""
    session = ctx.session
    staff = list(
        session.scalars(
            select(Staff.id).where(Staff.workspace_id == ctx.workspace_id, Staff.is_active.is_(True)).order_by(Staff.id)
        )
    )
    rows = session.execute(select(Tag.name, Tag.id).where(Tag.workspace_id == ctx.workspace_id))
    tags: dict[str, int] = {name: tag_id for name, tag_id in rows}
    ids = []
    for n, spec in enumerate(GROUPS):
        created = FrozenClock(ctx.local(spec.created_days_ago, 11))
        ends_at = ctx.local(spec.ends_days_ago, 23, 30) if spec.ends_days_ago is not None else None
        owner = staff[n % len(staff)] if staff else None
        group = create_group(
            session,
            actor=ctx.actor,
            data=GroupCreate(
                name=spec.name,
                kind=spec.kind,
                ends_at=ends_at,
                description=spec.description,
                member_limit=spec.limit,
                owner_staff_id=owner,
                wecom_chat_id=f"wrQiwuCommunity{n + 1:02d}",
                join_url=f"https://work.weixin.qq.com/gm/qiwu-community-{n + 1}",
                tag_ids=[tags[t] for t in spec.tags if t in tags],
            ),
            clock=created,
        )
        if len(staff) > 1:
            add_staff(
                session,
                actor=ctx.actor,
                group_id=group.id,
                staff_id=staff[(n + 1) % len(staff)],
                clock=FrozenClock(created.now() + timedelta(minutes=20)),
                role=GroupMemberRole.ADMIN,
            )
        ids.append(group.id)
    ctx.fission_group_id = ids[FISSION_GROUP]
    return ids


def plan_members(ctx: Ctx, group_ids: list[int]) -> None:
    """Plan joins and leaves over the groups' lives: KOCs in the first two groups from the start, a
    member made assistant, some members leaving or removed; the flash group dismissed at its end."""
    rng = ctx.rng
    session = ctx.session
    friends = sorted(
        set(session.scalars(select(Relationship.customer_id).where(Relationship.workspace_id == ctx.workspace_id)))
    )
    pool = sorted(set(ctx.members) | set(rng.sample(friends, min(len(friends), 600))))
    pool = [c for c in pool if c not in ctx.busy and c not in ctx.kocs]
    for n, (spec, group_id) in enumerate(zip(GROUPS, group_ids, strict=True)):
        start = ctx.local(spec.created_days_ago, 11, 30)
        end = ctx.local(spec.ends_days_ago, 23) if spec.ends_days_ago is not None else ctx.now - timedelta(minutes=10)
        joiners = rng.sample(pool, min(spec.joins, len(pool)))
        if n in KOC_GROUPS:
            for koc in ctx.kocs:
                ctx.timeline.at(start + timedelta(hours=1), _join(ctx, group_id, koc))
                ctx.koc_groups.setdefault(koc, []).append(group_id)
        for k, customer_id in enumerate(joiners):
            joined = ctx.between(start, end)
            ctx.timeline.at(joined, _join(ctx, group_id, customer_id))
            if k == 0:
                ctx.timeline.at(joined + timedelta(hours=2), _assistant(ctx, group_id, customer_id))
            elif rng.random() < CHURN:
                left = joined + timedelta(days=rng.randrange(1, 30), minutes=rng.randrange(1440))
                if left < end:
                    reason = "removed" if rng.random() < REMOVED / CHURN else "left"
                    ctx.timeline.at(left, _leave(ctx, group_id, customer_id, reason))
        if spec.ends_days_ago is not None:
            ctx.timeline.at(ctx.local(spec.ends_days_ago, 23, 30), _dismiss(ctx))


def _join(ctx: Ctx, group_id: int, customer_id: int) -> Step:
    def step(clock: FrozenClock) -> None:
        join_group(
            ctx.session,
            workspace_id=ctx.workspace_id,
            group_id=group_id,
            customer_id=customer_id,
            at=clock.now(),
            clock=clock,
            scene=("live_code", "invite", "wecom")[customer_id % 3],
        )

    return step


def _leave(ctx: Ctx, group_id: int, customer_id: int, reason: str) -> Step:
    def step(clock: FrozenClock) -> None:
        leave_group(
            ctx.session,
            workspace_id=ctx.workspace_id,
            group_id=group_id,
            customer_id=customer_id,
            at=clock.now(),
            clock=clock,
            reason=reason,
        )

    return step


def _assistant(ctx: Ctx, group_id: int, customer_id: int) -> Step:
    def step(clock: FrozenClock) -> None:
        set_role(
            ctx.session,
            actor=ctx.actor,
            group_id=group_id,
            customer_id=customer_id,
            role=GroupMemberRole.ADMIN,
            clock=clock,
        )

    return step


def _dismiss(ctx: Ctx) -> Step:
    def step(clock: FrozenClock) -> None:
        dismiss_due(ctx.session, clock=clock, workspace_id=ctx.workspace_id)

    return step


def fill_days(ctx: Ctx, group_ids: list[int]) -> int:
    """Every day of each group's life gets its count (the daily snapshot job's work, day by day)."""
    written = 0
    for spec, group_id in zip(GROUPS, group_ids, strict=True):
        group = ctx.session.get(CommunityGroup, group_id)
        assert group is not None
        first = ctx.today - timedelta(days=spec.created_days_ago)
        last = ctx.today - timedelta(days=spec.ends_days_ago) if spec.ends_days_ago is not None else ctx.today
        day = first
        while day <= last:
            snapshot_day(ctx.session, group, day)
            written += 1
            day += timedelta(days=1)
    return written
