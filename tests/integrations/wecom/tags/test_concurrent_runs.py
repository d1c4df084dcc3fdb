"""Two tag syncs of one workspace at the same time (pull now + the periodic push): one runs, the
other is skipped, and a pull never acts on a tag list older than a push it overlapped."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from siyu.db import Database, set_database
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.tags import tasks
from siyu.kit.clock import FrozenClock
from siyu.models import WecomSyncRun
from tests.concurrency import committed_database, outcome_names  # noqa: F401 - fixture `database`
from tests.integrations.wecom.helpers import wecom_workspace


@pytest.fixture
def shared(database: Database) -> Iterator[Database]:
    set_database(database)
    yield database
    set_database(None)


def test_overlapping_tag_syncs_run_one_at_a_time(
    shared: Database, clock: FrozenClock, fake_wecom: RunningFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shared.engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL only")
    with shared.transaction() as session:
        setup = wecom_workspace(session, clock=clock, fake=fake_wecom)
        workspace_id = setup.workspace.id
    real_push = tasks.push
    running = threading.Event()  # the first sync is inside its push
    second_done = threading.Event()

    def held_push(*args: Any, **kwargs: Any) -> dict[str, int]:
        # The first sync to get here waits until the other sync has run its course, so the two truly
        # overlap however slow the machine; were both let through, the wait times out and the
        # assertion below fails.
        if not running.is_set():
            running.set()
            second_done.wait(timeout=20)
        return real_push(*args, **kwargs)

    def first() -> Any:
        return tasks.run_tag_sync(workspace_id, "push", clock)

    def second() -> Any:
        running.wait(timeout=20)
        try:
            return tasks.run_tag_sync(workspace_id, "push", clock)
        finally:
            second_done.set()

    monkeypatch.setattr(tasks, "push", held_push)
    results = outcome_names([first, second])
    skipped = [r for r in results if isinstance(r, dict) and r.get("skipped") == "already running"]
    done = [r for r in results if isinstance(r, dict) and "created" in r]
    assert (len(skipped), len(done)) == (1, 1)
    with shared.transaction(read_only=True) as session:
        runs = session.scalars(
            select(WecomSyncRun.status).where(WecomSyncRun.workspace_id == workspace_id, WecomSyncRun.scope == "tags")
        ).all()
    assert list(runs) == ["done"]
