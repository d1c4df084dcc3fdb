"""Sweeps and planners racing each other with real commits (SQLite and PostgreSQL): group posts are
made exactly once, moments become one task each, and the marketing cap holds."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from siyu.campaigns.calendars import moments
from siyu.campaigns.calendars.moments import publish_due_moments
from siyu.campaigns.calendars.posting import post_due_group_messages
from siyu.campaigns.calendars.schemas import MomentIn
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.messaging.adapters.base import OutcomeKind
from siyu.models import AdapterKind, GroupPost, MomentPost, Slot, StaffTask, Workspace
from tests.campaigns.calendars.factories import make_calendar, make_moment, make_persona
from tests.concurrency import committing, outcome_names
from tests.factories import actor_for, make_group, make_staff, make_workspace
from tests.messaging.factories import make_account, make_content

THREADS = 4


def _delete_calendar_rows(session: Session, before: set[int]) -> None:
    # Calendar rows first: SQLite enforces ON DELETE CASCADE only with its foreign-key pragma.
    new = list(session.scalars(select(Workspace.id).where(Workspace.id.not_in(before))))
    for model in (GroupPost, StaffTask, MomentPost):
        session.execute(delete(model).where(model.workspace_id.in_(new)))


@pytest.fixture
def database(engine: Engine) -> Iterator[Database]:
    """Real commits on the shared test database; the workspaces made here, and their calendar rows, go after."""
    with committing(engine, cleanup=_delete_calendar_rows) as database:
        yield database


def _at_once(fn: Callable[[int], Any]) -> list[Any]:
    """Run `fn(worker)` in THREADS threads released together; results or exception names."""
    return outcome_names([partial(fn, worker) for worker in range(THREADS)])


def test_schedulers_racing_post_each_slot_once(
    database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a sandbox calendar and a WeCom calendar, each with 3 groups and a due Monday-morning entry
    from siyu.messaging.adapters import wecom

    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        owner = make_staff(session, workspace=ws, clock=clock, wecom_user_id="lin")
        item = make_content(session, workspace=ws, clock=clock, body="早安")
        sandbox_groups = [make_group(session, workspace=ws, clock=clock) for _ in range(3)]
        wecom_groups = [make_group(session, workspace=ws, clock=clock) for _ in range(3)]
        for n, group in enumerate(wecom_groups):
            group.owner_staff_id, group.wecom_chat_id = owner.id, f"wr{n}"
        sandbox = make_account(session, workspace=ws, clock=clock)
        wecom_account = make_account(session, workspace=ws, clock=clock, kind=AdapterKind.WECOM_GROUP)
        for groups_, account in ((sandbox_groups, sandbox), (wecom_groups, wecom_account)):
            make_calendar(
                session, workspace=ws, clock=clock, groups_=groups_, account=account, entries=[([1], "morning", item)]
            )
        workspace_id = ws.id
    calls: list[str] = []
    lock = threading.Lock()

    def fake_send(*_args: Any, chat_ids: list[str] | None = None, **_kwargs: Any) -> wecom.GroupPost:
        with lock:
            calls.append((chat_ids or [""])[0])
        return wecom.GroupPost(OutcomeKind.SENT, msgid="m")

    monkeypatch.setattr(wecom, "send_group_post", fake_send)
    # when four schedulers sweep at the same moment
    results = _at_once(lambda _w: post_due_group_messages(database, clock))
    # then every (entry, group, day) was posted once, and WeCom was called once per group
    assert all(isinstance(r, dict) for r in results), results
    assert sum(r["sent"] for r in results) == 6
    assert sorted(calls) == ["wr0", "wr1", "wr2"]
    with database.session() as session:
        rows = session.execute(
            select(GroupPost.status, func.count())
            .where(GroupPost.workspace_id == workspace_id)
            .group_by(GroupPost.status)
        ).all()
    assert dict(rows) == {"sent": 6}


def test_publishers_racing_make_one_task_per_post(database: Database, clock: FrozenClock) -> None:
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        persona = make_persona(session, workspace=ws, clock=clock, staff=make_staff(session, workspace=ws, clock=clock))
        item = make_content(session, workspace=ws, clock=clock, body="今天的咖啡", is_marketing=False)
        make_moment(session, workspace=ws, clock=clock, persona=persona, content=item, on=date(2026, 11, 23))
        workspace_id = ws.id
    results = _at_once(lambda _w: publish_due_moments(database, clock))
    assert Counter(r["published"] for r in results) == Counter({1: 1, 0: THREADS - 1})
    with database.session() as session:
        keys = session.scalars(select(StaffTask.idempotency_key).where(StaffTask.workspace_id == workspace_id)).all()
    assert len(keys) == 1 and keys[0].startswith("moment:")


def test_planners_racing_never_exceed_the_marketing_cap(database: Database, clock: FrozenClock) -> None:
    # given a persona with 8 life posts this week: room for exactly 2 offers at 20%
    with database.transaction() as session:
        ws = make_workspace(session, clock=clock)
        persona = make_persona(session, workspace=ws, clock=clock)
        life = make_content(session, workspace=ws, clock=clock, body="生活", is_marketing=False)
        offer = make_content(session, workspace=ws, clock=clock, body="福利")
        for i in range(8):
            make_moment(
                session,
                workspace=ws,
                clock=clock,
                persona=persona,
                content=life,
                on=date(2026, 11, 23 + i // 3),
                slot=["morning", "noon", "evening"][i % 3],
            )
        workspace, persona_id, offer_id = ws, persona.id, offer.id
    free = [
        (date(2026, 11, 26), Slot.NOON),
        (date(2026, 11, 26), Slot.EVENING),
        (date(2026, 11, 27), Slot.MORNING),
        (date(2026, 11, 27), Slot.NOON),
    ]

    def plan(worker: int) -> str:
        day, slot = free[worker]
        with database.transaction() as session:
            data = MomentIn(persona_id=persona_id, post_date=day, slot=slot, content_id=offer_id)
            moments.plan_moment(session, actor=actor_for(workspace), data=data, clock=clock)
        return "planned"

    # when four operators add an offer at once
    results = _at_once(plan)
    # then two got in and two were refused by the cap
    assert sorted(results) == sorted(["planned", "planned", InvalidInput.__name__, InvalidInput.__name__])
    with database.session() as session:
        marketing = session.scalar(
            select(func.count()).where(MomentPost.persona_id == persona_id, MomentPost.is_marketing.is_(True))
        )
    assert marketing == 2
