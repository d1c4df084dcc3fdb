"""Members liking one post at the same moment: every like counts once and `likes_count` is exact;
a check-in submitted several times at once posts and pays once.

Real commits from separate threads, each with its own connection (SQLite serialises writers;
PostgreSQL's unique key and the atomic `likes_count + 1` keep the count exact)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from siyu.community.challenges import posts, service
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Member, PointsEntry
from siyu.models.challenge import ChallengeEntry, Post, PostLike
from tests.community.challenges.factories import make_challenge
from tests.concurrency import committed_database, run_together  # noqa: F401 - fixture `database`: real commits
from tests.conftest import NOW
from tests.factories import actor_for, make_customer, make_workspace

MEMBERS = 6


def test_concurrent_likes_keep_the_count_exact(database: Database) -> None:
    # given a post and six members, two of whom double-tap (like twice at once)
    clock = FrozenClock(NOW)
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        people = [make_customer(session, actor=actor_for(ws), clock=clock).customer.id for _ in range(MEMBERS)]
        post = posts.create_post(
            session, workspace_id=ws.id, customer_id=people[0], topic="晒单", body="好", images=[], clock=clock
        )
        ws_id, post_id = ws.id, post.id

    def liker(customer_id: int) -> Callable[[], None]:
        def job() -> None:
            with database.transaction() as session:
                posts.like(session, workspace_id=ws_id, post_id=post_id, customer_id=customer_id, clock=clock)

        return job

    # when they all like at the same instant
    errors = run_together([liker(c) for c in people] + [liker(people[1]), liker(people[2])])
    # then every member counts once and the cached count equals the rows
    assert errors == []
    with database.session() as session:
        rows = session.scalar(select(func.count()).select_from(PostLike).where(PostLike.post_id == post_id))
        count = session.scalar(select(Post.likes_count).where(Post.id == post_id))
    assert (rows, count) == (MEMBERS, MEMBERS)


def test_concurrent_double_check_in_posts_and_pays_once(database: Database) -> None:
    # given a member and a published challenge paying 10 points a day
    clock = FrozenClock(NOW)
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        challenge = make_challenge(session, workspace=ws, clock=clock)
        member = make_customer(session, actor=actor_for(ws), clock=clock).customer
        ws_id, challenge_id, customer_id = ws.id, challenge.id, member.id

    def submit() -> None:
        with database.transaction() as session:
            service.check_in(
                session, workspace_id=ws_id, challenge_id=challenge_id, customer_id=customer_id, body="早",
                images=[], clock=clock,
            )  # fmt: skip

    # when the same check-in arrives three times at once (a triple tap)
    errors = run_together([submit, submit, submit])
    # then one post, one day done, 10 points
    assert errors == []
    with database.session() as session:
        count = session.scalar(select(func.count()).select_from(Post).where(Post.customer_id == customer_id))
        days = session.scalar(select(ChallengeEntry.days_done).where(ChallengeEntry.customer_id == customer_id))
        points = session.scalar(
            select(func.coalesce(func.sum(PointsEntry.amount), 0))
            .join(Member, Member.id == PointsEntry.member_id)
            .where(Member.customer_id == customer_id)
        )
    assert (count, days, points) == (1, 1, 10)
