"""The demo brand's finished 7-day check-in challenge and its posts, through the challenges services:
40 members checking in (the diligent ones every day, so they complete and get a certificate), a few
posts with small photos, likes from the other participants, three posts featured (one also rewarded)
and an off-topic advert hidden; plus a few 晒单 topic posts of the last two weeks."""

from __future__ import annotations

import io
import random
from datetime import timedelta

from PIL import Image, ImageDraw

from siyu.community.challenges.images import CleanImage, clean_image
from siyu.community.challenges.posts import create_post, like, moderate, reward_post
from siyu.community.challenges.schemas import ChallengeIn
from siyu.community.challenges.service import check_in, create_challenge, set_status
from siyu.demo.community.context import Ctx
from siyu.demo.community.timeline import Step
from siyu.kit.clock import FrozenClock
from siyu.models import Post, PostStatus

PARTICIPANTS = 40
DAYS = 7
STARTED_DAYS_AGO = 21
DILIGENT = 0.45
IMAGE_RATE = 0.12
TOPIC = "七日穿搭打卡"
TEXTS = (
    "今天试了米色风衣配直筒裤，通勤刚刚好。",
    "Day{day}：白衬衫 + 针织背心，温柔又干练～",
    "降温了，羊毛大衣终于出场！",
    "今天走极简风，一件黑色高领毛衣搞定。",
    "周末出游穿了法式碎花裙，朋友都说好看。",
    "坚持打卡第 {day} 天，衣柜利用率提高了好多。",
    "尝试了新中式盘扣上衣，意外地百搭。",
    "今天下雨，选了防水短靴配阔腿裤。",
    "上班穿搭：灰色西装套装，配一点珍珠耳饰。",
    "在家办公也要好好穿，舒适的针织套装。",
    "第 {day} 天！今天的配色是燕麦色 + 焦糖色。",
    "跟着群里的搭配建议试了叠穿，效果不错～",
)
ADVERT = "加我微信 xxx 领大额优惠券，代购正品低价！"
TOPIC_POSTS = (
    "羊毛大衣到手，版型很正，颜色比图片还好看。",
    "第二次回购这条直筒裤了，长度刚好。",
    "针织开衫很软糯，洗了一次也没起球。",
    "门店小姐姐推荐的尺码很准，好评！",
    "围巾颜色很高级，配什么都好看。",
    "双 11 买的连衣裙，面料很舒服。",
)
COLORS = ((222, 203, 178), (176, 196, 222), (205, 170, 160), (190, 210, 180))


def _photos(rng: random.Random) -> list[CleanImage]:
    """Four small "outfit photos" drawn with Pillow and cleaned as an upload would be."""
    photos = []
    for n, color in enumerate(COLORS):
        image = Image.new("RGB", (240, 320), color)
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x, y = rng.randrange(0, 200), rng.randrange(0, 280)
            shade = tuple(max(0, c - rng.randrange(20, 80)) for c in color)
            draw.rounded_rectangle((x, y, x + rng.randrange(30, 90), y + rng.randrange(30, 120)), 12, fill=shade)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=80)
        photos.append(clean_image(out.getvalue(), index=n))
    return photos


def plan(ctx: Ctx) -> None:
    """Create and publish the challenge, then plan its check-ins, likes and moderation."""
    rng = ctx.rng
    created = FrozenClock(ctx.local(STARTED_DAYS_AGO + 6, 15))
    first_day = ctx.today - timedelta(days=STARTED_DAYS_AGO)
    challenge = create_challenge(
        ctx.session,
        actor=ctx.actor,
        data=ChallengeIn(
            title="七日穿搭打卡挑战",
            topic=TOPIC,
            description="连续 7 天晒出你的每日穿搭，每天打卡得 10 积分，完成 7 天再得 100 积分和电子证书。",
            starts_on=first_day,
            ends_on=first_day + timedelta(days=DAYS - 1),
            days_required=DAYS,
            points_per_day=10,
            completion_bonus=100,
            certificate_title="七日穿搭达人",
        ),
        clock=created,
    )
    set_status(ctx.session, actor=ctx.actor, challenge_id=challenge.id, status="published", clock=created)
    photos = _photos(rng)
    pool = [c for c in ctx.members if c not in ctx.busy]
    people = rng.sample(pool, min(PARTICIPANTS, len(pool)))
    habits = {c: (1.0 if rng.random() < DILIGENT else rng.uniform(0.35, 0.8)) for c in people}
    ctx.applicants.extend(people[:6])
    posts: dict[tuple[int, int], Post] = {}
    for day in range(DAYS):
        for customer_id, habit in habits.items():
            if rng.random() >= habit:
                continue
            at = ctx.local(STARTED_DAYS_AGO - day, rng.randrange(7, 23), rng.randrange(60))
            body = rng.choice(TEXTS).format(day=day + 1)
            images = rng.sample(photos, rng.choice((1, 1, 2))) if rng.random() < IMAGE_RATE else []
            ctx.timeline.at(at, _check_in(ctx, challenge.id, (customer_id, day), body, images, posts))
            for liker in rng.sample(people, rng.randrange(0, 4)):
                if liker != customer_id:
                    later = at + timedelta(minutes=rng.randrange(5, 60 * 36))
                    ctx.timeline.at(later, _like(ctx, posts, (customer_id, day), liker))
    advertiser = next(c for c in reversed(pool) if c not in habits)
    ctx.timeline.at(ctx.local(STARTED_DAYS_AGO - 2, 23, 50), _advert(ctx, challenge.id, advertiser))
    ctx.timeline.at(ctx.local(STARTED_DAYS_AGO - DAYS, 10), _moderate(ctx, posts))
    for n, text in enumerate(TOPIC_POSTS):
        author = pool[(n * 7) % len(pool)]
        at = ctx.local(13 - 2 * n, 20, rng.randrange(60))
        images = [photos[n % len(photos)]] if n % 2 == 0 else []
        ctx.timeline.at(at, _topic_post(ctx, author, text, images))


def _check_in(
    ctx: Ctx,
    challenge_id: int,
    key: tuple[int, int],
    body: str,
    images: list[CleanImage],
    posts: dict[tuple[int, int], Post],
) -> Step:
    def step(clock: FrozenClock) -> None:
        done = check_in(
            ctx.session,
            workspace_id=ctx.workspace_id,
            challenge_id=challenge_id,
            customer_id=key[0],
            body=body,
            images=images,
            clock=clock,
        )
        posts[key] = done.post

    return step


def _like(ctx: Ctx, posts: dict[tuple[int, int], Post], key: tuple[int, int], liker: int) -> Step:
    def step(clock: FrozenClock) -> None:
        post = posts.get(key)
        if post is not None:
            like(ctx.session, workspace_id=ctx.workspace_id, post_id=post.id, customer_id=liker, clock=clock)

    return step


def _advert(ctx: Ctx, challenge_id: int, customer_id: int) -> Step:
    def step(clock: FrozenClock) -> None:
        done = check_in(
            ctx.session,
            workspace_id=ctx.workspace_id,
            challenge_id=challenge_id,
            customer_id=customer_id,
            body=ADVERT,
            images=[],
            clock=clock,
        )
        if done.is_new:
            moderate(ctx.session, actor=ctx.actor, post_id=done.post.id, action="hide", clock=clock)

    return step


def _moderate(ctx: Ctx, posts: dict[tuple[int, int], Post]) -> Step:
    """After the challenge: the three most liked posts with photos (or text) featured, the best rewarded."""

    def step(clock: FrozenClock) -> None:
        for post in posts.values():
            ctx.session.refresh(post)
        ranked = sorted(
            (p for p in posts.values() if p.status == PostStatus.VISIBLE), key=lambda p: (-p.likes_count, p.id)
        )
        for post in ranked[:3]:
            moderate(ctx.session, actor=ctx.actor, post_id=post.id, action="feature", clock=clock)
        if ranked:
            reward_post(
                ctx.session, actor=ctx.actor, post_id=ranked[0].id, points=50, reason="优质打卡内容奖励", clock=clock
            )

    return step


def _topic_post(ctx: Ctx, customer_id: int, text: str, images: list[CleanImage]) -> Step:
    def step(clock: FrozenClock) -> None:
        create_post(
            ctx.session,
            workspace_id=ctx.workspace_id,
            customer_id=customer_id,
            topic="晒单",
            body=text,
            images=images,
            clock=clock,
        )

    return step
