"""Challenges, members and images for the challenge tests."""

from __future__ import annotations

import io
from datetime import date

from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.community.challenges import service
from siyu.community.challenges.schemas import ChallengeIn
from siyu.kit.clock import Clock
from siyu.models import Customer, Member, PointsEntry, Workspace
from siyu.models.challenge import Challenge, ChallengeStatus
from tests.factories import actor_for, make_customer


def make_challenge(
    db: Session,
    *,
    workspace: Workspace,
    clock: Clock,
    title: str = "7天早餐打卡",
    topic: str = "早餐打卡",
    starts_on: date = date(2026, 11, 20),
    ends_on: date = date(2026, 11, 30),
    days_required: int = 3,
    points_per_day: int = 10,
    completion_bonus: int = 50,
    status: ChallengeStatus = ChallengeStatus.PUBLISHED,
) -> Challenge:
    """A challenge (published by default) open on the test clock's day, 2026-11-23 in Shanghai."""
    data = ChallengeIn(
        title=title,
        topic=topic,
        starts_on=starts_on,
        ends_on=ends_on,
        days_required=days_required,
        points_per_day=points_per_day,
        completion_bonus=completion_bonus,
    )
    challenge = service.create_challenge(db, actor=actor_for(workspace), data=data, clock=clock)
    if status != ChallengeStatus.DRAFT:
        service.set_status(db, actor=actor_for(workspace), challenge_id=challenge.id, status=status, clock=clock)
    return challenge


def make_person(db: Session, *, workspace: Workspace, clock: Clock, name: str = "王芳") -> Customer:
    return make_customer(db, actor=actor_for(workspace), clock=clock, name=name).customer


def balance(db: Session, customer: Customer) -> int:
    """The customer's points: the sum of their ledger (0 without a member row)."""
    total = db.scalar(
        select(func.coalesce(func.sum(PointsEntry.amount), 0))
        .join(Member, Member.id == PointsEntry.member_id)
        .where(Member.customer_id == customer.id)
    )
    return int(total or 0)


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (40, 30), *, exif: bool = False) -> bytes:
    image = Image.new("RGB", size, "#d9480f")
    out = io.BytesIO()
    if exif:
        data = Image.Exif()
        data[0x010F] = "SecretCam"  # Make
        image.save(out, fmt, exif=data.tobytes())
    else:
        image.save(out, fmt)
    return out.getvalue()
