"""The demo brand's touch side: channels, content, a sent broadcast with results, SOPs and calendars."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.campaigns.results import broadcast_results
from siyu.db import Database
from siyu.demo import build_demo
from siyu.demo.touch import SANDBOX_SMS, SANDBOX_WECOM, build_touch
from siyu.demo.touch.library import CONTENT
from siyu.kit.clock import FrozenClock
from siyu.messaging.planning import bucket
from siyu.models import (
    Broadcast,
    ChannelAccount,
    CommunityGroup,
    ContentItem,
    CustomerEvent,
    Delivery,
    GroupCalendar,
    GroupCalendarEntry,
    Job,
    Journey,
    MomentPost,
    Order,
    Persona,
    Script,
    ShortLink,
    ShortLinkClick,
    TouchPolicy,
)

CUSTOMERS = 300


@pytest.fixture
def built(database: Database, clock: FrozenClock) -> None:
    assert build_demo(database, customers=CUSTOMERS, clock=clock) is True
    assert build_touch(database, clock=clock) is True


def _count(db: Session, model: type) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def test_the_demo_has_its_touch_set_up(built: None, db: Session) -> None:
    accounts = {a.name: (a.kind, a.settings) for a in db.scalars(select(ChannelAccount))}
    assert accounts == {
        SANDBOX_WECOM: ("sandbox", {"consent_channel": "wecom"}),
        SANDBOX_SMS: ("sandbox", {"consent_channel": "sms"}),
    }
    policy = db.scalars(select(TouchPolicy)).one()
    assert (policy.caps, policy.quiet_start, policy.quiet_end, policy.approval_threshold) == (
        {"all": {"day": 2, "week": 5, "month": 12}},
        "21:00",
        "09:00",
        10_000,
    )
    contents = {c.name: c for c in db.scalars(select(ContentItem))}
    assert sorted(contents) == sorted(CONTENT) and len(contents) == 8
    assert contents["复购提醒"].tags == ["复购提醒"]
    assert "{{ name }}" in contents["复购提醒"].body and "{{ link }}" in contents["复购提醒"].body
    assert contents["复购提醒"].link_url == "https://qiwu.example.com/h5/new-arrivals"
    assert sorted(n for n, c in contents.items() if not c.is_marketing) == ["售后关怀", "新客欢迎", "朋友圈·生活"]
    assert Counter(db.scalars(select(Script.stage))) == {"greeting": 2, "follow_up": 1, "objection": 1, "after_sale": 1}


def test_three_broadcasts_one_sent_one_scheduled_one_awaiting_approval(built: None, db: Session) -> None:
    broadcasts = db.scalars(select(Broadcast).order_by(Broadcast.id)).all()
    assert [(b.name, b.status, b.holdout_pct) for b in broadcasts] == [
        ("冬装上新 · 高价值复购客", "done", 10),
        ("会员日提醒 · 近30天活跃", "scheduled", 10),
        ("大促预热 · 沉睡唤醒", "pending_approval", 10),
    ]
    sent, scheduled, pending = broadcasts
    # sent at noon six days ago (brand time), scheduled for tomorrow 20:00 (brand time)
    assert sent.started_at == datetime(2026, 11, 17, 4, 0, tzinfo=UTC)
    assert scheduled.scheduled_at == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert (pending.requested_by, pending.audience_size) == ("私域运营 · 苏苏", 66)
    assert [v["key"] for v in sent.variants] == ["A", "B"]
    # only the sent broadcast has deliveries, and its planning job is recorded as done
    assert set(db.scalars(select(Delivery.source_id).distinct())) == {sent.id}
    jobs = db.scalars(select(Job).where(Job.kind == "plan_broadcast")).all()
    assert [(j.status, j.args) for j in jobs] == [("succeeded", {"broadcast_id": sent.id})]


def test_the_sent_broadcast_has_results_with_an_uplift(built: None, db: Session, clock: FrozenClock) -> None:
    sent = db.scalars(select(Broadcast).order_by(Broadcast.id)).first()
    assert sent is not None
    results = broadcast_results(db, actor=Actor.system(sent.workspace_id), broadcast_id=sent.id, clock=clock)
    rows = db.execute(select(Delivery.customer_id, Delivery.status).where(Delivery.source_id == sent.id)).all()
    # the audience is the segment at the send; the holdout is the documented 10 % hash of the customer id
    assert results.planned == len(rows) == sent.audience_size
    holdout = {cid for cid, _ in rows if bucket(f"broadcast:{sent.id}:holdout", cid) < 1000}
    assert {cid for cid, status in rows if status == "holdout"} == holdout
    assert results.holdout is not None and results.holdout.customers == len(holdout)
    # every treated member was reached (the wecom sandbox, or the sms one for those who left wecom)
    assert results.sent == results.treated.customers == len(rows) - len(holdout)
    assert results.suppressed_by_reason == {}
    # engagement: the documented shares of the seeded hash
    salt = f"7:broadcast:{sent.id}"
    treated = [cid for cid, _ in rows if cid not in holdout]
    delivered = [cid for cid in treated if bucket(salt + ":delivered", cid) < 9_200]
    read = [cid for cid in delivered if bucket(salt + ":read", cid) < 6_000]
    clicked = [cid for cid in read if bucket(salt + ":clicked", cid) < 2_500]
    assert (results.delivered, results.read, results.clicked) == (len(delivered), len(read), len(clicked))
    links = select(ShortLink.id).where(ShortLink.campaign.like(f"broadcast:{sent.id}:%"))
    assert db.scalar(select(func.count()).where(ShortLinkClick.link_id.in_(links))) == len(clicked)
    clicks = db.scalar(select(func.count()).where(CustomerEvent.type == "link.clicked"))
    assert clicks == len(clicked)
    # and the message's buyers: the treated arm converts more often than the holdout
    variants = Counter(
        db.scalars(select(Delivery.variant).where(Delivery.source_id == sent.id, Delivery.status != "holdout"))
    )
    assert [(v.key, v.recipients, v.sent) for v in results.variants] == [
        ("A", variants["A"], variants["A"]),
        ("B", variants["B"], variants["B"]),
    ]
    assert sum(v.recipients for v in results.variants) == results.treated.customers
    # (the sign of the uplift is the data's, not a rule: with the small test demo a holdout of a few
    # customers can out-buy the treated arm; the 20,000-customer demo shows +6.3 points)
    assert results.uplift is not None
    assert results.uplift.ci_low <= results.uplift.difference <= results.uplift.ci_high
    assert results.uplift.rate_treated == results.treated.conversions / results.treated.customers
    assert results.treated.conversions > 0
    extra = db.scalar(select(func.count()).where(Order.external_id.like(f"%T{sent.id:03d}%")))
    assert extra is not None and extra > 0


def test_journeys_scripts_moments_and_the_group_calendar(built: None, db: Session) -> None:
    contents = {c.name: c.id for c in db.scalars(select(ContentItem))}
    journeys = db.scalars(select(Journey).order_by(Journey.id)).all()
    assert [(j.name, j.status, j.trigger) for j in journeys] == [
        ("新客 7 天 SOP", "active", {"type": "relationship_added"}),
        ("生日关怀", "draft", {"type": "birthday", "days_before": 3}),
    ]
    sop = journeys[0]
    assert sop.steps == [
        {"id": "s1", "type": "send", "content_id": contents["新客欢迎"]},
        {"id": "s2", "type": "wait", "days": 3},
        {
            "id": "s3",
            "type": "branch",
            "condition": {"event_type": "order.paid", "since_enrolment": True},
            "then": "s5",
            "else": "s4",
        },
        {"id": "s4", "type": "send", "content_id": contents["复购提醒"]},
        {"id": "s5", "type": "exit"},
    ]
    assert sop.goal == {"type": "order"}
    # only adds after activation enrol
    assert sop.watermark == db.scalar(
        select(func.max(CustomerEvent.id)).where(
            CustomerEvent.type != "link.clicked", ~CustomerEvent.idempotency_key.like("demo:touch-order:%")
        )
    )
    persona = db.scalars(select(Persona)).one()
    posts = db.scalars(select(MomentPost).where(MomentPost.persona_id == persona.id)).all()
    assert len(posts) == 10
    assert sum(p.is_marketing for p in posts) == 2  # 20 %, the most the policy allows
    assert {p.post_date for p in posts} == {date(2026, 11, 23 + d) for d in range(7)}
    # the test clock is Monday 10:00 in Shanghai: only Monday morning's post is out
    assert Counter(p.status for p in posts) == {"published": 1, "planned": 9}
    calendar = db.scalars(select(GroupCalendar)).one()
    assert sorted(calendar.group_ids) == sorted(db.scalars(select(CommunityGroup.id)))
    assert len(calendar.group_ids) == 3
    assert _count(db, GroupCalendarEntry) == 3


def test_building_the_touch_demo_twice_changes_nothing(
    built: None, database: Database, db: Session, clock: FrozenClock
) -> None:
    before = [_count(db, m) for m in (ChannelAccount, ContentItem, Broadcast, Delivery, Journey, Order)]
    assert build_touch(database, clock=clock) is False
    assert [_count(db, m) for m in (ChannelAccount, ContentItem, Broadcast, Delivery, Journey, Order)] == before


def test_without_the_demo_brand_nothing_is_built(database: Database, db: Session, clock: FrozenClock) -> None:
    assert build_touch(database, clock=clock) is False
    assert _count(db, ChannelAccount) == 0
