"""Two pushes of one workspace at the same instant (the periodic push and "sync now", or two saves):
the code's row lock makes the second see the first's ways, so each way exists once on WeCom and in siyu."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from siyu.db import Database
from siyu.integrations.wecom.client import WecomClient
from siyu.integrations.wecom.contactways.tasks import push_workspace
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.kit.clock import FrozenClock
from siyu.models import WecomContactWay
from tests.concurrency import committed_database, outcome_names  # noqa: F401 - fixture `database`
from tests.factories import make_live_code
from tests.integrations.wecom.helpers import wecom_staff, wecom_workspace


def test_concurrent_pushes_create_each_way_once(
    database: Database, clock: FrozenClock, fake_wecom: RunningFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_call = WecomClient.call

    def slow_calls(self: WecomClient, method: str, api: str, **kwargs: Any) -> dict[str, Any]:
        time.sleep(0.05)  # widen the window between reading the ways and saving new ones
        return real_call(self, method, api, **kwargs)

    monkeypatch.setattr(WecomClient, "call", slow_calls)
    with database.transaction() as session:
        setup = wecom_workspace(session, clock=clock, fake=fake_wecom)
        anna = wecom_staff(session, setup, clock=clock, userid="anna")
        bo = wecom_staff(session, setup, clock=clock, userid="bo")
        code = make_live_code(
            session, workspace=setup.workspace, clock=clock, routes=[{"staff_id": anna.id}, {"staff_id": bo.id}]
        )
        workspace_id, code_id = setup.workspace.id, code.id

    def push() -> dict[str, object]:
        return push_workspace(workspace_id, clock, database=database)

    results = outcome_names([push, push])
    assert sorted(int(r["created"]) for r in results) == [0, 3]
    with database.transaction(read_only=True) as session:
        ways = list(
            session.scalars(
                select(WecomContactWay).where(
                    WecomContactWay.live_code_id == code_id, WecomContactWay.deleted_at.is_(None)
                )
            )
        )
    assert sorted((w.route_id is None, tuple(w.pushed["user"])) for w in ways) == [
        (False, ("anna",)),
        (False, ("bo",)),
        (True, ("anna", "bo")),
    ]
    assert sorted(setup.corp.table("contact_ways")) == sorted(w.config_id for w in ways)
