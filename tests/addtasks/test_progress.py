"""Working a list: a staff member's day, marking tasks, matching arriving adds, conversion."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.addtasks import service
from siyu.addtasks.errors import AddTaskAlreadyAdded, AddTaskNotFound
from siyu.customers.service.profile import ProfileInput, ingest_customer
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import AddTask, AuditEntry, Role, Staff, Workspace
from tests.addtasks.factories import phone_csv, write
from tests.factories import actor_for, make_customer, make_staff

START = date(2026, 11, 23)


def _import(
    db: Session,
    clock: FrozenClock,
    workspace: Workspace,
    tmp_path: Path,
    staff: list[Staff],
    rows: list[tuple[str, str]],
    *,
    name: str = "名单",
    daily_limit: int = 10,
) -> int:
    report = service.import_list(
        db,
        actor=actor_for(workspace),
        path=write(tmp_path, f"{name}.csv", phone_csv(rows)),
        spec=service.NewList(
            name=name,
            staff_ids=[s.id for s in staff],
            daily_limit=daily_limit,
            starts_on=START,
            greeting="您好{name}，我是顾问",
        ),
        clock=clock,
    )
    return report.task_list.id


def _task(db: Session, list_id: int, phone: str) -> AddTask:
    task = db.scalar(select(AddTask).where(AddTask.list_id == list_id, AddTask.phone == phone))
    assert task is not None
    return task


def test_match_add_by_customer_id_marks_the_task_added_once(
    db: Session, clock: FrozenClock, workspace: Workspace, tmp_path: Path
) -> None:
    # given a pool customer on a list, assigned to 小美
    actor = actor_for(workspace)
    mei = make_staff(db, workspace=workspace, clock=clock, name="小美")
    customer = make_customer(db, actor=actor, clock=clock, phone="13800000001").customer
    list_id = _import(db, clock, workspace, tmp_path, [mei], [("13800000001", "陈静")])
    # when their add to 小美 arrives (twice: a retried callback)
    at = clock.now() + timedelta(hours=3)
    first = service.match_add(db, workspace_id=workspace.id, customer_id=customer.id, staff_id=mei.id, at=at)
    again = service.match_add(db, workspace_id=workspace.id, customer_id=customer.id, staff_id=mei.id, at=at)
    # then the task is added, once
    task = _task(db, list_id, "+8613800000001")
    assert first is task and again is task
    assert (task.status, task.added_at, task.customer_id) == ("added", at, customer.id)
    # and a later, different add finds no open task
    assert (
        service.match_add(
            db, workspace_id=workspace.id, customer_id=customer.id, staff_id=mei.id, at=at + timedelta(days=1)
        )
        is None
    )


def test_match_add_by_phone_links_a_customer_who_joined_the_pool_later(
    db: Session, clock: FrozenClock, workspace: Workspace, tmp_path: Path
) -> None:
    # given a list phone nobody in the pool held at import
    actor = actor_for(workspace)
    mei = make_staff(db, workspace=workspace, clock=clock)
    list_id = _import(db, clock, workspace, tmp_path, [mei], [("13800000009", "")])
    assert _task(db, list_id, "+8613800000009").customer_id is None
    # when the person adds and becomes a customer with that phone
    customer = make_customer(db, actor=actor, clock=clock, phone="+86 138 0000 0009").customer
    task = service.match_add(db, workspace_id=workspace.id, customer_id=customer.id, staff_id=mei.id, at=clock.now())
    # then the task is theirs, added
    assert task is not None
    assert (task.status, task.customer_id) == ("added", customer.id)


def test_match_add_finds_a_secondary_phone_identity(
    db: Session, clock: FrozenClock, workspace: Workspace, tmp_path: Path
) -> None:
    actor = actor_for(workspace)
    mei = make_staff(db, workspace=workspace, clock=clock)
    list_id = _import(db, clock, workspace, tmp_path, [mei], [("13800000008", "")])
    customer = ingest_customer(
        db,
        actor=actor,
        identities=[("phone", "13800000007"), ("phone", "13800000008")],
        profile=ProfileInput(values={}, attributes={}),
        source="test",
        clock=clock,
    ).customer
    task = service.match_add(db, workspace_id=workspace.id, customer_id=customer.id, staff_id=mei.id, at=clock.now())
    assert task is not None and task.id == _task(db, list_id, "+8613800000008").id


def test_match_add_prefers_the_adding_staff_members_task(
    db: Session, clock: FrozenClock, workspace: Workspace, tmp_path: Path
) -> None:
    # given the same phone on two lists: 小美's and 小丽's
    actor = actor_for(workspace)
    mei, li = make_staff(db, workspace=workspace, clock=clock), make_staff(db, workspace=workspace, clock=clock)
    customer = make_customer(db, actor=actor, clock=clock, phone="13800000001").customer
    mei_list = _import(db, clock, workspace, tmp_path, [mei], [("13800000001", "")], name="一")
    li_list = _import(db, clock, workspace, tmp_path, [li], [("13800000001", "")], name="二")
    # when the customer adds 小丽
    task = service.match_add(db, workspace_id=workspace.id, customer_id=customer.id, staff_id=li.id, at=clock.now())
    # then 小丽's task is the one added
    assert task is not None and task.id == _task(db, li_list, "+8613800000001").id
    assert _task(db, mei_list, "+8613800000001").status == "pending"
    # and an add to someone with no task of their own completes any open task of that phone
    other = make_staff(db, workspace=workspace, clock=clock)
    later = clock.now() + timedelta(hours=1)
    fallback = service.match_add(db, workspace_id=workspace.id, customer_id=customer.id, staff_id=other.id, at=later)
    assert fallback is not None and fallback.id == _task(db, mei_list, "+8613800000001").id
    assert (fallback.staff_id, fallback.added_at) == (mei.id, later)


def test_match_add_without_a_task_is_none(db: Session, clock: FrozenClock, workspace: Workspace) -> None:
    actor = actor_for(workspace)
    staff = make_staff(db, workspace=workspace, clock=clock)
    customer = make_customer(db, actor=actor, clock=clock).customer
    assert (
        service.match_add(db, workspace_id=workspace.id, customer_id=customer.id, staff_id=staff.id, at=clock.now())
        is None
    )


def test_staff_day_marking_and_conversion(
    db: Session, clock: FrozenClock, workspace: Workspace, tmp_path: Path
) -> None:
    # given 6 phones for two staff members, 2 a day each
    actor = actor_for(workspace)
    mei, li = make_staff(db, workspace=workspace, clock=clock), make_staff(db, workspace=workspace, clock=clock)
    phones = [(f"1380000000{n}", f"客户{n}") for n in range(6)]
    list_id = _import(db, clock, workspace, tmp_path, [mei, li], phones, daily_limit=2)
    # 小美's day: phones 0 and 2
    day = service.tasks_for_day(db, workspace_id=workspace.id, staff_id=mei.id, day=START)
    assert [(t.phone, t.name) for t, _l in day] == [("+8613800000000", "客户0"), ("+8613800000002", "客户2")]
    # when 小美 marks one requested and one failed, and 小丽 one requested
    mei_actor = actor_for(workspace, role=Role.STAFF, staff_id=mei.id)
    li_actor = actor_for(workspace, role=Role.STAFF, staff_id=li.id)
    service.mark_task(db, actor=mei_actor, task_id=day[0][0].id, status="requested", clock=clock)
    service.mark_task(db, actor=mei_actor, task_id=day[1][0].id, status="failed", clock=clock)
    li_first = service.tasks_for_day(db, workspace_id=workspace.id, staff_id=li.id, day=START)[0][0]
    service.mark_task(db, actor=li_actor, task_id=li_first.id, status="requested", clock=clock)
    # and 小美's requested customer adds her
    customer = make_customer(db, actor=actor, clock=clock, phone="13800000000").customer
    service.match_add(db, workspace_id=workspace.id, customer_id=customer.id, staff_id=mei.id, at=clock.now())
    # then conversion per list and per staff counts each state
    total, per_staff = service.list_conversion(db, workspace_id=workspace.id, list_id=list_id)
    assert (total.assigned, total.pending, total.requested, total.added, total.failed) == (6, 3, 1, 1, 1)
    assert total.add_rate == pytest.approx(1 / 6)
    assert {s: (c.assigned, c.pending, c.requested, c.added, c.failed) for s, c in per_staff.items()} == {
        mei.id: (3, 1, 0, 1, 1),
        li.id: (3, 2, 1, 0, 0),
    }
    assert per_staff[li.id].add_rate == 0.0
    # the day lists open tasks first
    day = service.tasks_for_day(db, workspace_id=workspace.id, staff_id=mei.id, day=START)
    assert [t.status for t, _l in day] == ["added", "failed"]
    marks = db.scalars(select(AuditEntry).where(AuditEntry.entity_type == "add_task").order_by(AuditEntry.id)).all()
    assert [(m.before, m.after) for m in marks] == [
        ({"status": "pending"}, {"status": "requested"}),
        ({"status": "pending"}, {"status": "failed"}),
        ({"status": "pending"}, {"status": "requested"}),
    ]


def test_marking_rules(db: Session, clock: FrozenClock, workspace: Workspace, tmp_path: Path) -> None:
    actor = actor_for(workspace)
    mei, li = make_staff(db, workspace=workspace, clock=clock), make_staff(db, workspace=workspace, clock=clock)
    list_id = _import(db, clock, workspace, tmp_path, [mei], [("13800000001", "")])
    task = _task(db, list_id, "+8613800000001")
    with pytest.raises(InvalidInput) as bad:
        service.mark_task(db, actor=actor, task_id=task.id, status="added", clock=clock)
    assert bad.value.details == {"field": "status"}
    # another staff member's task is not theirs to see
    with pytest.raises(AddTaskNotFound):
        service.mark_task(
            db,
            actor=actor_for(workspace, role=Role.STAFF, staff_id=li.id),
            task_id=task.id,
            status="failed",
            clock=clock,
        )
    # an analyst (no staff, read only) may not mark
    with pytest.raises(PermissionDenied):
        service.mark_task(
            db, actor=actor_for(workspace, role=Role.ANALYST), task_id=task.id, status="failed", clock=clock
        )
    # an operator may; a second identical mark changes nothing
    service.mark_task(db, actor=actor, task_id=task.id, status="requested", clock=clock)
    service.mark_task(db, actor=actor, task_id=task.id, status="requested", clock=clock)
    assert task.status == "requested"
    customer = make_customer(db, actor=actor, clock=clock, phone="13800000001").customer
    service.match_add(db, workspace_id=workspace.id, customer_id=customer.id, staff_id=mei.id, at=clock.now())
    with pytest.raises(AddTaskAlreadyAdded):
        service.mark_task(db, actor=actor, task_id=task.id, status="failed", clock=clock)
