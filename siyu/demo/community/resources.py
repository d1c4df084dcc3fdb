"""The demo brand's resources library, through the resources service: two guides and two news items
published over the last weeks (one for 高级 members and up, one pinned), a draft, and members' reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from siyu.community.resources.schemas import ResourceIn
from siyu.community.resources.service import create_resource, publish, record_view
from siyu.demo.community.context import Ctx
from siyu.demo.community.timeline import Step
from siyu.kit.clock import FrozenClock
from siyu.models import Resource, ResourceKind, Tier

READS = 80


@dataclass(frozen=True)
class Item:
    kind: ResourceKind
    title: str
    summary: str
    body: str
    days_ago: int | None
    """Published this many days ago; None = still a draft."""
    pinned: bool = False
    upper_tiers: bool = False


ITEMS = (
    Item(
        ResourceKind.GUIDE,
        "羊毛大衣护理指南",
        "干洗还是手洗？挂着还是叠着？一篇讲清楚。",
        "1. 穿着后用软毛刷顺着纹理轻刷，去除灰尘。\n2. 挂在宽肩衣架上通风，避免阳光直晒。\n"
        "3. 局部污渍用冷水轻拍，不要揉搓。\n4. 换季收纳前干洗一次，放入防尘袋并加樟木块。",
        40,
        pinned=True,
    ),
    Item(
        ResourceKind.GUIDE,
        "尺码对照表与量体方法",
        "胸围、腰围、臀围怎么量，一张表选对尺码。",
        "量胸围：软尺绕胸部最丰满处一周。\n量腰围：腰部最细处。\n量臀围：臀部最丰满处。\n"
        "XS 80/62/86　S 84/66/90　M 88/70/94　L 92/74/98　XL 96/78/102（cm）",
        25,
    ),
    Item(
        ResourceKind.NEWS,
        "会员抢先看：冬季新品系列",
        "12 月新品系列提前曝光，高级会员可提前 48 小时购买。",
        "本季主打羊绒混纺与新中式元素，共 24 款。高级及以上会员将在开售前 48 小时收到专属购买链接。",
        6,
        upper_tiers=True,
    ),
    Item(
        ResourceKind.NEWS,
        "双 12 会员日活动预告",
        "会员日满 500 减 50，积分抽奖同步开启。",
        "活动时间：12 月 10 日至 12 日。会员日券可在会员中心领取，积分抽奖每次消耗 50 积分。",
        2,
    ),
    Item(ResourceKind.GUIDE, "春季通勤穿搭指南（草稿）", "", "待补充。", None),
)


def plan(ctx: Ctx) -> None:
    """Create every item (published on its day) and plan members' reads of the published ones."""
    rng = ctx.rng
    upper = list(
        ctx.session.scalars(
            select(Tier.id).where(Tier.workspace_id == ctx.workspace_id, Tier.rank >= 1).order_by(Tier.rank)
        )
    )
    published: list[tuple[int, int]] = []
    for item in ITEMS:
        written = FrozenClock(ctx.local((item.days_ago or 1) + 1, 16))
        resource = create_resource(
            ctx.session,
            actor=ctx.actor,
            data=ResourceIn(
                kind=item.kind,
                title=item.title,
                summary=item.summary,
                body=item.body,
                visible_tier_ids=upper if item.upper_tiers else [],
                is_pinned=item.pinned,
            ),
            clock=written,
        )
        if item.days_ago is not None:
            publish(
                ctx.session, actor=ctx.actor, resource_id=resource.id, clock=FrozenClock(ctx.local(item.days_ago, 10))
            )
            if not item.upper_tiers:
                published.append((resource.id, item.days_ago))
    readers = [c for c in ctx.members if c not in ctx.busy]
    for _ in range(READS if readers and published else 0):
        resource_id, days_ago = rng.choice(published)
        at = ctx.between(ctx.local(days_ago, 11), ctx.now - timedelta(minutes=1))
        ctx.timeline.at(at, _read(ctx, resource_id, rng.choice(readers)))


def _read(ctx: Ctx, resource_id: int, customer_id: int) -> Step:
    def step(clock: FrozenClock) -> None:
        resource = ctx.session.get(Resource, resource_id)
        assert resource is not None
        record_view(ctx.session, resource=resource, customer_id=customer_id, action="read", clock=clock)

    return step
