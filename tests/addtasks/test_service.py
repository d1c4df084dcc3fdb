"""Importing a phone list: dedupe against the list and the pool, the daily split, bad input."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.addtasks import service
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput, PermissionDenied
from siyu.models import AddTask, AddTaskList, AuditEntry, Role, Staff, Workspace
from tests.addtasks.factories import numbered_phones, phone_csv, write
from tests.factories import actor_for, make_customer, make_relationship, make_staff, make_workspace

START = date(2026, 11, 24)


def _spec(staff: list[Staff], **overrides: object) -> service.NewList:
    values: dict[str, object] = {
        "name": "淘宝老客 11 月",
        "staff_ids": [s.id for s in staff],
        "daily_limit": 5,
        "starts_on": START,
        "greeting": "您好{name}，我是花间集的顾问",
        "source": "淘宝老客",
    }
    return service.NewList(**(values | overrides))  # type: ignore[arg-type]


def _tasks(db: Session, list_id: int) -> list[AddTask]:
    return list(db.scalars(select(AddTask).where(AddTask.list_id == list_id).order_by(AddTask.id)))


def _lists(db: Session, workspace: Workspace) -> int:
    return int(
        db.scalar(select(func.count()).select_from(AddTaskList).where(AddTaskList.workspace_id == workspace.id)) or 0
    )


def test_split_days_is_round_robin_within_the_daily_limit() -> None:
    plan = service.split_days(25, staff_ids=[7, 9], daily_limit=5, starts_on=START)
    by_staff: dict[int, list[date]] = {}
    for staff_id, due in plan:
        by_staff.setdefault(staff_id, []).append(due)
    day = [START + timedelta(days=n) for n in range(3)]
    assert by_staff[7] == [day[0]] * 5 + [day[1]] * 5 + [day[2]] * 3
    assert by_staff[9] == [day[0]] * 5 + [day[1]] * 5 + [day[2]] * 2
    assert [s for s, _ in plan[:4]] == [7, 9, 7, 9]


def test_25_phones_2_staff_limit_5_gives_exact_days_per_staff(
    db: Session, clock: FrozenClock, workspace: Workspace, tmp_path: Path
) -> None:
    # given two staff members and a file of 25 phones
    actor = actor_for(workspace, role=Role.OPERATOR)
    staff = [make_staff(db, workspace=workspace, clock=clock, name=n) for n in ("小美", "小丽")]
    path = write(tmp_path, "list.csv", phone_csv(numbered_phones(25)))
    # when the list is imported with a daily limit of 5 from the 24th
    report = service.import_list(db, actor=actor, path=path, spec=_spec(staff), clock=clock)
    # then each staff member gets 5 a day: 13 and 12 over three days
    tasks = _tasks(db, report.task_list.id)
    assert (report.total_rows, report.assigned, report.invalid_rows, report.duplicates_in_list) == (25, 25, 0, 0)
    assert report.per_staff == {staff[0].id: 13, staff[1].id: 12}
    assert report.last_due_on == date(2026, 11, 26)
    per_day = {
        (s.id, d): sum(1 for t in tasks if t.staff_id == s.id and t.due_on == d)
        for s in staff
        for d in (date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 26))
    }
    assert per_day == {
        (staff[0].id, date(2026, 11, 24)): 5,
        (staff[0].id, date(2026, 11, 25)): 5,
        (staff[0].id, date(2026, 11, 26)): 3,
        (staff[1].id, date(2026, 11, 24)): 5,
        (staff[1].id, date(2026, 11, 25)): 5,
        (staff[1].id, date(2026, 11, 26)): 2,
    }
    # phones dealt in file order, alternating staff; names and status kept
    assert [(t.phone, t.staff_id) for t in tasks[:3]] == [
        ("+8613900000000", staff[0].id),
        ("+8613900000001", staff[1].id),
        ("+8613900000002", staff[0].id),
    ]
    assert (tasks[0].name, tasks[0].status, tasks[0].customer_id) == ("客户0", "pending", None)
    task_list = report.task_list
    assert (task_list.total_rows, task_list.duplicate_rows, task_list.invalid_rows) == (25, 0, 0)
    assert (task_list.greeting, task_list.daily_limit, task_list.starts_on) == (
        "您好{name}，我是花间集的顾问",
        5,
        START,
    )
    audit = db.scalars(select(AuditEntry).where(AuditEntry.entity_type == "add_task_list")).all()
    assert [(a.action, a.after["assigned"]) for a in audit] == [("create", 25)]  # type: ignore[index]


def test_dedupe_within_the_list_and_against_the_pool(
    db: Session, clock: FrozenClock, workspace: Workspace, tmp_path: Path
) -> None:
    # given a customer who is a friend, one whose friendship ended, and one never added
    actor = actor_for(workspace)
    staff = make_staff(db, workspace=workspace, clock=clock)
    friend = make_customer(db, actor=actor, clock=clock, phone="13800000001").customer
    make_relationship(db, customer=friend, staff=staff, added_at=clock.now() - timedelta(days=9))
    lapsed = make_customer(db, actor=actor, clock=clock, phone="13800000002").customer
    make_relationship(
        db,
        customer=lapsed,
        staff=staff,
        added_at=clock.now() - timedelta(days=20),
        removed_at=clock.now() - timedelta(days=3),
        removed_by="customer",
    )
    known = make_customer(db, actor=actor, clock=clock, phone="13800000003").customer
    rows = [
        ("13800000001", "已是好友"),
        ("13800000002", "删过"),
        ("13800000003", ""),
        ("138-0000-0003", "重复的老客"),
        ("13800000004", "新人"),
        ("oops", "坏行"),
    ]
    path = write(tmp_path, "list.csv", phone_csv(rows))
    # when the list is imported
    report = service.import_list(db, actor=actor, path=path, spec=_spec([staff]), clock=clock)
    # then the friend and the repeat are duplicates, the others are tasks, pool customers linked
    assert (report.assigned, report.duplicates_in_list, report.already_friends, report.invalid_rows) == (3, 1, 1, 1)
    assert report.linked_customers == 2
    assert report.invalid == [{"row": 7, "reason": "not a valid phone number"}]
    assert [(t.phone, t.name, t.customer_id) for t in _tasks(db, report.task_list.id)] == [
        ("+8613800000002", "删过", lapsed.id),
        ("+8613800000003", "重复的老客", known.id),  # the later row's name fills the gap
        ("+8613800000004", "新人", None),
    ]
    assert (report.task_list.duplicate_rows, report.task_list.invalid_rows, report.task_list.total_rows) == (2, 1, 6)


def test_a_list_that_is_all_friends_has_no_tasks(
    db: Session, clock: FrozenClock, workspace: Workspace, tmp_path: Path
) -> None:
    actor = actor_for(workspace)
    staff = make_staff(db, workspace=workspace, clock=clock)
    friend = make_customer(db, actor=actor, clock=clock, phone="13800000001").customer
    make_relationship(db, customer=friend, staff=staff, added_at=clock.now())
    path = write(tmp_path, "list.csv", phone_csv([("13800000001", "")]))
    report = service.import_list(db, actor=actor, path=path, spec=_spec([staff]), clock=clock)
    assert (report.assigned, report.already_friends, report.last_due_on) == (0, 1, None)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"daily_limit": 0}, "daily_limit"),
        ({"daily_limit": -3}, "daily_limit"),
        ({"daily_limit": 1001}, "daily_limit"),
        ({"staff_ids": []}, "staff_ids"),
        ({"staff_ids": [424242]}, "staff_ids"),
        ({"name": "  "}, "name"),
        ({"greeting": "您好{nick}"}, "greeting"),
        ({"greeting": "您好{name"}, "greeting"),
        ({"channel_id": 424242}, "channel_id"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_writes_nothing(
    db: Session, clock: FrozenClock, workspace: Workspace, tmp_path: Path, overrides: dict[str, object], field: str
) -> None:
    staff = make_staff(db, workspace=workspace, clock=clock)
    path = write(tmp_path, "list.csv", phone_csv(numbered_phones(3)))
    with pytest.raises(InvalidInput) as caught:
        service.import_list(db, actor=actor_for(workspace), path=path, spec=_spec([staff], **overrides), clock=clock)
    assert caught.value.details["field"] == field
    assert _lists(db, workspace) == 0


def test_staff_of_another_workspace_or_inactive_are_refused(
    db: Session, clock: FrozenClock, workspace: Workspace, tmp_path: Path
) -> None:
    mine = make_staff(db, workspace=workspace, clock=clock)
    theirs = make_staff(db, workspace=make_workspace(db, clock=clock), clock=clock)
    resting = make_staff(db, workspace=workspace, clock=clock)
    resting.is_active = False
    db.flush()
    path = write(tmp_path, "list.csv", phone_csv(numbered_phones(3)))
    actor = actor_for(workspace)
    with pytest.raises(InvalidInput) as foreign:
        service.import_list(db, actor=actor, path=path, spec=_spec([mine, theirs]), clock=clock)
    assert foreign.value.details == {"field": "staff_ids", "unknown": [theirs.id]}
    with pytest.raises(InvalidInput) as inactive:
        service.import_list(db, actor=actor, path=path, spec=_spec([resting]), clock=clock)
    assert inactive.value.details == {"field": "staff_ids", "inactive": [resting.id]}
    assert _lists(db, workspace) == 0


def test_files_without_a_usable_phone_are_refused(
    db: Session, clock: FrozenClock, workspace: Workspace, tmp_path: Path
) -> None:
    staff = make_staff(db, workspace=workspace, clock=clock)
    actor = actor_for(workspace)
    for content, details in [
        (b"", {"field": "file"}),
        ("姓名\n陈静\n".encode(), {"field": "file", "headers": ["姓名"]}),
        (
            phone_csv([("abc", "x"), ("", "y")]),
            {
                "field": "file",
                "rows": [{"row": 2, "reason": "not a valid phone number"}, {"row": 3, "reason": "empty phone"}],
            },
        ),
    ]:
        path = write(tmp_path, "bad.csv", content)
        with pytest.raises(InvalidInput) as caught:
            service.import_list(db, actor=actor, path=path, spec=_spec([staff]), clock=clock)
        assert caught.value.details == details
    assert _lists(db, workspace) == 0


def test_analyst_cannot_import(db: Session, clock: FrozenClock, workspace: Workspace, tmp_path: Path) -> None:
    staff = make_staff(db, workspace=workspace, clock=clock)
    path = write(tmp_path, "list.csv", phone_csv(numbered_phones(1)))
    with pytest.raises(PermissionDenied):
        service.import_list(
            db, actor=actor_for(workspace, role=Role.ANALYST), path=path, spec=_spec([staff]), clock=clock
        )
    assert _lists(db, workspace) == 0


def test_lists_are_newest_first_with_progress(
    db: Session, clock: FrozenClock, workspace: Workspace, tmp_path: Path
) -> None:
    actor = actor_for(workspace)
    staff = make_staff(db, workspace=workspace, clock=clock)
    ids = [
        service.import_list(
            db,
            actor=actor,
            path=write(tmp_path, f"l{n}.csv", phone_csv(numbered_phones(n + 1, start=10 * n))),
            spec=_spec([staff], name=f"名单{n}"),
            clock=clock,
        ).task_list.id
        for n in range(3)
    ]
    page = service.list_lists(db, workspace_id=workspace.id, limit=2)
    assert [x.id for x in page.items] == [ids[2], ids[1]]
    rest = service.list_lists(db, workspace_id=workspace.id, limit=2, cursor=page.next_cursor)
    assert [x.id for x in rest.items] == [ids[0]]
    progress = service.lists_progress(db, workspace_id=workspace.id, list_ids=ids)
    assert [progress[i].assigned for i in ids] == [1, 2, 3]
    assert service.today(db, workspace_id=workspace.id, clock=clock) == date(2026, 11, 23)
