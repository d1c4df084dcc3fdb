"""Check-in challenges (社区打卡) and member posts (UGC, 晒单): images, likes, moderation, certificates."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.models.base import Base, BigId, WorkspaceScoped


class ChallengeStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class Challenge(WorkspaceScoped, Base):
    """A check-in challenge: post on `days_required` days between `starts_on` and `ends_on`."""

    __tablename__ = "challenges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    topic: Mapped[str] = mapped_column(String(40))
    """The hashtag the posts share, e.g. "7天早餐打卡"."""
    description: Mapped[str] = mapped_column(Text, default="")
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    """Brand-local dates, inclusive."""
    days_required: Mapped[int] = mapped_column(default=7)
    points_per_day: Mapped[int] = mapped_column(default=0)
    completion_bonus: Mapped[int] = mapped_column(default=0)
    status: Mapped[ChallengeStatus] = mapped_column(String(10), default=ChallengeStatus.DRAFT)
    certificate_title: Mapped[str] = mapped_column(String(60), default="")
    """Printed on the completion certificate (电子证书); the challenge title when empty."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ChallengeEntry(WorkspaceScoped, Base):
    """A member's participation in a challenge."""

    __tablename__ = "challenge_entries"
    __table_args__ = (
        UniqueConstraint("challenge_id", "customer_id"),
        Index("ix_challenge_entries_board", "challenge_id", "days_done"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    challenge_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("challenges.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    days_done: Mapped[int] = mapped_column(default=0)
    last_day: Mapped[date | None]
    last_checked_in_at: Mapped[datetime | None]
    """When the latest check-in was posted: the leaderboard's tie-break (earlier ranks higher)."""
    joined_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    certificate_no: Mapped[str | None] = mapped_column(String(30))
    """Issued on completion; printed on the certificate and verifiable by the brand."""


class PostStatus(StrEnum):
    VISIBLE = "visible"
    FEATURED = "featured"
    """Picked by an operator (精选): shown first; counts towards the KOC score."""
    HIDDEN = "hidden"
    """Hidden by an operator; only its author still sees it."""


class Post(WorkspaceScoped, Base):
    """A member's post: a challenge check-in or a topic post (晒单)."""

    __tablename__ = "posts"
    __table_args__ = (
        # a member checks in once per challenge day: a double submit hits this key
        UniqueConstraint("challenge_id", "customer_id", "day"),
        Index("ix_posts_ws_topic_time", "workspace_id", "topic", "created_at"),
        Index("ix_posts_ws_status_time", "workspace_id", "status", "created_at"),
        Index("ix_posts_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    challenge_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("challenges.id", ondelete="CASCADE"))
    day: Mapped[date | None]
    """The challenge day this post checks in (brand-local); None for a topic post."""
    topic: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    """Plain text as the member typed it; always escaped when shown."""
    status: Mapped[PostStatus] = mapped_column(String(10), default=PostStatus.VISIBLE)
    likes_count: Mapped[int] = mapped_column(default=0)
    rewarded_points: Mapped[int] = mapped_column(default=0)
    """Points an operator gave for this post (once)."""
    moderated_by_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    moderated_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class PostImage(WorkspaceScoped, Base):
    """An image of a post, re-encoded server-side (JPEG/PNG/WebP in, ≤ 5 MB, ≤ 4096 px a side)."""

    __tablename__ = "post_images"
    __table_args__ = (Index("ix_post_images_post", "post_id", "position"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    post_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("posts.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)
    content_type: Mapped[str] = mapped_column(String(30))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    width: Mapped[int]
    height: Mapped[int]


class PostLike(WorkspaceScoped, Base):
    """A member liked a post (once)."""

    __tablename__ = "post_likes"
    __table_args__ = (UniqueConstraint("post_id", "customer_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    post_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("posts.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
