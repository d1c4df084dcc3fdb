"""Check-in challenges (社区打卡): setup, joining, daily check-ins with points, completion bonus
and certificate number, leaderboard.

A check-in is a post with the unique key `(challenge, customer, day)`: a double submit finds the
first post and pays nothing again. Points go through the points service with the keys
`challenge:{id}:{customer}:{day}` (per day) and `challenge:{id}:{customer}:bonus` (once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.community.challenges.errors import ChallengeNotFound, ChallengeNotOpen, InvalidChallenge
from siyu.community.challenges.images import CleanImage
from siyu.community.challenges.posts import clean_body, complete_post_task, display_name, insert_post
from siyu.community.challenges.schemas import ChallengeIn
from siyu.kit.clock import Clock
from siyu.loyalty.h5.reading import local_day
from siyu.loyalty.points.service import award_points
from siyu.models import Customer, PointsReason
from siyu.models.challenge import Challenge, ChallengeEntry, ChallengeStatus, Post


def today_for(session: Session, workspace_id: int, clock: Clock) -> date:
    """The brand-local date now."""
    return local_day(session, workspace_id, clock)


def _check(data: ChallengeIn) -> None:
    if data.ends_on < data.starts_on:
        raise InvalidChallenge("ends_on: before starts_on", details={"field": "ends_on"})
    span = (data.ends_on - data.starts_on).days + 1
    if data.days_required > span:
        raise InvalidChallenge(
            f"days_required: at most {span} (the days between the dates)", details={"field": "days_required"}
        )
    if not data.title.strip():
        raise InvalidChallenge("title: required", details={"field": "title"})
    if not data.topic.strip().lstrip("#＃").strip():
        raise InvalidChallenge("topic: required", details={"field": "topic"})


def _apply(challenge: Challenge, data: ChallengeIn) -> None:
    challenge.title = data.title.strip()
    challenge.topic = data.topic.strip().lstrip("#＃").strip()
    challenge.description = data.description
    challenge.starts_on = data.starts_on
    challenge.ends_on = data.ends_on
    challenge.days_required = data.days_required
    challenge.points_per_day = data.points_per_day
    challenge.completion_bonus = data.completion_bonus
    challenge.certificate_title = data.certificate_title.strip()


def _snapshot(challenge: Challenge) -> dict[str, object]:
    return {
        "title": challenge.title,
        "topic": challenge.topic,
        "starts_on": challenge.starts_on.isoformat(),
        "ends_on": challenge.ends_on.isoformat(),
        "days_required": challenge.days_required,
        "points_per_day": challenge.points_per_day,
        "completion_bonus": challenge.completion_bonus,
        "status": str(challenge.status),
    }


def create_challenge(session: Session, *, actor: Actor, data: ChallengeIn, clock: Clock) -> Challenge:
    """A new draft challenge (community:write); audited."""
    actor.require(Scope.COMMUNITY_WRITE)
    _check(data)
    now = clock.now()
    challenge = Challenge(workspace_id=actor.workspace_id, status=ChallengeStatus.DRAFT, created_at=now, updated_at=now)
    _apply(challenge, data)
    session.add(challenge)
    session.flush()
    record(
        session, actor, action="challenge.create", entity_type="challenge", entity_id=challenge.id, clock=clock,
        after=_snapshot(challenge),
    )  # fmt: skip
    return challenge


def get_challenge(session: Session, *, workspace_id: int, challenge_id: int) -> Challenge:
    """A challenge of the workspace, else `ChallengeNotFound`."""
    challenge = session.get(Challenge, challenge_id)
    if challenge is None or challenge.workspace_id != workspace_id:
        raise ChallengeNotFound(f"challenge {challenge_id} not found", details={"field": "challenge_id"})
    return challenge


def update_challenge(
    session: Session, *, actor: Actor, challenge_id: int, data: ChallengeIn, clock: Clock
) -> Challenge:
    """Change a challenge (community:write); audited."""
    actor.require(Scope.COMMUNITY_WRITE)
    _check(data)
    challenge = get_challenge(session, workspace_id=actor.workspace_id, challenge_id=challenge_id)
    before = _snapshot(challenge)
    _apply(challenge, data)
    challenge.updated_at = clock.now()
    session.flush()
    record(
        session, actor, action="challenge.update", entity_type="challenge", entity_id=challenge.id, clock=clock,
        before=before, after=_snapshot(challenge),
    )  # fmt: skip
    return challenge


def set_status(session: Session, *, actor: Actor, challenge_id: int, status: str, clock: Clock) -> Challenge:
    """Publish, archive or return a challenge to draft (community:write); audited."""
    actor.require(Scope.COMMUNITY_WRITE)
    if status not in {s.value for s in ChallengeStatus}:
        raise InvalidChallenge("status: draft, published or archived", details={"field": "status"})
    challenge = get_challenge(session, workspace_id=actor.workspace_id, challenge_id=challenge_id)
    before = str(challenge.status)
    challenge.status = ChallengeStatus(status)
    challenge.updated_at = clock.now()
    session.flush()
    record(
        session, actor, action=f"challenge.{status}", entity_type="challenge", entity_id=challenge.id, clock=clock,
        before={"status": before}, after={"status": status},
    )  # fmt: skip
    return challenge


def list_challenges(session: Session, *, workspace_id: int, status: str | None = None) -> list[Challenge]:
    """The workspace's challenges, newest start first."""
    query = select(Challenge).where(Challenge.workspace_id == workspace_id)
    if status:
        query = query.where(Challenge.status == status)
    return list(session.scalars(query.order_by(Challenge.starts_on.desc(), Challenge.id.desc())))


def member_challenges(session: Session, *, workspace_id: int) -> list[Challenge]:
    """Published challenges a member can see, newest start first."""
    return list_challenges(session, workspace_id=workspace_id, status=ChallengeStatus.PUBLISHED)


def published(session: Session, *, workspace_id: int, challenge_id: int) -> Challenge:
    """A published challenge (members never see drafts or archived ones)."""
    challenge = get_challenge(session, workspace_id=workspace_id, challenge_id=challenge_id)
    if challenge.status != ChallengeStatus.PUBLISHED:
        raise ChallengeNotFound(f"challenge {challenge_id} not found", details={"field": "challenge_id"})
    return challenge


def entry_of(session: Session, *, challenge_id: int, customer_id: int) -> ChallengeEntry | None:
    """The member's participation, if they joined."""
    return session.scalar(
        select(ChallengeEntry).where(
            ChallengeEntry.challenge_id == challenge_id, ChallengeEntry.customer_id == customer_id
        )
    )


def join(session: Session, *, workspace_id: int, challenge_id: int, customer_id: int, clock: Clock) -> ChallengeEntry:
    """Join a published challenge that has not ended; joining twice returns the first entry."""
    challenge = published(session, workspace_id=workspace_id, challenge_id=challenge_id)
    if (found := entry_of(session, challenge_id=challenge.id, customer_id=customer_id)) is not None:
        return found
    if today_for(session, workspace_id, clock) > challenge.ends_on:
        raise ChallengeNotOpen("the challenge has ended", details={"field": "challenge_id"})
    try:
        with session.begin_nested():
            entry = ChallengeEntry(
                workspace_id=workspace_id,
                challenge_id=challenge.id,
                customer_id=customer_id,
                days_done=0,
                joined_at=clock.now(),
            )
            session.add(entry)
            session.flush()
    except IntegrityError:
        found = entry_of(session, challenge_id=challenge.id, customer_id=customer_id)
        assert found is not None
        return found
    return entry


@dataclass(frozen=True)
class CheckIn:
    """The outcome of a check-in submit."""

    post: Post
    entry: ChallengeEntry
    is_new: bool
    """False for a double submit: `post` is the day's first check-in and nothing was paid."""
    points: int
    bonus: int


def certificate_no(challenge: Challenge, entry: ChallengeEntry) -> str:
    """A certificate number the brand can look up: challenge and entry ids."""
    return f"CK{challenge.id:05d}-{entry.id:07d}"


def check_in(
    session: Session,
    *,
    workspace_id: int,
    challenge_id: int,
    customer_id: int,
    body: str,
    images: list[CleanImage],
    clock: Clock,
) -> CheckIn:
    """Today's check-in post (joins if needed): only on a challenge day, once a day. Pays the day's
    points, the completion bonus when days_done reaches days_required (once, with the certificate
    number), and the loyalty post task."""
    challenge = published(session, workspace_id=workspace_id, challenge_id=challenge_id)
    today = today_for(session, workspace_id, clock)
    if not challenge.starts_on <= today <= challenge.ends_on:
        raise ChallengeNotOpen(
            f"check-ins are open from {challenge.starts_on} to {challenge.ends_on}", details={"field": "day"}
        )
    text = clean_body(body)
    entry = join(session, workspace_id=workspace_id, challenge_id=challenge.id, customer_id=customer_id, clock=clock)
    post = insert_post(
        session,
        workspace_id=workspace_id,
        customer_id=customer_id,
        topic=challenge.topic,
        body=text,
        images=images,
        clock=clock,
        challenge_id=challenge.id,
        day=today,
    )
    if post is None:  # already checked in today: the first post stands, nothing is paid again
        first = session.scalar(
            select(Post).where(Post.challenge_id == challenge.id, Post.customer_id == customer_id, Post.day == today)
        )
        assert first is not None
        return CheckIn(post=first, entry=entry, is_new=False, points=0, bonus=0)
    locked = session.scalar(select(ChallengeEntry).where(ChallengeEntry.id == entry.id).with_for_update())
    assert locked is not None
    session.refresh(locked)
    locked.days_done += 1
    locked.last_day = today
    locked.last_checked_in_at = clock.now()
    points = bonus = 0
    if challenge.points_per_day > 0:
        award_points(
            session,
            workspace_id=workspace_id,
            customer_id=customer_id,
            points=challenge.points_per_day,
            reason=PointsReason.CHECK_IN,
            description=f"打卡挑战「{challenge.title}」{today.isoformat()}",
            idempotency_key=f"challenge:{challenge.id}:{customer_id}:{today.isoformat()}",
            clock=clock,
            source_ref=f"post:{post.id}",
        )
        points = challenge.points_per_day
    if locked.days_done >= challenge.days_required and locked.completed_at is None:
        locked.completed_at = clock.now()
        locked.certificate_no = certificate_no(challenge, locked)
        if challenge.completion_bonus > 0:
            award_points(
                session,
                workspace_id=workspace_id,
                customer_id=customer_id,
                points=challenge.completion_bonus,
                reason=PointsReason.TASK,
                description=f"完成打卡挑战「{challenge.title}」",
                idempotency_key=f"challenge:{challenge.id}:{customer_id}:bonus",
                clock=clock,
                source_ref=f"challenge:{challenge.id}",
            )
            bonus = challenge.completion_bonus
    session.flush()
    complete_post_task(session, workspace_id=workspace_id, customer_id=customer_id, post=post, clock=clock)
    return CheckIn(post=post, entry=locked, is_new=True, points=points, bonus=bonus)


@dataclass(frozen=True)
class BoardRow:
    """One line of the leaderboard."""

    rank: int
    customer_id: int
    name: str
    days_done: int
    last_day: date | None
    is_complete: bool
    certificate_no: str | None


def leaderboard(session: Session, *, workspace_id: int, challenge_id: int, limit: int = 50) -> list[BoardRow]:
    """Participants by days done (most first), then the earliest latest check-in."""
    rows = session.execute(
        select(ChallengeEntry, Customer.name)
        .join(Customer, Customer.id == ChallengeEntry.customer_id)
        .where(ChallengeEntry.workspace_id == workspace_id, ChallengeEntry.challenge_id == challenge_id)
        .order_by(
            ChallengeEntry.days_done.desc(),
            ChallengeEntry.last_checked_in_at.is_(None),
            ChallengeEntry.last_checked_in_at,
            ChallengeEntry.id,
        )
        .limit(limit)
    ).all()
    return [
        BoardRow(
            rank=n,
            customer_id=entry.customer_id,
            name=display_name(name, entry.customer_id),
            days_done=entry.days_done,
            last_day=entry.last_day,
            is_complete=entry.completed_at is not None,
            certificate_no=entry.certificate_no,
        )
        for n, (entry, name) in enumerate(rows, start=1)
    ]


def my_days(session: Session, *, challenge_id: int, customer_id: int) -> list[date]:
    """The days the member checked in, in order."""
    return [
        d
        for d in session.scalars(
            select(Post.day)
            .where(Post.challenge_id == challenge_id, Post.customer_id == customer_id)
            .order_by(Post.day)
        )
        if d is not None
    ]
