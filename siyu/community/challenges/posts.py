"""Member posts (晒单 and check-ins): writing, the topic feed, likes, and operator moderation.

A like is a unique `(post, customer)` row; the post's `likes_count` moves by an atomic UPDATE in
the same transaction as the row, so the count stays exact when members like at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import case, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.community.challenges.errors import InvalidPost, PostAlreadyRewarded, PostNotFound
from siyu.community.challenges.images import CleanImage
from siyu.customers.repository import visibility_clause
from siyu.kit.clock import Clock
from siyu.loyalty.member_tasks.service import complete_task_of_kind
from siyu.loyalty.points.service import award_points
from siyu.models import Customer, PointsReason, TaskKind
from siyu.models.challenge import Post, PostImage, PostLike, PostStatus

MAX_BODY = 1000
SHOWN = (PostStatus.VISIBLE, PostStatus.FEATURED)


def clean_body(body: str) -> str:
    """The post text as typed (trimmed); 1..1000 characters, else `InvalidPost` naming "body"."""
    text = (body or "").replace("\r\n", "\n").strip()
    if not text:
        raise InvalidPost("body: write something", details={"field": "body"})
    if len(text) > MAX_BODY:
        raise InvalidPost(f"body: at most {MAX_BODY} characters", details={"field": "body"})
    return text


def clean_topic(topic: str) -> str:
    """A topic (hashtag) without its leading #; 1..40 characters."""
    text = (topic or "").strip().lstrip("#＃").strip()
    if not text or len(text) > 40:
        raise InvalidPost("topic: 1 to 40 characters", details={"field": "topic"})
    return text


def insert_post(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int,
    topic: str,
    body: str,
    images: list[CleanImage],
    clock: Clock,
    challenge_id: int | None = None,
    day: date | None = None,
) -> Post | None:
    """Add a post and its images in a savepoint; None when the (challenge, customer, day) key
    already holds a check-in (a double submit), with nothing written."""
    try:
        with session.begin_nested():
            post = Post(
                workspace_id=workspace_id,
                customer_id=customer_id,
                challenge_id=challenge_id,
                day=day,
                topic=topic,
                body=body,
                status=PostStatus.VISIBLE,
                likes_count=0,
                rewarded_points=0,
                created_at=clock.now(),
            )
            session.add(post)
            session.flush()
            for position, image in enumerate(images):
                session.add(
                    PostImage(
                        workspace_id=workspace_id,
                        post_id=post.id,
                        position=position,
                        content_type=image.content_type,
                        data=image.data,
                        width=image.width,
                        height=image.height,
                    )
                )
            session.flush()
    except IntegrityError:
        return None
    return post


def complete_post_task(session: Session, *, workspace_id: int, customer_id: int, post: Post, clock: Clock) -> None:
    """Pay the workspace's loyalty `post` task (晒单) if it has an active one, within its limit
    (over it, the post still stands)."""
    complete_task_of_kind(
        session,
        workspace_id=workspace_id,
        customer_id=customer_id,
        kind=TaskKind.POST,
        ref=f"post:{post.id}",
        clock=clock,
    )


def create_post(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int,
    topic: str,
    body: str,
    images: list[CleanImage],
    clock: Clock,
) -> Post:
    """A member's topic post (晒单) outside any challenge; also completes the loyalty post task."""
    post = insert_post(
        session,
        workspace_id=workspace_id,
        customer_id=customer_id,
        topic=clean_topic(topic),
        body=clean_body(body),
        images=images,
        clock=clock,
    )
    assert post is not None  # only check-ins carry a unique day key
    complete_post_task(session, workspace_id=workspace_id, customer_id=customer_id, post=post, clock=clock)
    return post


@dataclass(frozen=True)
class FeedItem:
    """A post as the feed shows it to one member."""

    post: Post
    author: str
    image_ids: list[int] = field(default_factory=list)
    liked: bool = False
    is_mine: bool = False


def display_name(name: str | None, customer_id: int) -> str:
    """A member's name as other members see it: the name, else 会员 + id."""
    return name.strip() if name and name.strip() else f"会员{customer_id}"


def image_ids_of(session: Session, post_ids: list[int]) -> dict[int, list[int]]:
    """The image ids of each post, in order."""
    found: dict[int, list[int]] = {pid: [] for pid in post_ids}
    if post_ids:
        rows = session.execute(
            select(PostImage.post_id, PostImage.id)
            .where(PostImage.post_id.in_(post_ids))
            .order_by(PostImage.post_id, PostImage.position)
        )
        for post_id, image_id in rows:
            found[post_id].append(image_id)
    return found


def feed(
    session: Session,
    *,
    workspace_id: int,
    viewer_customer_id: int,
    topic: str | None = None,
    challenge_id: int | None = None,
    limit: int = 50,
) -> list[FeedItem]:
    """Visible posts, featured first then newest; a hidden post only to its author."""
    query = select(Post, Customer.name).join(Customer, Customer.id == Post.customer_id)
    query = query.where(
        Post.workspace_id == workspace_id,
        (Post.status.in_(SHOWN)) | (Post.customer_id == viewer_customer_id),
    )
    if topic:
        query = query.where(Post.topic == topic)
    if challenge_id is not None:
        query = query.where(Post.challenge_id == challenge_id)
    featured_first = case((Post.status == PostStatus.FEATURED, 0), else_=1)
    rows = session.execute(query.order_by(featured_first, Post.created_at.desc(), Post.id.desc()).limit(limit)).all()
    ids = [post.id for post, _name in rows]
    images = image_ids_of(session, ids)
    liked = set(
        session.scalars(
            select(PostLike.post_id).where(PostLike.post_id.in_(ids), PostLike.customer_id == viewer_customer_id)
        )
    )
    return [
        FeedItem(
            post=post,
            author=display_name(name, post.customer_id),
            image_ids=images[post.id],
            liked=post.id in liked,
            is_mine=post.customer_id == viewer_customer_id,
        )
        for post, name in rows
    ]


def _visible_post(session: Session, *, workspace_id: int, post_id: int, customer_id: int) -> Post:
    post = session.get(Post, post_id)
    if post is None or post.workspace_id != workspace_id:
        raise PostNotFound(f"post {post_id} not found", details={"field": "post_id"})
    if post.status not in SHOWN and post.customer_id != customer_id:
        raise PostNotFound(f"post {post_id} not found", details={"field": "post_id"})
    return post


def image_for_member(session: Session, *, workspace_id: int, image_id: int, customer_id: int) -> PostImage:
    """An image of a post the member may see (a hidden post's images only to its author)."""
    image = session.get(PostImage, image_id)
    if image is None or image.workspace_id != workspace_id:
        raise PostNotFound(f"image {image_id} not found", details={"field": "image_id"})
    _visible_post(session, workspace_id=workspace_id, post_id=image.post_id, customer_id=customer_id)
    return image


def image_for_staff(session: Session, *, actor: Actor, image_id: int) -> PostImage:
    """An image of a post the moderator may see (its author within their customer view)."""
    actor.require(Scope.COMMUNITY_READ)
    image = session.get(PostImage, image_id)
    if image is None or image.workspace_id != actor.workspace_id:
        raise PostNotFound(f"image {image_id} not found", details={"field": "image_id"})
    get_post(session, actor=actor, post_id=image.post_id)  # only of a post whose author the actor sees
    return image


def like(session: Session, *, workspace_id: int, post_id: int, customer_id: int, clock: Clock) -> Post:
    """Like a post once; a second like changes nothing."""
    post = _visible_post(session, workspace_id=workspace_id, post_id=post_id, customer_id=customer_id)
    try:
        with session.begin_nested():
            session.add(
                PostLike(workspace_id=workspace_id, post_id=post.id, customer_id=customer_id, created_at=clock.now())
            )
            session.flush()
    except IntegrityError:
        return post
    session.execute(
        update(Post)
        .where(Post.id == post.id)
        .values(likes_count=Post.likes_count + 1)
        .execution_options(synchronize_session=False)
    )
    session.refresh(post)
    return post


def unlike(session: Session, *, workspace_id: int, post_id: int, customer_id: int) -> Post:
    """Take a like back; without one, nothing changes."""
    post = _visible_post(session, workspace_id=workspace_id, post_id=post_id, customer_id=customer_id)
    deleted = session.execute(delete(PostLike).where(PostLike.post_id == post.id, PostLike.customer_id == customer_id))
    gone = int(getattr(deleted, "rowcount", 0) or 0)
    if gone:
        session.execute(
            update(Post)
            .where(Post.id == post.id)
            .values(likes_count=Post.likes_count - gone)
            .execution_options(synchronize_session=False)
        )
    session.refresh(post)
    return post


# --- moderation ---------------------------------------------------------------------------------

ACTIONS = {
    "feature": PostStatus.FEATURED,
    "unfeature": PostStatus.VISIBLE,
    "hide": PostStatus.HIDDEN,
    "unhide": PostStatus.VISIBLE,
}


def get_post(session: Session, *, actor: Actor, post_id: int) -> Post:
    """A post of the actor's workspace whose author the actor may see (community:read); staff and
    store managers see only their own customers' posts, others are `PostNotFound`."""
    actor.require(Scope.COMMUNITY_READ)
    post = session.scalar(
        select(Post)
        .join(Customer, Customer.id == Post.customer_id)
        .where(Post.id == post_id, Post.workspace_id == actor.workspace_id, visibility_clause(actor))
    )
    if post is None:
        raise PostNotFound(f"post {post_id} not found", details={"field": "post_id"})
    return post


def list_posts(
    session: Session,
    *,
    actor: Actor,
    topic: str | None = None,
    status: str | None = None,
    challenge_id: int | None = None,
    limit: int = 100,
) -> list[tuple[Post, str]]:
    """Posts for the moderation queue, newest first, with the author's name; only posts whose
    author is in the actor's customer view."""
    actor.require(Scope.COMMUNITY_READ)
    query = (
        select(Post, Customer.name)
        .join(Customer, Customer.id == Post.customer_id)
        .where(Post.workspace_id == actor.workspace_id, visibility_clause(actor))
    )
    if topic:
        query = query.where(Post.topic == topic)
    if status:
        if status not in {s.value for s in PostStatus}:
            raise InvalidPost("status: not a post status", details={"field": "status"})
        query = query.where(Post.status == status)
    if challenge_id is not None:
        query = query.where(Post.challenge_id == challenge_id)
    rows = session.execute(query.order_by(Post.created_at.desc(), Post.id.desc()).limit(limit)).all()
    return [(post, display_name(name, post.customer_id)) for post, name in rows]


def moderate(session: Session, *, actor: Actor, post_id: int, action: str, clock: Clock) -> Post:
    """Feature, unfeature, hide or unhide a post (community:moderate); audited."""
    actor.require(Scope.COMMUNITY_MODERATE)
    if action not in ACTIONS:
        raise InvalidPost("action: one of feature, unfeature, hide, unhide", details={"field": "action"})
    post = get_post(session, actor=actor, post_id=post_id)
    before = str(post.status)
    post.status = ACTIONS[action]
    post.moderated_by_user_id = actor.user_id
    post.moderated_at = clock.now()
    session.flush()
    record(
        session,
        actor,
        action=f"post.{action}",
        entity_type="post",
        entity_id=post.id,
        clock=clock,
        before={"status": before},
        after={"status": str(post.status)},
    )
    return post


def reward_post(session: Session, *, actor: Actor, post_id: int, points: int, reason: str, clock: Clock) -> Post:
    """Give the author points for a post, once (community:moderate); the reason is what the member
    reads in their points history. A second reward is refused (409), nothing paid twice. Paying
    points also needs loyalty:adjust (a store manager may moderate but not pay)."""
    actor.require(Scope.COMMUNITY_MODERATE)
    actor.require(Scope.LOYALTY_ADJUST)
    reason = (reason or "").strip()
    if not reason or len(reason) > 200:
        raise InvalidPost("reason: 1 to 200 characters", details={"field": "reason"})
    if not 1 <= points <= 100_000:
        raise InvalidPost("points: 1 to 100000", details={"field": "points"})
    post = get_post(session, actor=actor, post_id=post_id)
    claimed = session.execute(
        update(Post)
        .where(Post.id == post.id, Post.rewarded_points == 0)
        .values(rewarded_points=points, moderated_by_user_id=actor.user_id, moderated_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if not getattr(claimed, "rowcount", 0):
        raise PostAlreadyRewarded(f"post {post_id} was already rewarded", details={"field": "points"})
    session.refresh(post)
    entry = award_points(
        session,
        workspace_id=post.workspace_id,
        customer_id=post.customer_id,
        points=points,
        reason=PointsReason.TASK,
        description=reason,
        idempotency_key=f"post:{post.id}:reward",
        clock=clock,
        source_ref=f"post:{post.id}",
    )
    record(
        session,
        actor,
        action="post.reward",
        entity_type="post",
        entity_id=post.id,
        clock=clock,
        after={"points": points, "reason": reason, "entry_id": entry.id},
    )
    return post
