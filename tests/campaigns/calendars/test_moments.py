"""Personas and moments: the weekly marketing-share cap (exactly at the cap allowed, above refused),
publishing due posts as one staff task each, and per-post results."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.campaigns.calendars import moments, personas
from siyu.campaigns.calendars.moments import publish_due_moments
from siyu.campaigns.calendars.schemas import MomentIn, MomentPatch, MomentResultsIn, PersonaIn
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import Conflict, InvalidInput, PermissionDenied
from siyu.models import ContentItem, MomentPost, Role, Slot, StaffTask, Workspace
from tests.campaigns.calendars.factories import make_moment, make_persona
from tests.factories import actor_for, make_staff, make_workspace
from tests.messaging.factories import make_content, make_policy

MONDAY = date(2026, 11, 23)
SLOTS = ["morning", "noon", "evening"]


def _contents(db: Session, ws: Workspace, clock: FrozenClock) -> tuple[ContentItem, ContentItem]:
    life = make_content(db, workspace=ws, clock=clock, body="今天的咖啡", is_marketing=False, name="生活照")
    offer = make_content(
        db,
        workspace=ws,
        clock=clock,
        body="{{ brand }}限时福利 {{ link }}",
        link_url="https://shop.example.com/x",
        name="福利",
    )
    return life, offer


def _plan_life(db: Session, ws: Workspace, clock: FrozenClock, persona, life: ContentItem, n: int) -> None:  # type: ignore[no-untyped-def]
    for i in range(n):
        make_moment(
            db,
            workspace=ws,
            clock=clock,
            persona=persona,
            content=life,
            on=date(2026, 11, 23 + i // 3),
            slot=SLOTS[i % 3],
        )


def test_marketing_share_at_the_cap_is_allowed_and_above_is_refused(db: Session, clock: FrozenClock) -> None:
    # given a persona with 8 life posts this week and the default 20% cap
    ws = make_workspace(db, clock=clock)
    persona = make_persona(db, workspace=ws, clock=clock)
    life, offer = _contents(db, ws, clock)
    _plan_life(db, ws, clock, persona, life, 8)
    # when two offers are planned: 2/10 = 20% is allowed
    make_moment(db, workspace=ws, clock=clock, persona=persona, content=offer, on=date(2026, 11, 26), slot="noon")
    make_moment(db, workspace=ws, clock=clock, persona=persona, content=offer, on=date(2026, 11, 26), slot="evening")
    # then a third (3/11 = 27%) is refused with the numbers, and nothing is added
    with pytest.raises(InvalidInput) as caught:
        make_moment(db, workspace=ws, clock=clock, persona=persona, content=offer, on=date(2026, 11, 27))
    assert caught.value.message == "本周营销内容将占 3/11 = 27%，超过 20%"
    assert caught.value.details == {"field": "is_marketing", "marketing": 3, "total": 11, "cap_pct": 20}
    week = moments.moment_week(db, actor_for(ws), persona.id, MONDAY)
    assert (week.total, week.marketing, week.share_pct, week.cap_pct) == (10, 2, 20, 20)


def test_the_cap_is_the_workspace_setting_and_counts_per_iso_week(db: Session, clock: FrozenClock) -> None:
    # given a 30% cap and 7 life posts this week
    ws = make_workspace(db, clock=clock)
    make_policy(db, workspace=ws, clock=clock, moments_marketing_share=30)
    persona = make_persona(db, workspace=ws, clock=clock)
    life, offer = _contents(db, ws, clock)
    _plan_life(db, ws, clock, persona, life, 7)
    # when offers are added: 3/10 = 30% is allowed, 4/11 is not
    for day, slot in [(26, "evening"), (27, "morning"), (27, "noon")]:
        make_moment(db, workspace=ws, clock=clock, persona=persona, content=offer, on=date(2026, 11, day), slot=slot)
    with pytest.raises(InvalidInput, match=r"本周营销内容将占 4/11 = 36%，超过 30%"):
        make_moment(
            db, workspace=ws, clock=clock, persona=persona, content=offer, on=date(2026, 11, 27), slot="evening"
        )
    # and next week (Monday 30th) starts from zero: a first offer alone is 100%
    with pytest.raises(InvalidInput, match=r"1/1 = 100%"):
        make_moment(db, workspace=ws, clock=clock, persona=persona, content=offer, on=date(2026, 11, 30))
    # but marked as not marketing it is allowed
    post = make_moment(
        db, workspace=ws, clock=clock, persona=persona, content=offer, on=date(2026, 11, 30), is_marketing=False
    )
    assert post.is_marketing is False


def test_changes_that_would_push_the_week_over_the_cap_are_refused(db: Session, clock: FrozenClock) -> None:
    # given 4 life posts and 1 offer (20%)
    ws = make_workspace(db, clock=clock)
    persona = make_persona(db, workspace=ws, clock=clock)
    life, offer = _contents(db, ws, clock)
    _plan_life(db, ws, clock, persona, life, 4)
    offer_post = make_moment(
        db, workspace=ws, clock=clock, persona=persona, content=offer, on=date(2026, 11, 25), slot="noon"
    )
    first_life = db.scalars(select(MomentPost).where(MomentPost.is_marketing.is_(False))).first()
    assert first_life is not None
    actor = actor_for(ws)
    # then removing a life post (1/4 = 25%) and flagging one as marketing (2/5) are refused
    with pytest.raises(InvalidInput, match=r"1/4 = 25%"):
        moments.delete_moment(db, actor=actor, moment_id=first_life.id, clock=clock)
    with pytest.raises(InvalidInput, match=r"2/5 = 40%"):
        moments.update_moment(
            db, actor=actor, moment_id=first_life.id, data=MomentPatch(is_marketing=True), clock=clock
        )
    # while removing the offer is fine
    moments.delete_moment(db, actor=actor, moment_id=offer_post.id, clock=clock)
    assert db.get(MomentPost, first_life.id) is not None


def test_a_slot_holds_one_post_and_past_days_are_refused(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    persona = make_persona(db, workspace=ws, clock=clock)
    life, _offer = _contents(db, ws, clock)
    make_moment(db, workspace=ws, clock=clock, persona=persona, content=life, on=MONDAY)
    with pytest.raises(Conflict):
        make_moment(db, workspace=ws, clock=clock, persona=persona, content=life, on=MONDAY)
    with pytest.raises(InvalidInput) as caught:
        make_moment(db, workspace=ws, clock=clock, persona=persona, content=life, on=date(2026, 11, 22))
    assert caught.value.details == {"field": "post_date"}
    personal = make_content(db, workspace=ws, clock=clock, body="{{ name }}看这里")
    with pytest.raises(InvalidInput) as caught:
        make_moment(db, workspace=ws, clock=clock, persona=persona, content=personal, on=MONDAY, slot="noon")
    assert caught.value.details == {"field": "content_id", "variable": "name"}


def test_publishing_makes_one_task_per_due_post(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a persona of staff member 小林 with a morning and an evening post today (10:00 Shanghai)
    ws = make_workspace(db, clock=clock, name="花间集")
    staff = make_staff(db, workspace=ws, clock=clock, name="小林")
    persona = make_persona(db, workspace=ws, clock=clock, staff=staff, name="护肤顾问小林")
    life, offer = _contents(db, ws, clock)
    morning = make_moment(db, workspace=ws, clock=clock, persona=persona, content=offer, on=MONDAY, is_marketing=False)
    evening = make_moment(db, workspace=ws, clock=clock, persona=persona, content=life, on=MONDAY, slot="evening")
    db.commit()
    # when publishing runs twice
    first = publish_due_moments(database, clock)
    second = publish_due_moments(database, clock)
    # then only the morning post (08:30 has passed) became a task, once
    assert first == {"published": 1, "failed": 0, "already": 0}
    assert second == {"published": 0, "failed": 0, "already": 0}
    db.expire_all()
    tasks = db.scalars(select(StaffTask)).all()
    assert [(t.staff_id, t.source, t.source_id, t.idempotency_key, t.status) for t in tasks] == [
        (staff.id, "moment", morning.id, f"moment:{morning.id}", "open")
    ]
    assert tasks[0].title == "发朋友圈（护肤顾问小林 · 早上）：福利"
    assert tasks[0].body == "花间集限时福利 https://shop.example.com/x\nhttps://shop.example.com/x"
    post = db.get(MomentPost, morning.id)
    assert post is not None and (post.status, post.published_at) == ("published", clock.now())
    assert db.get(MomentPost, evening.id).status == "planned"  # type: ignore[union-attr]
    # and at 20:00 the evening post follows
    clock.set(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    assert publish_due_moments(database, clock)["published"] == 1
    assert len(db.scalars(select(StaffTask)).all()) == 2


def test_publishing_one_post_twice_makes_one_task(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    persona = make_persona(db, workspace=ws, clock=clock)
    life, _offer = _contents(db, ws, clock)
    post = make_moment(db, workspace=ws, clock=clock, persona=persona, content=life, on=MONDAY)
    assert moments.publish_post(db, post.id, clock) == "published"
    post.status = "planned"  # as if a second publisher had read it before the first committed
    assert moments.publish_post(db, post.id, clock) == "published"
    assert len(db.scalars(select(StaffTask)).all()) == 1


def test_results_are_recorded_and_published_posts_are_history(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    persona = make_persona(db, workspace=ws, clock=clock)
    life, offer = _contents(db, ws, clock)
    post = make_moment(db, workspace=ws, clock=clock, persona=persona, content=life, on=MONDAY)
    moments.publish_post(db, post.id, clock)
    actor = actor_for(ws)
    moments.record_results(db, actor=actor, moment_id=post.id, data=MomentResultsIn(likes=12, comments=3), clock=clock)
    assert (post.likes, post.comments) == (12, 3)
    with pytest.raises(Conflict):
        moments.update_moment(db, actor=actor, moment_id=post.id, data=MomentPatch(content_id=offer.id), clock=clock)
    with pytest.raises(PermissionDenied):
        moments.record_results(
            db,
            actor=actor_for(ws, role=Role.STAFF),
            moment_id=post.id,
            data=MomentResultsIn(likes=0, comments=0),
            clock=clock,
        )
    assert post.likes == 12


def test_persona_crud_checks_staff_and_urls(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    other = make_workspace(db, clock=clock)
    foreign_staff = make_staff(db, workspace=other, clock=clock)
    actor = actor_for(ws)
    with pytest.raises(InvalidInput) as caught:
        personas.create_persona(db, actor=actor, data=PersonaIn(name="小林", staff_id=foreign_staff.id), clock=clock)
    assert caught.value.details == {"field": "staff_id"}
    with pytest.raises(InvalidInput) as caught:
        personas.create_persona(db, actor=actor, data=PersonaIn(name="小林", avatar_url="javascript:x"), clock=clock)
    assert caught.value.details == {"field": "avatar_url"}
    persona = personas.create_persona(
        db, actor=actor, data=PersonaIn(name=" 小林 ", signature="懂护肤", tone="温暖专业"), clock=clock
    )
    assert (persona.name, persona.signature, persona.tone, persona.staff_id) == ("小林", "懂护肤", "温暖专业", None)
    life, _offer = _contents(db, ws, clock)
    make_moment(db, workspace=ws, clock=clock, persona=persona, content=life, on=MONDAY)
    personas.update_persona(db, actor=actor, persona_id=persona.id, data=PersonaIn(name="小林老师"), clock=clock)
    assert (persona.name, persona.signature) == ("小林老师", None)
    with pytest.raises(PermissionDenied):
        personas.delete_persona(db, actor=actor_for(ws, role=Role.STORE_MANAGER), persona_id=persona.id, clock=clock)
    personas.delete_persona(db, actor=actor, persona_id=persona.id, clock=clock)
    assert db.scalars(select(MomentPost)).all() == []
    assert personas.list_personas(db, actor) == []


def test_update_moment_defaults_marketing_from_new_content(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    persona = make_persona(db, workspace=ws, clock=clock)
    life, offer = _contents(db, ws, clock)
    _plan_life(db, ws, clock, persona, life, 5)
    post = db.scalars(select(MomentPost).order_by(MomentPost.id)).first()
    assert post is not None
    moments.update_moment(
        db, actor=actor_for(ws), moment_id=post.id, data=MomentPatch(content_id=offer.id), clock=clock
    )
    assert (post.content_id, post.is_marketing) == (offer.id, True)
    data = MomentIn(persona_id=persona.id, post_date=date(2026, 11, 24), slot=Slot.EVENING, content_id=offer.id)
    with pytest.raises(InvalidInput, match="2/6"):
        moments.plan_moment(db, actor=actor_for(ws), data=data, clock=clock)
