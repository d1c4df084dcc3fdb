"""Advancing enrolments: waits on the brand's calendar, branches, splits, goals, sends through the
policy, tags, staff tasks — and every step exactly once across re-runs and crashes."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.campaigns.broadcasts.tasks import dispatch
from siyu.campaigns.journeys import steps as step_actions
from siyu.campaigns.journeys.engine import enrol_journey, run_journeys
from siyu.campaigns.journeys.service import journey_stats, pause_journey
from siyu.customers.service.privacy import erase_customer
from siyu.customers.service.tags import assign_tag, tags_of
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Customer, Delivery, Journey, JourneyStepRun, SandboxMessage, StaffTask, Workspace
from tests.campaigns.journeys.factories import enrolments_of, make_journey, runs_of
from tests.factories import actor_for, make_customer, make_staff, make_tag, make_workspace
from tests.messaging.factories import make_account, make_content, make_policy
from tests.segments.factories import make_event, make_sale, make_segment

UTC_ISO = "%Y-%m-%dT%H:%M"


def _customer(db: Session, workspace: Workspace, clock: FrozenClock, name: str, **values: Any) -> Customer:
    return make_customer(db, actor=actor_for(workspace), clock=clock, name=name, **values).customer


def _enter(db: Session, journey: Journey, customer: Customer, clock: FrozenClock) -> None:
    """Trigger a group-joined journey for one customer."""
    make_event(db, customer=customer, type="group.joined", occurred_at=clock.now())
    db.commit()


def _joined(db: Session, workspace: Workspace, clock: FrozenClock, steps: list[dict[str, Any]], **kw: Any) -> Journey:
    return make_journey(db, workspace=workspace, clock=clock, trigger={"type": "group_joined"}, steps=steps, **kw)


def test_day_3_at_20_00_waits_until_that_brand_local_time(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a journey "day 3 at 20:00 → tag", entered on 23 November at 10:00 Shanghai time
    workspace = make_workspace(db, clock=clock)
    tag = make_tag(db, workspace=workspace)
    customer = _customer(db, workspace, clock, "王芳")
    journey = _joined(
        db,
        workspace,
        clock,
        [{"id": "d3", "type": "wait", "day": 3, "at": "20:00"}, {"id": "t", "type": "tag", "tag_id": tag.id}],
    )
    _enter(db, journey, customer, clock)
    run_journeys(database, clock)
    # then it waits until 26 November 20:00 Shanghai = 12:00 UTC
    [entry] = enrolments_of(db, journey)
    assert entry.next_run_at is not None
    assert entry.next_run_at.strftime(UTC_ISO) == "2026-11-26T12:00"
    assert entry.step_index == 1
    # when the engine runs a minute early nothing happens; at the time, the tag is applied
    clock.set(datetime.fromisoformat("2026-11-26T11:59:00+00:00"))
    assert run_journeys(database, clock)["steps"] == 0
    clock.set(datetime.fromisoformat("2026-11-26T12:00:00+00:00"))
    run_journeys(database, clock)
    [entry] = enrolments_of(db, journey)
    assert (entry.status, entry.step_index) == ("completed", 2)
    assert runs_of(db, entry) == [("d3", "waited"), ("t", "tagged")]
    assert [t.name for _ct, t in tags_of(db, customer.id)] == [tag.name]


def test_re_running_the_engine_changes_nothing(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a journey "task → wait 1 day → task" and three customers who entered
    workspace = make_workspace(db, clock=clock)
    journey = _joined(
        db,
        workspace,
        clock,
        [
            {"id": "t1", "type": "task", "title": "打招呼"},
            {"id": "w", "type": "wait", "days": 1},
            {"id": "t2", "type": "task", "title": "回访"},
        ],
    )
    for name in ("甲", "乙", "丙"):
        _enter(db, journey, _customer(db, workspace, clock, name), clock)
    # when the engine runs three times at the same moment
    results = [run_journeys(database, clock) for _ in range(3)]
    # then the first did the work and the others nothing
    assert [(r["enrolled"], r["steps"]) for r in results] == [(3, 6), (0, 0), (0, 0)]
    assert db.scalar(select(StaffTask.id).where(StaffTask.title == "回访")) is None
    assert len(db.scalars(select(StaffTask)).all()) == 3


def test_a_crash_inside_an_action_rolls_the_step_back_and_a_rerun_acts_once(
    db: Session, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given "task → tag" where the tag action crashes the first time it runs
    workspace = make_workspace(db, clock=clock)
    tag = make_tag(db, workspace=workspace)
    customer = _customer(db, workspace, clock, "王芳")
    journey = _joined(
        db,
        workspace,
        clock,
        [{"id": "t", "type": "task", "title": "打招呼"}, {"id": "g", "type": "tag", "tag_id": tag.id}],
    )
    _enter(db, journey, customer, clock)
    real = step_actions.assign_tag
    calls = Counter[str]()

    def crashing(*args: Any, **kwargs: Any) -> bool:
        calls["tag"] += 1
        if calls["tag"] == 1:
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(step_actions, "assign_tag", crashing)
    # when the engine runs (and crashes mid-step), then runs again
    first = run_journeys(database, clock)
    db.expire_all()
    assert first["errors"] == 1
    assert db.scalars(select(StaffTask)).all() == []  # the task of the same transaction was rolled back
    assert db.scalars(select(JourneyStepRun)).all() == []
    second = run_journeys(database, clock)
    # then the retry ran both steps once: one task, one tag
    assert second["steps"] == 2
    [entry] = enrolments_of(db, journey)
    assert entry.status == "completed"
    assert runs_of(db, entry) == [("t", "task:unassigned"), ("g", "tagged")]
    assert len(db.scalars(select(StaffTask)).all()) == 1
    assert calls["tag"] == 2


def test_branch_on_an_event_since_enrolment(db: Session, database: Database, clock: FrozenClock) -> None:
    # given "wait 2 days → branch on a page view since enrolment → then tag A / else tag B"
    workspace = make_workspace(db, clock=clock)
    tag_a, tag_b = make_tag(db, workspace=workspace, name="看过"), make_tag(db, workspace=workspace, name="没看")
    viewer, idle = _customer(db, workspace, clock, "看"), _customer(db, workspace, clock, "不看")
    make_event(db, customer=idle, type="page.view", occurred_at=clock.now() - timedelta(days=1))  # before: no count
    journey = _joined(
        db,
        workspace,
        clock,
        [
            {"id": "w", "type": "wait", "days": 2},
            {
                "id": "b",
                "type": "branch",
                "condition": {"event_type": "page.view", "since_enrolment": True},
                "then": "a",
                "else": "nb",
            },
            {"id": "a", "type": "tag", "tag_id": tag_a.id},
            {"id": "done", "type": "exit"},
            {"id": "nb", "type": "tag", "tag_id": tag_b.id},
        ],
    )
    _enter(db, journey, viewer, clock)
    _enter(db, journey, idle, clock)
    run_journeys(database, clock)
    clock.advance(timedelta(days=1))
    make_event(db, customer=viewer, type="page.view", occurred_at=clock.now())
    db.commit()
    # when the wait ends
    clock.advance(timedelta(days=1))
    run_journeys(database, clock)
    # then the viewer took "then" and exited at the exit step; the other took "else"
    first, second = enrolments_of(db, journey)
    assert runs_of(db, first) == [("w", "waited"), ("b", "branch:yes"), ("a", "tagged"), ("done", "exited")]
    assert (first.status, first.exit_reason) == ("exited", "exit_step")
    assert runs_of(db, second) == [("w", "waited"), ("b", "branch:no"), ("nb", "tagged")]
    assert second.status == "completed"


def test_branch_on_segment_membership(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a static segment holding one of two customers, and a branch on it
    workspace = make_workspace(db, clock=clock)
    vip, other = _customer(db, workspace, clock, "VIP"), _customer(db, workspace, clock, "普通")
    segment = make_segment(db, workspace=workspace, clock=clock, members=[vip.id])
    tag = make_tag(db, workspace=workspace)
    journey = _joined(
        db,
        workspace,
        clock,
        [
            {"id": "b", "type": "branch", "condition": {"segment_id": segment.id}, "else": "end"},
            {"id": "t", "type": "tag", "tag_id": tag.id},
            {"id": "end", "type": "exit"},
        ],
    )
    _enter(db, journey, vip, clock)
    _enter(db, journey, other, clock)
    run_journeys(database, clock)
    first, second = enrolments_of(db, journey)
    assert runs_of(db, first) == [("b", "branch:yes"), ("t", "tagged"), ("end", "exited")]
    assert runs_of(db, second) == [("b", "branch:no"), ("end", "exited")]


def test_split_is_stable_and_roughly_follows_the_weights(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a 50/50 split whose arm B jumps past arm A's tag
    workspace = make_workspace(db, clock=clock)
    tag = make_tag(db, workspace=workspace)
    journey = _joined(
        db,
        workspace,
        clock,
        [
            {"id": "s", "type": "split", "arms": [{"key": "A", "weight": 1}, {"key": "B", "weight": 1, "goto": "end"}]},
            {"id": "a", "type": "tag", "tag_id": tag.id},
            {"id": "end", "type": "exit"},
        ],
    )
    for i in range(40):
        _enter(db, journey, _customer(db, workspace, clock, f"客{i}"), clock)
    run_journeys(database, clock)
    # then each entry remembers its arm; arm A was tagged, arm B was not; both arms are used
    arms = Counter[str]()
    for entry in enrolments_of(db, journey):
        arm = entry.context["split:s"]
        arms[arm] += 1
        assert step_actions.split_arm(journey, entry, journey.steps[0])["key"] == arm
        expected = (
            [("s", "split:A"), ("a", "tagged"), ("end", "exited")]
            if arm == "A"
            else [("s", "split:B"), ("end", "exited")]
        )
        assert runs_of(db, entry) == expected
    assert arms["A"] + arms["B"] == 40 and arms["A"] >= 10 and arms["B"] >= 10


def test_goal_met_exits_before_the_next_step(db: Session, database: Database, clock: FrozenClock) -> None:
    # given "wait 1 day → tag" with goal "a paid order after enrolment"
    workspace = make_workspace(db, clock=clock)
    tag = make_tag(db, workspace=workspace)
    buyer, browser = _customer(db, workspace, clock, "买了"), _customer(db, workspace, clock, "没买")
    journey = _joined(
        db,
        workspace,
        clock,
        [{"id": "w", "type": "wait", "days": 1}, {"id": "t", "type": "tag", "tag_id": tag.id}],
        goal={"type": "order"},
    )
    _enter(db, journey, buyer, clock)
    _enter(db, journey, browser, clock)
    run_journeys(database, clock)
    # when one of them orders during the wait
    clock.advance(timedelta(hours=5))
    make_sale(db, customer=buyer, paid_at=clock.now())
    db.commit()
    clock.advance(timedelta(days=1))
    run_journeys(database, clock)
    # then the buyer exited with goal_met and was not tagged; the other completed
    first, second = enrolments_of(db, journey)
    assert (first.status, first.exit_reason) == ("exited", "goal_met")
    assert runs_of(db, first) == [("w", "waited")]
    assert (second.status, runs_of(db, second)) == ("completed", [("w", "waited"), ("t", "tagged")])


def test_send_plans_one_delivery_through_the_policy_which_can_cap_it(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given a per-day cap of 1; one customer already got a message today, one did not
    workspace = make_workspace(db, clock=clock)
    make_policy(db, workspace=workspace, clock=clock, caps={"all": {"day": 1}})
    account = make_account(db, workspace=workspace, clock=clock)
    item = make_content(db, workspace=workspace, clock=clock, body="{{ name }}，欢迎入群")
    first_item = make_content(db, workspace=workspace, clock=clock, body="早上好")
    capped, fresh = _customer(db, workspace, clock, "已发"), _customer(db, workspace, clock, "未发")
    tag = make_tag(db, workspace=workspace)
    make_journey(
        db,
        workspace=workspace,
        clock=clock,
        trigger={"type": "tag_added", "tag_id": tag.id},
        steps=[{"id": "hi", "type": "send", "content_id": first_item.id}],
        channel_account_ids=[account.id],
    )
    assign_tag(db, actor=actor_for(workspace), customer_id=capped.id, tag_id=tag.id, clock=clock)
    db.commit()
    run_journeys(database, clock)
    journey = _joined(
        db,
        workspace,
        clock,
        [{"id": "welcome", "type": "send", "content_id": item.id}],
        channel_account_ids=[account.id],
    )
    # when both customers enter the welcome journey, and the engine runs twice
    _enter(db, journey, capped, clock)
    _enter(db, journey, fresh, clock)
    run_journeys(database, clock)
    run_journeys(database, clock)
    # then each has exactly one delivery for the step: capped for one, queued for the other
    rows = db.scalars(select(Delivery).where(Delivery.source == "journey", Delivery.source_id == journey.id)).all()
    by_customer = {r.customer_id: (r.status, r.reason, r.priority) for r in rows}
    assert by_customer == {capped.id: ("suppressed", "capped", 1), fresh.id: ("queued", None, 1)}
    entries = enrolments_of(db, journey)
    assert {r.step for r in rows} == {f"welcome:{e.id}" for e in entries}
    assert [runs_of(db, e) for e in entries] == [[("welcome", "suppressed:capped")], [("welcome", "queued")]]
    # and the journey's results count the step's sends by outcome
    stats = journey_stats(db, actor_for(workspace), journey.id)
    assert [(st.step_id, st.ran, st.sends) for st in stats.steps] == [
        ("welcome", 2, {"queued": 1, "suppressed:capped": 1})
    ]


def test_task_goes_to_the_owner_or_the_latest_friend(db: Session, database: Database, clock: FrozenClock) -> None:
    # given one customer owned by staff 甲 and one whose only friend is staff 乙
    workspace = make_workspace(db, clock=clock)
    owner, friend = make_staff(db, workspace=workspace, clock=clock), make_staff(db, workspace=workspace, clock=clock)
    owned = _customer(db, workspace, clock, "有主", owner_staff_id=owner.id)
    befriended = _customer(db, workspace, clock, "好友")
    from siyu.customers.service.timeline import add_relationship

    add_relationship(
        db, actor=actor_for(workspace), customer_id=befriended.id, staff_id=friend.id, added_at=clock.now(), clock=clock
    )
    journey = _joined(
        db, workspace, clock, [{"id": "call", "type": "task", "title": "电话回访", "body": "问问效果", "due_hours": 24}]
    )
    _enter(db, journey, owned, clock)
    _enter(db, journey, befriended, clock)
    run_journeys(database, clock)
    # then each got one open task, for the right staff member, keyed by enrolment and step
    entries = {e.customer_id: e for e in enrolments_of(db, journey)}
    tasks = db.scalars(select(StaffTask).order_by(StaffTask.id)).all()
    assert [(t.customer_id, t.staff_id, t.title, t.body, t.status) for t in tasks] == [
        (owned.id, owner.id, "电话回访", "问问效果", "open"),
        (befriended.id, friend.id, "电话回访", "问问效果", "open"),
    ]
    assert [t.idempotency_key for t in tasks] == [
        f"journey:{entries[owned.id].id}:0",
        f"journey:{entries[befriended.id].id}:0",
    ]
    assert tasks[0].due_at == clock.now() + timedelta(hours=24)


def test_a_paused_journey_neither_enrols_nor_advances(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a running journey with one customer waiting, then paused
    workspace = make_workspace(db, clock=clock)
    tag = make_tag(db, workspace=workspace)
    journey = _joined(
        db, workspace, clock, [{"id": "w", "type": "wait", "hours": 1}, {"id": "t", "type": "tag", "tag_id": tag.id}]
    )
    _enter(db, journey, _customer(db, workspace, clock, "甲"), clock)
    run_journeys(database, clock)
    pause_journey(db, actor=actor_for(workspace), journey_id=journey.id, clock=clock)
    db.commit()
    # when time passes and another customer joins
    clock.advance(timedelta(hours=2))
    _enter(db, journey, _customer(db, workspace, clock, "乙"), clock)
    result = run_journeys(database, clock)
    # then nothing moved
    assert (result["enrolled"], result["steps"]) == (0, 0)
    [entry] = enrolments_of(db, journey)
    assert (entry.status, entry.step_index) == ("active", 1)


def test_a_step_another_worker_committed_is_never_run_again(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given an entry whose first step another worker already recorded (its step index not yet moved)
    workspace = make_workspace(db, clock=clock)
    journey = _joined(db, workspace, clock, [{"id": "t", "type": "task", "title": "打招呼"}])
    _enter(db, journey, _customer(db, workspace, clock, "王芳"), clock)
    enrol_journey(database, workspace.id, journey.id, clock, batch_size=100)
    [entry] = enrolments_of(db, journey)
    db.add(
        JourneyStepRun(
            workspace_id=workspace.id,
            enrolment_id=entry.id,
            journey_id=journey.id,
            step_index=0,
            step_id="t",
            outcome="task",
            ran_at=clock.now(),
        )
    )
    db.commit()
    # when this worker reaches it
    result = run_journeys(database, clock)
    # then the unique step-run key stops it: no second task, the entry is left alone
    assert (result["skipped"], result["steps"]) == (1, 0)
    assert db.scalars(select(StaffTask)).all() == []


def test_the_tick_is_a_periodic_job() -> None:
    import siyu.campaigns.journeys.tasks  # noqa: F401  (declares the job and its schedule)
    from siyu.jobs.scheduler import periodic_tasks

    [task] = [t for t in periodic_tasks() if t.name == "journeys_tick"]
    assert (task.kind, task.every()) == ("journeys_tick", timedelta(minutes=1))


def test_a_journey_send_goes_out_through_the_dispatch_sweep(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given a welcome journey on the sandbox, and a customer who joins
    workspace = make_workspace(db, clock=clock)
    make_policy(db, workspace=workspace, clock=clock)
    account = make_account(db, workspace=workspace, clock=clock)
    item = make_content(db, workspace=workspace, clock=clock, body="{{ name }}，欢迎入群")
    journey = _joined(
        db, workspace, clock, [{"id": "hi", "type": "send", "content_id": item.id}], channel_account_ids=[account.id]
    )
    _enter(db, journey, _customer(db, workspace, clock, "王芳"), clock)
    # when the engine and the dispatch sweep run (twice)
    for _ in range(2):
        run_journeys(database, clock)
        dispatch(database, clock)
    # then exactly one message went out, rendered for the customer
    db.expire_all()
    assert [m.message["text"] for m in db.scalars(select(SandboxMessage))] == ["王芳，欢迎入群"]


def test_an_erased_customer_leaves_the_journey(db: Session, database: Database, clock: FrozenClock) -> None:
    # given a customer waiting in a journey
    workspace = make_workspace(db, clock=clock)
    tag = make_tag(db, workspace=workspace)
    customer = _customer(db, workspace, clock, "王芳")
    journey = _joined(
        db, workspace, clock, [{"id": "w", "type": "wait", "hours": 1}, {"id": "t", "type": "tag", "tag_id": tag.id}]
    )
    _enter(db, journey, customer, clock)
    run_journeys(database, clock)
    # when their data is erased on request, and the wait ends
    erase_customer(db, actor=actor_for(workspace), customer_id=customer.id, clock=clock)
    db.commit()
    clock.advance(timedelta(hours=1))
    run_journeys(database, clock)
    # then the entry exits without acting
    [entry] = enrolments_of(db, journey)
    assert (entry.status, entry.exit_reason) == ("exited", "erased")
    assert runs_of(db, entry) == [("w", "waited")]
