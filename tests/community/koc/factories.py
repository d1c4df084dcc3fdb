"""Factories for the KOC program tests."""

from __future__ import annotations

from datetime import date, datetime
from itertools import count
from typing import Any

from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.community.koc.questionnaires import create_questionnaire, set_status
from siyu.community.koc.schemas import FieldIn, QuestionnaireIn
from siyu.kit.clock import Clock
from siyu.models import Customer, Workspace
from siyu.models.challenge import Challenge, Post, PostLike, PostStatus
from siyu.models.commission import CommissionRule
from siyu.models.koc import Questionnaire
from siyu.models.referral import Referral, ReferralCode, ReferralProgram, ReferralStatus

_seq = count(1)

APPLICATION_FIELDS: list[dict[str, Any]] = [
    {"key": "nickname", "label": "昵称", "type": "text", "required": True, "max_length": 10},
    {"key": "about", "label": "自我介绍", "type": "textarea", "required": False, "max_length": 50},
    {"key": "followers", "label": "粉丝数", "type": "number", "required": True, "min": 0, "max": 1000000},
    {"key": "phone", "label": "手机号", "type": "phone", "required": True},
    {"key": "platform", "label": "主要平台", "type": "single", "required": True, "choices": ["小红书", "抖音", "微博"]},
    {"key": "topics", "label": "擅长内容", "type": "multi", "required": False, "choices": ["穿搭", "护肤", "美食"]},
]

VALID_ANSWERS: dict[str, Any] = {
    "nickname": "小雨",
    "about": "爱分享",
    "followers": "1200",
    "phone": "13800138000",
    "platform": "小红书",
    "topics": ["穿搭", "护肤"],
}


def make_questionnaire(
    db: Session,
    *,
    actor: Actor,
    clock: Clock,
    fields: list[dict[str, Any]] | None = None,
    purpose: str = "koc_application",
    is_open: bool = True,
    slug: str | None = None,
) -> Questionnaire:
    data = QuestionnaireIn(
        slug=slug or f"koc-{next(_seq)}",
        title="KOC 招募",
        intro="欢迎申请成为品牌体验官",
        purpose=purpose,
        fields=[FieldIn(**f) for f in (APPLICATION_FIELDS if fields is None else fields)],
    )
    q = create_questionnaire(db, actor=actor, data=data, clock=clock)
    if is_open:
        set_status(db, actor=actor, questionnaire_id=q.id, status="open", clock=clock)
    return q


def make_referrals(
    db: Session,
    *,
    workspace: Workspace,
    referrer: Customer,
    referees: list[Customer],
    clock: Clock,
    status: ReferralStatus = ReferralStatus.QUALIFIED,
    at: datetime | None = None,
) -> list[Referral]:
    now = clock.now()
    program = ReferralProgram(workspace_id=workspace.id, name=f"老带新{next(_seq)}", created_at=now, updated_at=now)
    db.add(program)
    db.flush()
    code = ReferralCode(
        workspace_id=workspace.id,
        program_id=program.id,
        customer_id=referrer.id,
        code=f"C{next(_seq):07d}",
        created_at=now,
    )
    db.add(code)
    db.flush()
    rows = [
        Referral(
            workspace_id=workspace.id,
            program_id=program.id,
            code_id=code.id,
            referrer_customer_id=referrer.id,
            referee_customer_id=referee.id,
            status=status,
            attributed_at=at or now,
        )
        for referee in referees
    ]
    db.add_all(rows)
    db.flush()
    return rows


def make_post(
    db: Session,
    *,
    customer: Customer,
    clock: Clock,
    status: PostStatus = PostStatus.VISIBLE,
    challenge: Challenge | None = None,
    day: date | None = None,
    created_at: datetime | None = None,
) -> Post:
    post = Post(
        workspace_id=customer.workspace_id,
        customer_id=customer.id,
        challenge_id=challenge.id if challenge else None,
        day=day,
        topic="晒单",
        body="好用",
        status=status,
        created_at=created_at or clock.now(),
    )
    db.add(post)
    db.flush()
    return post


def make_challenge(db: Session, *, workspace: Workspace, clock: Clock) -> Challenge:
    now = clock.now()
    challenge = Challenge(
        workspace_id=workspace.id,
        title="7 天穿搭打卡",
        topic="穿搭",
        starts_on=date(2026, 11, 1),
        ends_on=date(2026, 11, 30),
        created_at=now,
        updated_at=now,
    )
    db.add(challenge)
    db.flush()
    return challenge


def like(db: Session, *, post: Post, customer: Customer, at: datetime) -> PostLike:
    row = PostLike(workspace_id=post.workspace_id, post_id=post.id, customer_id=customer.id, created_at=at)
    db.add(row)
    db.flush()
    return row


def make_commission_rule(db: Session, *, workspace: Workspace, clock: Clock, is_active: bool = True) -> CommissionRule:
    now = clock.now()
    rule = CommissionRule(
        workspace_id=workspace.id,
        name="KOC 10%",
        rate_bp=1000,
        days=30,
        is_active=is_active,
        created_at=now,
        updated_at=now,
    )
    db.add(rule)
    db.flush()
    return rule
