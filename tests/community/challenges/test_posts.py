"""Posts: topic posts, the feed (featured first, hidden only to the author), likes once per
member, moderation (feature/hide/unhide, reward once with a reason), images re-encoded."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.community.challenges import posts
from siyu.community.challenges.errors import InvalidPost, PostAlreadyRewarded, PostNotFound
from siyu.community.challenges.images import MAX_IMAGE_BYTES, clean_image, clean_images
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import PermissionDenied
from siyu.models import AuditEntry, PointsEntry, Role
from siyu.models.challenge import PostLike, PostStatus
from tests.community.challenges.factories import balance, image_bytes, make_person
from tests.factories import actor_for, make_workspace


def test_feed_puts_featured_first_and_shows_hidden_posts_only_to_their_author(db: Session, clock: FrozenClock) -> None:
    # given three posts in topic 晒单: an old one featured, a newer one, and a hidden one by 王芳
    ws = make_workspace(db, clock=clock)
    fang, lei = make_person(db, workspace=ws, clock=clock), make_person(db, workspace=ws, clock=clock, name="李雷")
    old = posts.create_post(
        db, workspace_id=ws.id, customer_id=lei.id, topic="#晒单", body="旧", images=[], clock=clock
    )
    clock.advance(timedelta(minutes=1))
    new = posts.create_post(db, workspace_id=ws.id, customer_id=lei.id, topic="晒单", body="新", images=[], clock=clock)
    clock.advance(timedelta(minutes=1))
    hidden = posts.create_post(
        db, workspace_id=ws.id, customer_id=fang.id, topic="晒单", body="藏", images=[], clock=clock
    )
    posts.create_post(db, workspace_id=ws.id, customer_id=lei.id, topic="别的", body="外", images=[], clock=clock)
    operator = actor_for(ws)
    posts.moderate(db, actor=operator, post_id=old.id, action="feature", clock=clock)
    posts.moderate(db, actor=operator, post_id=hidden.id, action="hide", clock=clock)
    # when each reads the 晒单 feed
    seen_by_lei = posts.feed(db, workspace_id=ws.id, viewer_customer_id=lei.id, topic="晒单")
    seen_by_fang = posts.feed(db, workspace_id=ws.id, viewer_customer_id=fang.id, topic="晒单")
    # then featured first, then newest; the hidden post only for its author
    assert [i.post.id for i in seen_by_lei] == [old.id, new.id]
    assert [i.post.id for i in seen_by_fang] == [old.id, hidden.id, new.id]
    assert [i.author for i in seen_by_lei] == ["李雷", "李雷"]


def test_like_once_and_unlike(db: Session, clock: FrozenClock) -> None:
    # given a post
    ws = make_workspace(db, clock=clock)
    author, fan = make_person(db, workspace=ws, clock=clock), make_person(db, workspace=ws, clock=clock)
    post = posts.create_post(
        db, workspace_id=ws.id, customer_id=author.id, topic="晒单", body="好", images=[], clock=clock
    )
    # when a member likes it twice, then it counts once
    posts.like(db, workspace_id=ws.id, post_id=post.id, customer_id=fan.id, clock=clock)
    assert posts.like(db, workspace_id=ws.id, post_id=post.id, customer_id=fan.id, clock=clock).likes_count == 1
    assert posts.feed(db, workspace_id=ws.id, viewer_customer_id=fan.id)[0].liked is True
    # when they unlike twice, then it is back to 0, never below
    posts.unlike(db, workspace_id=ws.id, post_id=post.id, customer_id=fan.id)
    assert posts.unlike(db, workspace_id=ws.id, post_id=post.id, customer_id=fan.id).likes_count == 0
    assert db.scalar(select(func.count()).select_from(PostLike)) == 0


def test_hidden_posts_cannot_be_liked_by_others(db: Session, clock: FrozenClock) -> None:
    # given a hidden post
    ws = make_workspace(db, clock=clock)
    author, fan = make_person(db, workspace=ws, clock=clock), make_person(db, workspace=ws, clock=clock)
    post = posts.create_post(
        db, workspace_id=ws.id, customer_id=author.id, topic="晒单", body="好", images=[], clock=clock
    )
    posts.moderate(db, actor=actor_for(ws), post_id=post.id, action="hide", clock=clock)
    # when another member likes it, then it is not found
    with pytest.raises(PostNotFound):
        posts.like(db, workspace_id=ws.id, post_id=post.id, customer_id=fan.id, clock=clock)


def test_reward_once_with_reason_and_audit(db: Session, clock: FrozenClock) -> None:
    # given a post
    ws = make_workspace(db, clock=clock)
    author = make_person(db, workspace=ws, clock=clock)
    post = posts.create_post(
        db, workspace_id=ws.id, customer_id=author.id, topic="晒单", body="好", images=[], clock=clock
    )
    # when the operator rewards it twice
    posts.reward_post(db, actor=actor_for(ws), post_id=post.id, points=30, reason="优质晒单", clock=clock)
    with pytest.raises(PostAlreadyRewarded):
        posts.reward_post(db, actor=actor_for(ws), post_id=post.id, points=30, reason="再奖", clock=clock)
    # then 30 points once, with the reason the member reads, and an audit row
    assert balance(db, author) == 30
    assert db.scalars(select(PointsEntry.description)).all() == ["优质晒单"]
    assert post.rewarded_points == 30
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "post.reward")) == 1


def test_moderation_needs_the_moderate_scope(db: Session, clock: FrozenClock) -> None:
    # given a post and a staff member (no community:moderate)
    ws = make_workspace(db, clock=clock)
    author = make_person(db, workspace=ws, clock=clock)
    post = posts.create_post(
        db, workspace_id=ws.id, customer_id=author.id, topic="晒单", body="好", images=[], clock=clock
    )
    staff = actor_for(ws, role=Role.STAFF)
    # when they try to hide or reward it, then it is refused and nothing changed
    with pytest.raises(PermissionDenied):
        posts.moderate(db, actor=staff, post_id=post.id, action="hide", clock=clock)
    with pytest.raises(PermissionDenied):
        posts.reward_post(db, actor=staff, post_id=post.id, points=5, reason="x", clock=clock)
    assert (post.status, post.rewarded_points, balance(db, author)) == (PostStatus.VISIBLE, 0, 0)


def test_topic_post_validation_names_the_field(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    author = make_person(db, workspace=ws, clock=clock)
    for topic, body, field in (("", "好", "topic"), ("晒单", "", "body"), ("x" * 41, "好", "topic")):
        with pytest.raises(InvalidPost) as refused:
            posts.create_post(
                db, workspace_id=ws.id, customer_id=author.id, topic=topic, body=body, images=[], clock=clock
            )
        assert refused.value.details == {"field": field}


# --- images ---------------------------------------------------------------------------------


def test_reencoding_drops_exif() -> None:
    # given a JPEG carrying EXIF (camera make)
    raw = image_bytes("JPEG", exif=True)
    assert b"SecretCam" in raw
    # when it is cleaned, then the stored JPEG has no EXIF left
    clean = clean_image(raw)
    assert b"SecretCam" not in clean.data
    assert (clean.content_type, clean.width, clean.height) == ("image/jpeg", 40, 30)
    with Image.open(io.BytesIO(clean.data)) as back:
        assert not back.getexif()


def test_webp_is_accepted() -> None:
    assert clean_image(image_bytes("WEBP")).content_type == "image/webp"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "images: the file is empty"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "images: not a readable JPEG, PNG or WebP image"),
        (image_bytes("GIF"), "images: only JPEG, PNG or WebP images"),
        (image_bytes("PNG", (4097, 1)), "images: at most 4096 pixels a side"),
        (b"\xff\xd8\xff" + b"0" * MAX_IMAGE_BYTES, "images: larger than 5 MB"),
        (image_bytes("JPEG")[:60], "images: not a readable JPEG, PNG or WebP image"),
    ],
    ids=["empty", "pdf", "gif", "too-wide", "too-big", "truncated"],
)
def test_bad_images_are_refused_naming_images(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidPost) as refused:
        clean_image(raw)
    assert refused.value.message == message
    assert refused.value.details == {"field": "images", "index": 0}


def test_at_most_nine_images() -> None:
    with pytest.raises(InvalidPost) as refused:
        clean_images([image_bytes()] * 10)
    assert refused.value.details == {"field": "images"}


def test_store_manager_sees_moderates_and_rewards_only_within_their_view(db: Session, clock: FrozenClock) -> None:
    # given two stores; 王芳 belongs to a guide of store B and posted; 李雷 to a guide of store A
    from tests.factories import make_staff, make_store

    ws = make_workspace(db, clock=clock)
    store_a, store_b = make_store(db, workspace=ws), make_store(db, workspace=ws, name="北京店")
    fang, lei = make_person(db, workspace=ws, clock=clock), make_person(db, workspace=ws, clock=clock, name="李雷")
    fang.owner_staff_id = make_staff(db, workspace=ws, clock=clock, store=store_b).id
    lei.owner_staff_id = make_staff(db, workspace=ws, clock=clock, store=store_a).id
    db.flush()
    theirs = posts.create_post(
        db, workspace_id=ws.id, customer_id=fang.id, topic="晒单", body="别店", images=[], clock=clock
    )
    mine = posts.create_post(
        db, workspace_id=ws.id, customer_id=lei.id, topic="晒单", body="本店", images=[], clock=clock
    )
    manager = actor_for(ws, role=Role.STORE_MANAGER, store_id=store_a.id)
    before = balance(db, fang)
    # when store A's manager reads, moderates and rewards
    queue = posts.list_posts(db, actor=manager)
    # then only their own store's customer's post exists for them
    assert [post.id for post, _name in queue] == [mine.id]
    assert posts.get_post(db, actor=manager, post_id=mine.id).id == mine.id
    with pytest.raises(PostNotFound):
        posts.get_post(db, actor=manager, post_id=theirs.id)
    with pytest.raises(PostNotFound):
        posts.moderate(db, actor=manager, post_id=theirs.id, action="hide", clock=clock)
    # and paying points needs loyalty:adjust, which a store manager lacks, even for their own post
    with pytest.raises(PermissionDenied):
        posts.reward_post(db, actor=manager, post_id=theirs.id, points=30, reason="优质", clock=clock)
    with pytest.raises(PermissionDenied):
        posts.reward_post(db, actor=manager, post_id=mine.id, points=30, reason="优质", clock=clock)
    db.refresh(theirs)
    db.refresh(mine)
    assert (theirs.status, theirs.rewarded_points, mine.rewarded_points) == (PostStatus.VISIBLE, 0, 0)
    assert balance(db, fang) == before
    assert balance(db, lei) == 0
    # an admin still sees both
    assert {post.id for post, _name in posts.list_posts(db, actor=actor_for(ws))} == {theirs.id, mine.id}
