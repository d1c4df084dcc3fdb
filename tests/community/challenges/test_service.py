"""Challenges: setup validation, check-ins only on challenge days and once a day, points per day,
the completion bonus once with a certificate number, the loyalty post task, the leaderboard."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.community.challenges import service
from siyu.community.challenges.errors import ChallengeNotFound, ChallengeNotOpen, InvalidChallenge, InvalidPost
from siyu.community.challenges.images import clean_images
from siyu.community.challenges.schemas import ChallengeIn
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import PermissionDenied
from siyu.models import AuditEntry, Customer, LoyaltyTask, PointsEntry, Role, TaskCompletion, TaskKind
from siyu.models.challenge import Challenge, ChallengeStatus, Post, PostImage
from tests.community.challenges.factories import balance, image_bytes, make_challenge, make_person
from tests.factories import actor_for, make_workspace


def _data(**values: object) -> ChallengeIn:
    base: dict[str, object] = {
        "title": "7天早餐打卡",
        "topic": "#早餐打卡",
        "starts_on": date(2026, 11, 23),
        "ends_on": date(2026, 11, 29),
        "days_required": 7,
    }
    base.update(values)
    return ChallengeIn.model_validate(base)


def test_create_strips_the_hash_and_audits(db: Session, clock: FrozenClock) -> None:
    # given a workspace
    ws = make_workspace(db, clock=clock)
    # when an operator creates a 7-day challenge over 7 days
    challenge = service.create_challenge(db, actor=actor_for(ws), data=_data(), clock=clock)
    # then it is a draft with the topic without "#", and the change is audited
    assert (challenge.status, challenge.topic, challenge.days_required) == (ChallengeStatus.DRAFT, "早餐打卡", 7)
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == str(challenge.id))).all()
    assert "challenge.create" in actions


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"days_required": 8}, "days_required"),
        ({"ends_on": date(2026, 11, 22)}, "ends_on"),
        ({"topic": "#"}, "topic"),
    ],
)
def test_bad_setup_names_the_field(db: Session, clock: FrozenClock, values: dict[str, object], field: str) -> None:
    # given a workspace
    ws = make_workspace(db, clock=clock)
    # when the setup is impossible, then the error names the field and nothing is written
    with pytest.raises(InvalidChallenge) as refused:
        service.create_challenge(db, actor=actor_for(ws), data=_data(**values), clock=clock)
    assert refused.value.details == {"field": field}
    assert db.scalar(select(func.count()).select_from(Challenge).where(Challenge.workspace_id == ws.id)) == 0


def test_staff_cannot_create(db: Session, clock: FrozenClock) -> None:
    # given a staff member (no community:write)
    ws = make_workspace(db, clock=clock)
    # when they try to create a challenge, then it is refused
    with pytest.raises(PermissionDenied):
        service.create_challenge(db, actor=actor_for(ws, role=Role.STAFF), data=_data(), clock=clock)


def test_check_in_pays_the_day_once_and_a_double_submit_returns_the_first_post(db: Session, clock: FrozenClock) -> None:
    # given a published challenge with 10 points a day and a member
    ws = make_workspace(db, clock=clock)
    challenge = make_challenge(db, workspace=ws, clock=clock)
    member = make_person(db, workspace=ws, clock=clock)
    # when the member checks in twice on the same day (a double submit)
    first = service.check_in(
        db,
        workspace_id=ws.id,
        challenge_id=challenge.id,
        customer_id=member.id,
        body="燕麦+鸡蛋",
        images=[],
        clock=clock,
    )
    second = service.check_in(
        db,
        workspace_id=ws.id,
        challenge_id=challenge.id,
        customer_id=member.id,
        body="再来一次",
        images=[],
        clock=clock,
    )
    # then one post for 2026-11-23, 10 points once, one day done
    assert first.is_new and not second.is_new
    assert second.post.id == first.post.id and second.post.body == "燕麦+鸡蛋"
    assert first.post.day == date(2026, 11, 23)
    assert db.scalar(select(func.count()).select_from(Post).where(Post.customer_id == member.id)) == 1
    assert balance(db, member) == 10
    assert second.entry.days_done == 1


@pytest.mark.parametrize("days", [-4, 8])
def test_no_check_in_outside_the_dates(db: Session, clock: FrozenClock, days: int) -> None:
    # given a challenge from 2026-11-20 to 2026-11-30 and a member
    ws = make_workspace(db, clock=clock)
    challenge = make_challenge(db, workspace=ws, clock=clock)
    member = make_person(db, workspace=ws, clock=clock)
    # when the member checks in before it starts / after it ends
    clock.advance(timedelta(days=days))
    with pytest.raises(ChallengeNotOpen):
        service.check_in(
            db, workspace_id=ws.id, challenge_id=challenge.id, customer_id=member.id, body="早", images=[], clock=clock
        )
    # then nothing is written and no points are paid
    assert db.scalar(select(func.count()).select_from(Post).where(Post.customer_id == member.id)) == 0
    assert balance(db, member) == 0


def test_the_brand_day_decides_not_utc(db: Session, clock: FrozenClock) -> None:
    # given a challenge ending 2026-11-30 (Asia/Shanghai)
    ws = make_workspace(db, clock=clock)
    challenge = make_challenge(db, workspace=ws, clock=clock)
    member = make_person(db, workspace=ws, clock=clock)
    # when it is 2026-11-30T17:00Z = 2026-12-01 01:00 in Shanghai
    clock.advance(timedelta(days=7, hours=15))
    # then the challenge is over
    with pytest.raises(ChallengeNotOpen):
        service.check_in(
            db, workspace_id=ws.id, challenge_id=challenge.id, customer_id=member.id, body="晚", images=[], clock=clock
        )


def test_drafts_are_not_found_by_members(db: Session, clock: FrozenClock) -> None:
    # given a draft challenge
    ws = make_workspace(db, clock=clock)
    challenge = make_challenge(db, workspace=ws, clock=clock, status=ChallengeStatus.DRAFT)
    member = make_person(db, workspace=ws, clock=clock)
    # when a member tries to check in, then it is not found
    with pytest.raises(ChallengeNotFound):
        service.check_in(
            db, workspace_id=ws.id, challenge_id=challenge.id, customer_id=member.id, body="早", images=[], clock=clock
        )


def test_completion_bonus_and_certificate_once(db: Session, clock: FrozenClock) -> None:
    # given a 3-day challenge with 10 a day and a 50-point bonus
    ws = make_workspace(db, clock=clock)
    challenge = make_challenge(db, workspace=ws, clock=clock)
    member = make_person(db, workspace=ws, clock=clock)
    # when the member checks in on 4 days (with a double submit on the third)
    results = []
    for n in range(4):
        results.append(
            service.check_in(
                db,
                workspace_id=ws.id,
                challenge_id=challenge.id,
                customer_id=member.id,
                body=f"第{n + 1}天",
                images=[],
                clock=clock,
            )
        )
        if n == 2:
            service.check_in(
                db, workspace_id=ws.id, challenge_id=challenge.id, customer_id=member.id, body="重复", images=[],
                clock=clock,
            )  # fmt: skip
        clock.advance(timedelta(days=1))
    # then the bonus came once, on day 3, with a certificate number; 4×10 + 50 points
    assert [r.bonus for r in results] == [0, 0, 50, 0]
    entry = results[-1].entry
    assert entry.days_done == 4
    assert entry.certificate_no == f"CK{challenge.id:05d}-{entry.id:07d}"
    assert balance(db, member) == 90
    keys = db.scalars(select(PointsEntry.idempotency_key).order_by(PointsEntry.id)).all()
    assert f"challenge:{challenge.id}:{member.id}:bonus" in keys
    assert f"challenge:{challenge.id}:{member.id}:2026-11-25" in keys


def test_check_in_completes_the_loyalty_post_task(db: Session, clock: FrozenClock) -> None:
    # given a workspace with an active 晒单 task of 20 points, once a week
    ws = make_workspace(db, clock=clock)
    db.add(
        LoyaltyTask(
            workspace_id=ws.id, key="post", kind=TaskKind.POST, name="晒单分享", points=20, limit_period="week",
            limit_count=1, streak_bonuses={}, settings={}, is_active=True, sort_order=0, created_at=clock.now(),
            updated_at=clock.now(),
        )
    )  # fmt: skip
    challenge = make_challenge(db, workspace=ws, clock=clock, points_per_day=10)
    member = make_person(db, workspace=ws, clock=clock)
    # when the member checks in on two days of the same week
    for _day in range(2):
        service.check_in(
            db, workspace_id=ws.id, challenge_id=challenge.id, customer_id=member.id, body="早", images=[], clock=clock
        )
        clock.advance(timedelta(days=1))
    # then the task paid once (its weekly limit), the check-ins twice
    assert db.scalar(select(func.count()).select_from(TaskCompletion)) == 1
    assert balance(db, member) == 10 + 10 + 20


def test_bad_image_writes_nothing(db: Session, clock: FrozenClock) -> None:
    # given a member in a challenge
    ws = make_workspace(db, clock=clock)
    challenge = make_challenge(db, workspace=ws, clock=clock)
    member = make_person(db, workspace=ws, clock=clock)
    # when the second of two images is a PDF renamed .jpg
    with pytest.raises(InvalidPost) as refused:
        clean_images([image_bytes(), b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n"])
    # then the error names the field and the image, and nothing was stored
    assert refused.value.details == {"field": "images", "index": 1}
    assert db.scalar(select(func.count()).select_from(Post).where(Post.customer_id == member.id)) == 0
    # and a good check-in stores the re-encoded image
    done = service.check_in(
        db, workspace_id=ws.id, challenge_id=challenge.id, customer_id=member.id, body="图", clock=clock,
        images=clean_images([image_bytes("PNG")]),
    )  # fmt: skip
    stored = db.scalars(select(PostImage).where(PostImage.post_id == done.post.id)).all()
    assert [(i.content_type, i.width, i.height) for i in stored] == [("image/png", 40, 30)]


def test_empty_and_long_text_are_refused(db: Session, clock: FrozenClock) -> None:
    # given a member in a challenge
    ws = make_workspace(db, clock=clock)
    challenge = make_challenge(db, workspace=ws, clock=clock)
    member = make_person(db, workspace=ws, clock=clock)
    for body in ("   ", "字" * 1001):
        # when the text is blank or over 1000 characters, then "body" is named
        with pytest.raises(InvalidPost) as refused:
            service.check_in(
                db, workspace_id=ws.id, challenge_id=challenge.id, customer_id=member.id, body=body, images=[],
                clock=clock,
            )  # fmt: skip
        assert refused.value.details == {"field": "body"}
    assert balance(db, member) == 0


def test_leaderboard_orders_by_days_then_earliest_last_check_in(db: Session, clock: FrozenClock) -> None:
    # given three members: 李雷 2 days, 韩梅梅 2 days but later on the second day, 王芳 1 day
    ws = make_workspace(db, clock=clock)
    challenge = make_challenge(db, workspace=ws, clock=clock)
    lei, mei, fang = (make_person(db, workspace=ws, clock=clock, name=n) for n in ("李雷", "韩梅梅", "王芳"))

    def go(who: Customer) -> None:
        service.check_in(
            db,
            workspace_id=ws.id,
            challenge_id=challenge.id,
            customer_id=who.id,
            body="早",
            images=[],
            clock=clock,
        )

    go(mei)
    go(fang)
    go(lei)
    clock.advance(timedelta(days=1))
    go(lei)
    clock.advance(timedelta(minutes=5))
    go(mei)
    # when the leaderboard is read
    board = service.leaderboard(db, workspace_id=ws.id, challenge_id=challenge.id)
    # then
    assert [(r.rank, r.name, r.days_done) for r in board] == [(1, "李雷", 2), (2, "韩梅梅", 2), (3, "王芳", 1)]
