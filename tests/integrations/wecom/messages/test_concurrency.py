"""Two reconciliations at once (real commits) remind a mass message once, and keep its count."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from siyu.db import Database
from siyu.integrations.wecom.config import client_for
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.messages.service import remind_due, sync_message_tasks
from siyu.kit.clock import FrozenClock
from siyu.models import WecomMessageTask
from tests.concurrency import committed_database, outcome_names  # noqa: F401 - fixture `database`
from tests.integrations.wecom.helpers import wecom_staff, wecom_workspace


def test_concurrent_runs_remind_once(clock: FrozenClock, database: Database, fake_wecom: RunningFake) -> None:
    with database.transaction() as session:
        setup = wecom_workspace(session, clock=clock, fake=fake_wecom)
        wecom_staff(session, setup, clock=clock, userid="lin")
        wecom_staff(session, setup, clock=clock, userid="zoe")
    setup.corp.clock = lambda: clock.now().timestamp()
    for external, userid in (("wmA", "lin"), ("wmB", "zoe")):
        setup.corp.contacts[external] = {"external_userid": external, "name": external, "type": 1}
        setup.corp.follows[f"{external}|{userid}"] = {"userid": userid, "createtime": 1700000000, "tags": []}
    msgid = client_for(setup.config).call(
        "POST", "externalcontact/add_msg_template", data={"external_userid": ["wmA", "wmB"]}
    )["msgid"]
    sync_message_tasks(database, setup.config, clock)
    clock.advance(timedelta(hours=7))

    outcomes = outcome_names([lambda: remind_due(database, setup.config, clock) for _ in range(2)])

    assert sorted(outcomes) == [0, 1]
    assert len(setup.corp.table("msg_tasks")[msgid]["reminds"]) == 1
    with database.transaction(read_only=True) as session:
        counts = session.scalars(
            select(WecomMessageTask.remind_count).where(WecomMessageTask.workspace_id == setup.workspace.id)
        ).all()
    assert counts == [1, 1]
    # a later full run sees the reminder and does not repeat it within REMIND_AFTER
    assert sync_message_tasks(database, setup.config, clock)["reminded"] == 0
