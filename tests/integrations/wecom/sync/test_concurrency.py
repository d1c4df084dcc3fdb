"""Races with real commits: two syncs started at once, the same customer submitted twice."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from siyu.db import Database
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.sync.service import run_sync, start_run
from siyu.integrations.wecom.sync.transfers import submit_transfer
from siyu.kit.clock import FrozenClock
from siyu.models import Identity, Relationship, WecomSyncRun, WecomTransfer
from siyu.workspaces.scope import bind_workspace
from tests.concurrency import committed_database, outcome_names  # noqa: F401 - fixture `database`
from tests.integrations.wecom.helpers import wecom_staff, wecom_workspace
from tests.integrations.wecom.sync.pool import befriend


def test_two_syncs_started_at_once_share_one_run(
    database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    with database.transaction() as session:
        setup = wecom_workspace(session, clock=clock, fake=fake_wecom)
        wecom_staff(session, setup, clock=clock, userid="zhangsan")
        befriend(setup.corp, "wmA", "zhangsan")
        ws = setup.workspace.id

    def start() -> int:
        with database.transaction() as session:
            bind_workspace(session, ws)
            run = start_run(session, ws, clock, scope="customers")
            time.sleep(0.3)  # hold the transaction: the other caller must wait, then resume this run
            return run.id

    first, second = outcome_names([start, start])
    assert first == second
    assert run_sync(database, ws, clock, scope="customers").run_id == first
    with database.transaction(read_only=True) as session:
        bind_workspace(session, ws)
        runs = select(func.count()).select_from(WecomSyncRun).where(WecomSyncRun.workspace_id == ws)
        edges = select(func.count()).select_from(Relationship).where(Relationship.workspace_id == ws)
        assert (session.scalar(runs), session.scalar(edges)) == (1, 1)


def test_the_same_customer_submitted_twice_at_once_is_transferred_once(
    database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    with database.transaction() as session:
        setup = wecom_workspace(session, clock=clock, fake=fake_wecom)
        setup.corp.clock = lambda: clock.now().timestamp()
        zhang = wecom_staff(session, setup, clock=clock, userid="zhangsan").id
        li = wecom_staff(session, setup, clock=clock, userid="lisi").id
        befriend(setup.corp, "wmA", "zhangsan")
        ws = setup.workspace.id
    run_sync(database, ws, clock, scope="customers")
    with database.transaction(read_only=True) as session:
        customer_id = session.scalar(select(Identity.customer_id).where(Identity.workspace_id == ws))

    def submit() -> str:
        with database.transaction() as session:
            bind_workspace(session, ws)
            rows = submit_transfer(
                session,
                setup.config,
                kind="on_job",
                handover_staff_id=zhang,
                takeover_staff_id=li,
                customer_ids=[customer_id],  # type: ignore[list-item]
                submitted_by="admin",
                clock=clock,
            )
            return str(rows[0].status)

    assert sorted(outcome_names([submit, submit])) == ["InvalidInput", "waiting"]
    with database.transaction(read_only=True) as session:
        assert (
            session.scalar(select(func.count()).select_from(WecomTransfer).where(WecomTransfer.workspace_id == ws)) == 1
        )
