"""The add-by-phone console: lists with progress, the upload form, a list's conversion, a staff day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.addtasks import service
from siyu.kit.clock import FrozenClock
from siyu.models import AddTask, AddTaskList, Role, Staff, User, Workspace
from tests.addtasks.factories import numbered_phones, phone_csv, write
from tests.factories import actor_for, make_staff
from tests.web.conftest import login


def _import(db: Session, clock: FrozenClock, workspace: Workspace, tmp_path: Path, staff: list[Staff]) -> int:
    report = service.import_list(
        db,
        actor=actor_for(workspace),
        path=write(tmp_path, "l.csv", phone_csv([("13800138000", "陈静"), ("13800138001", "")])),
        spec=service.NewList(
            name="淘宝老客",
            staff_ids=[s.id for s in staff],
            daily_limit=5,
            starts_on=date(2026, 11, 23),
            greeting="您好{name}，我是花间集的顾问",
        ),
        clock=clock,
    )
    db.commit()
    return report.task_list.id


def _lists(db: Session, workspace: Workspace) -> list[AddTaskList]:
    return list(db.scalars(select(AddTaskList).where(AddTaskList.workspace_id == workspace.id)))


def test_upload_through_the_form_then_see_the_list_with_per_staff_conversion(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    mei = make_staff(db, workspace=workspace, clock=clock, name="小美")
    li = make_staff(db, workspace=workspace, clock=clock, name="小丽")
    db.commit()
    token = login(client, user_with_role(Role.OPERATOR).email)
    form = client.get("/add-tasks/new").text
    assert 'name="staff_ids" multiple' in form and "小美" in form and 'value="2026-11-23"' in form
    rows = [*numbered_phones(3), ("bad", "坏")]
    response = client.post(
        "/add-tasks",
        data={
            "csrf_token": token,
            "name": "短信回复",
            "staff_ids": [str(mei.id), str(li.id)],
            "daily_limit": "1",
            "starts_on": "2026-11-24",
            "greeting": "您好{name}",
        },
        files={"file": ("list.csv", phone_csv(rows), "text/csv")},
    )
    assert response.status_code == 303, response.text
    [created] = _lists(db, workspace)
    assert response.headers["location"] == f"/add-tasks/{created.id}"
    detail = client.get(response.headers["location"]).text
    assert "已导入 4 行：分配 3 个，重复 0 个，无效 1 个 (第 5 行：手机号无效)" in detail
    assert 'data-kpi="assigned">3<' in detail and 'data-kpi="invalid">1<' in detail
    assert f'<tr data-staff-id="{mei.id}">' in detail
    assert '<td class="text-end" data-col="assigned">2</td>' in detail
    assert "2026-11-24 – 2026-11-25" in detail
    listing = client.get("/add-tasks").text
    assert f'data-list-id="{created.id}"' in listing and '<td class="text-end list-assigned">3</td>' in listing


def test_bad_form_input_comes_back_naming_the_problem(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    mei = make_staff(db, workspace=workspace, clock=clock)
    db.commit()
    token = login(client, user_with_role(Role.OPERATOR).email)
    good = phone_csv(numbered_phones(2))
    base = {"csrf_token": token, "name": "名单", "staff_ids": str(mei.id), "daily_limit": "5"}
    for overrides, content, message in [
        ({"daily_limit": "0"}, good, "daily_limit must be between 1 and 1000"),
        ({"daily_limit": "lots"}, good, "daily_limit must be a whole number"),
        ({"staff_ids": ""}, good, "choose at least one staff member"),
        ({"starts_on": "soon"}, good, "starts_on is not a date"),
        ({"greeting": "{shop}欢迎您"}, good, "unknown placeholder {shop} in greeting"),
        ({}, "姓名\n陈静\n".encode(), "the file has no phone column"),
        ({}, b"", "the file is empty"),
    ]:
        response = client.post("/add-tasks", data=base | overrides, files={"file": ("list.csv", content, "text/csv")})
        assert response.status_code == 422, overrides
        assert 'data-error="form"' in response.text and message in response.text
        assert 'id="add-list-form"' in response.text
    assert _lists(db, workspace) == []


def test_staff_sees_their_day_with_whole_phones_and_greetings_and_marks_tasks(
    client: TestClient,
    db: Session,
    clock: FrozenClock,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    tmp_path: Path,
) -> None:
    mei = make_staff(db, workspace=workspace, clock=clock, name="小美")
    li = make_staff(db, workspace=workspace, clock=clock, name="小丽")
    _import(db, clock, workspace, tmp_path, [mei, li])
    token = login(client, user_with_role(Role.STAFF, staff_id=mei.id).email)
    assert client.get("/add-tasks").headers["location"] == "/add-tasks/mine"
    page = client.get("/add-tasks/mine").text
    assert '<strong class="task-phone">13800138000</strong>' in page
    assert "您好陈静，我是花间集的顾问" in page
    assert "13800138001" not in page  # 小丽's
    [task] = db.scalars(select(AddTask).where(AddTask.staff_id == mei.id)).all()
    response = client.post(
        f"/add-tasks/tasks/{task.id}/status", data={"csrf_token": token, "status": "requested", "day": "2026-11-23"}
    )
    assert (response.status_code, response.headers["location"]) == (303, "/add-tasks/mine?day=2026-11-23")
    db.expire_all()
    assert task.status == "requested"
    assert f'data-task-id="{task.id}" data-status="requested"' in client.get("/add-tasks/mine?day=2026-11-23").text
    # another staff member's day and tasks are not theirs
    [theirs] = db.scalars(select(AddTask).where(AddTask.staff_id == li.id)).all()
    assert client.get(f"/add-tasks/mine?staff_id={li.id}").status_code == 403
    assert (
        client.post(f"/add-tasks/tasks/{theirs.id}/status", data={"csrf_token": token, "status": "failed"}).status_code
        == 404
    )
    assert client.get("/add-tasks/new").status_code == 403
    assert "这一天没有任务" in client.get("/add-tasks/mine?day=2026-11-30").text


def test_analyst_sees_a_staff_day_with_masked_phones_and_cannot_change(
    client: TestClient,
    db: Session,
    clock: FrozenClock,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    tmp_path: Path,
) -> None:
    mei = make_staff(db, workspace=workspace, clock=clock, name="小美")
    list_id = _import(db, clock, workspace, tmp_path, [mei])
    token = login(client, user_with_role(Role.ANALYST).email)
    assert client.get("/add-tasks").status_code == 200
    assert client.get(f"/add-tasks/{list_id}").status_code == 200
    chooser = client.get("/add-tasks/mine").text
    assert "请选择一位导购查看其任务" in chooser
    page = client.get(f"/add-tasks/mine?staff_id={mei.id}&day=2026-11-23").text
    assert '<strong class="task-phone">138****8000</strong>' in page
    assert client.get("/add-tasks/new").status_code == 403
    task = db.scalars(select(AddTask).where(AddTask.list_id == list_id)).first()
    assert task is not None
    assert (
        client.post(f"/add-tasks/tasks/{task.id}/status", data={"csrf_token": token, "status": "failed"}).status_code
        == 403
    )
    response = client.post(
        "/add-tasks",
        data={"csrf_token": token, "name": "x", "staff_ids": str(mei.id), "daily_limit": "5"},
        files={"file": ("l.csv", phone_csv(numbered_phones(1)), "text/csv")},
    )
    assert response.status_code == 403
    db.expire_all()
    assert task.status == "pending" and len(_lists(db, workspace)) == 1
    assert client.get("/add-tasks/mine?staff_id=424242").status_code == 422


def test_pages_render_in_english(
    client: TestClient,
    db: Session,
    clock: FrozenClock,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    tmp_path: Path,
) -> None:
    mei = make_staff(db, workspace=workspace, clock=clock, name="小美")
    list_id = _import(db, clock, workspace, tmp_path, [mei])
    token = login(client, user_with_role(Role.ADMIN).email)
    client.post("/locale", data={"locale": "en", "next": "/add-tasks", "csrf_token": token})
    assert "Import phones" in client.get("/add-tasks").text
    assert "Suggested greeting" in client.get("/add-tasks/new").text
    assert "Conversion by staff member" in client.get(f"/add-tasks/{list_id}").text
    assert "Request sent" in client.get(f"/add-tasks/mine?staff_id={mei.id}&day=2026-11-23").text
