"""A template that fails to render (`{{ 1/0 }}`, written straight to the database past the save
checks) fails its own post only: the sweeps go on with the others, and previews are a 422."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.campaigns.calendars import scripts
from siyu.campaigns.calendars.moments import publish_due_moments
from siyu.campaigns.calendars.posting import post_due_group_messages
from siyu.campaigns.calendars.schemas import ScriptIn
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.models import ContentItem, GroupPost, MomentPost, Script, StaffTask
from tests.campaigns.calendars.factories import make_calendar, make_moment, make_persona, make_script
from tests.factories import actor_for, make_customer, make_group, make_staff, make_workspace
from tests.messaging.factories import make_account, make_content

MONDAY = date(2026, 11, 23)
BROKEN = "{{ 1/0 }}"


def _break(db: Session, item: ContentItem) -> None:
    """Write the failing template directly: the content checks would refuse it on save."""
    db.execute(update(ContentItem).where(ContentItem.id == item.id).values(body=BROKEN))
    db.commit()
    db.expire_all()


def test_the_group_sweep_fails_the_broken_post_and_posts_the_others(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given two calendars due this Monday morning, one whose content now divides by zero
    ws = make_workspace(db, clock=clock, name="花间集")
    good_group, bad_group = make_group(db, workspace=ws, clock=clock), make_group(db, workspace=ws, clock=clock)
    account = make_account(db, workspace=ws, clock=clock)
    good = make_content(db, workspace=ws, clock=clock, body="早安，{{ brand }}")
    bad = make_content(db, workspace=ws, clock=clock, body="早安")
    for group, item in ((good_group, good), (bad_group, bad)):
        make_calendar(db, workspace=ws, clock=clock, groups_=[group], account=account, entries=[([1], "morning", item)])
    _break(db, bad)
    # when the sweep runs (twice)
    first = post_due_group_messages(database, clock)
    second = post_due_group_messages(database, clock)
    # then the good post went out and the broken one is recorded failed with the reason
    assert first == {"calendars": 2, "sent": 1, "failed": 1, "already": 0}
    assert second == {"calendars": 2, "sent": 0, "failed": 0, "already": 0}
    db.expire_all()
    posts = {p.group_id: (p.post_date, p.status, p.error) for p in db.scalars(select(GroupPost))}
    assert posts[good_group.id] == (MONDAY, "sent", None)
    assert posts[bad_group.id][:2] == (MONDAY, "failed")
    assert posts[bad_group.id][2] == "body: ZeroDivisionError: division by zero (with sample values)"


def test_moment_publishing_fails_the_broken_post_and_publishes_the_others(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given two personas with a post due this morning, one whose content now divides by zero
    ws = make_workspace(db, clock=clock, name="花间集")
    good_persona = make_persona(db, workspace=ws, clock=clock, staff=make_staff(db, workspace=ws, clock=clock))
    bad_persona = make_persona(db, workspace=ws, clock=clock, staff=make_staff(db, workspace=ws, clock=clock))
    good = make_content(db, workspace=ws, clock=clock, body="今天的咖啡", is_marketing=False)
    bad = make_content(db, workspace=ws, clock=clock, body="今天的茶", is_marketing=False)
    good_post = make_moment(db, workspace=ws, clock=clock, persona=good_persona, content=good, on=MONDAY)
    bad_post = make_moment(db, workspace=ws, clock=clock, persona=bad_persona, content=bad, on=MONDAY)
    db.commit()
    _break(db, bad)
    # when publishing runs (twice)
    first = publish_due_moments(database, clock)
    second = publish_due_moments(database, clock)
    # then the good post became a task and the broken one failed, without a task
    assert first == {"published": 1, "failed": 1, "already": 0}
    assert second == {"published": 0, "failed": 0, "already": 0}
    db.expire_all()
    assert [(p.id, p.status) for p in db.scalars(select(MomentPost).order_by(MomentPost.id))] == [
        (good_post.id, "published"),
        (bad_post.id, "failed"),
    ]
    assert [t.source_id for t in db.scalars(select(StaffTask))] == [good_post.id]


def test_a_script_that_cannot_render_is_refused_on_save_and_its_preview_is_a_422(
    db: Session, clock: FrozenClock
) -> None:
    # given a workspace, a customer and a script
    ws = make_workspace(db, clock=clock, name="花间集")
    actor = actor_for(ws)
    customer = make_customer(db, actor=actor, clock=clock, name="王小姐").customer
    script = make_script(db, workspace=ws, clock=clock, body="{{ name }}您好")
    # when a failing template is saved, then it is refused naming the body
    with pytest.raises(InvalidInput) as caught:
        scripts.create_script(db, actor=actor, data=ScriptIn(stage="greeting", title="坏", body=BROKEN), clock=clock)
    assert caught.value.details == {"field": "body"}
    assert caught.value.message == "the script cannot be rendered: body: ZeroDivisionError: division by zero"
    # when one is already stored (written past the checks), then its preview is a 422 naming the body
    db.execute(update(Script).where(Script.id == script.id).values(body=BROKEN))
    db.expire_all()
    with pytest.raises(InvalidInput) as caught:
        scripts.preview_script(db, actor=actor, script_id=script.id, customer_id=customer.id)
    assert caught.value.details == {"field": "body"}
    assert "ZeroDivisionError" in caught.value.message
