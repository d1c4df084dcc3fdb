"""Group SOP calendars still post to community groups: a flash group gets its posts until it is dismissed."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.campaigns.calendars.posting import post_due_group_messages
from siyu.community.groups.tasks import dismiss_flash_groups
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import GroupPost
from siyu.models.group import GroupKind
from tests.campaigns.calendars.factories import make_calendar
from tests.factories import make_group, make_workspace
from tests.messaging.factories import make_account, make_content


def test_a_calendar_posts_to_a_flash_group_until_it_is_dismissed(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given a long-term and a flash group (ending Tuesday 08:00 Shanghai) on a Mon+Tue morning calendar
    ws = make_workspace(db, clock=clock, name="花间集")
    steady = make_group(db, workspace=ws, clock=clock, name="长期群")
    flash = make_group(db, workspace=ws, clock=clock, name="闪购群")
    flash.kind, flash.ends_at = GroupKind.FLASH, datetime.fromisoformat("2026-11-24T00:00:00+00:00")
    account = make_account(db, workspace=ws, clock=clock)
    item = make_content(db, workspace=ws, clock=clock, body="早安！")
    make_calendar(
        db, workspace=ws, clock=clock, groups_=[steady, flash], account=account, entries=[([1, 2], "morning", item)]
    )
    db.commit()
    # when the sweeps run on Monday 10:00 and again on Tuesday 10:00 Shanghai
    monday = post_due_group_messages(database, clock)
    clock.advance(timedelta(days=1))
    dismissed = dismiss_flash_groups(database, clock, workspace_id=ws.id)
    tuesday = post_due_group_messages(database, clock)
    # then Monday posted to both, the flash group was dismissed, and Tuesday posted to the long-term group only
    assert (monday["sent"], dismissed["dismissed"], tuesday["sent"]) == (2, 1, 1)
    db.expire_all()
    posts = db.execute(
        select(GroupPost.group_id, GroupPost.post_date).order_by(GroupPost.post_date, GroupPost.group_id)
    ).all()
    assert [tuple(p) for p in posts] == [
        (steady.id, date(2026, 11, 23)),
        (flash.id, date(2026, 11, 23)),
        (steady.id, date(2026, 11, 24)),
    ]
