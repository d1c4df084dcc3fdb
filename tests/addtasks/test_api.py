"""The add-by-phone API: upload a list, read progress and tasks, mark tasks, field-naming errors."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.addtasks.service import match_add
from siyu.kit.clock import FrozenClock
from siyu.models import AddTaskList, Workspace
from tests.addtasks.factories import numbered_phones, phone_csv, phone_xlsx
from tests.api.conftest import bearer
from tests.factories import actor_for, make_customer, make_staff, make_token, make_workspace

BASE = "/api/v1/add-task-lists"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _headers(db: Session, clock: FrozenClock, workspace: Workspace, scopes: list[str] | None = None) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=workspace, scopes=scopes)
    db.commit()
    return bearer(token)


def _lists(db: Session, workspace: Workspace) -> int:
    query = select(func.count()).select_from(AddTaskList).where(AddTaskList.workspace_id == workspace.id)
    return int(db.scalar(query) or 0)


def test_upload_split_progress_tasks_and_marking(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    headers = _headers(db, clock, workspace)
    mei = make_staff(db, workspace=workspace, clock=clock, name="小美")
    li = make_staff(db, workspace=workspace, clock=clock, name="小丽")
    db.commit()
    content = phone_csv([*numbered_phones(5), ("bad", "坏"), ("13900000000", "重复")])
    created = client.post(
        BASE,
        headers=headers,
        files={"file": ("list.csv", content, "text/csv")},
        data={
            "name": "短信回复",
            "staff_ids": f"{mei.id},{li.id}",
            "daily_limit": "2",
            "starts_on": "2026-11-24",
            "greeting": "您好{name}",
            "source": "短信",
        },
    )
    assert created.status_code == 201, created.text
    report = created.json()
    assert (report["total_rows"], report["assigned"], report["duplicates_in_list"], report["invalid_rows"]) == (
        7,
        5,
        1,
        1,
    )
    assert report["invalid"] == [{"row": 7, "reason": "not a valid phone number"}]
    assert report["per_staff"] == {str(mei.id): 3, str(li.id): 2}
    assert report["last_due_on"] == "2026-11-25"
    list_id = report["task_list"]["id"]
    # the list with progress, and its per-staff conversion
    listed = client.get(BASE, headers=headers).json()["items"]
    assert [(x["id"], x["progress"]["assigned"], x["progress"]["add_rate"]) for x in listed] == [(list_id, 5, 0.0)]
    detail = client.get(f"{BASE}/{list_id}", headers=headers).json()
    assert [(s["staff_name"], s["assigned"], s["pending"]) for s in detail["per_staff"]] == [
        ("小美", 3, 3),
        ("小丽", 2, 2),
    ]
    # tasks for a staff member and day, with the greeting rendered
    tasks = client.get(
        f"{BASE}/{list_id}/tasks", headers=headers, params={"staff_id": mei.id, "due_on": "2026-11-24"}
    ).json()["items"]
    assert [(t["phone"], t["greeting"], t["status"]) for t in tasks] == [
        ("+8613900000000", "您好客户0", "pending"),
        ("+8613900000002", "您好客户2", "pending"),
    ]
    day = client.get("/api/v1/add-tasks", headers=headers, params={"staff_id": mei.id, "day": "2026-11-25"}).json()
    assert [t["phone"] for t in day] == ["+8613900000004"]
    marked = client.post(f"/api/v1/add-tasks/{tasks[0]['id']}/status", headers=headers, json={"status": "requested"})
    assert (marked.status_code, marked.json()["status"]) == (200, "requested")
    wrong = client.post(f"/api/v1/add-tasks/{tasks[0]['id']}/status", headers=headers, json={"status": "added"})
    assert (wrong.status_code, wrong.json()["error"]["details"]) == (422, {"field": "status"})
    # an add arriving for that phone converts the list
    customer = make_customer(db, actor=actor_for(workspace), clock=clock, phone="13900000000").customer
    match_add(db, workspace_id=workspace.id, customer_id=customer.id, staff_id=mei.id, at=clock.now())
    db.commit()
    progress = client.get(f"{BASE}/{list_id}", headers=headers).json()["progress"]
    assert progress == {"assigned": 5, "pending": 4, "requested": 0, "added": 1, "failed": 0, "add_rate": 0.2}


def test_xlsx_upload_and_masked_phones_without_pii(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    headers = _headers(db, clock, workspace)
    reader = _headers(db, clock, workspace, scopes=["acquisition:read"])
    mei = make_staff(db, workspace=workspace, clock=clock)
    db.commit()
    content = phone_xlsx([["手机", "姓名"], [13800138000, "陈静"]])
    created = client.post(
        BASE,
        headers=headers,
        files={"file": ("list.xlsx", content, XLSX)},
        data={"name": "淘宝", "staff_ids": [str(mei.id)], "daily_limit": "20"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["task_list"]["starts_on"] == "2026-11-23"  # today in Shanghai
    list_id = created.json()["task_list"]["id"]
    masked = client.get(f"{BASE}/{list_id}/tasks", headers=reader).json()["items"]
    assert [t["phone"] for t in masked] == ["138****8000"]


def test_bad_uploads_name_the_field_and_write_nothing(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    headers = _headers(db, clock, workspace)
    mei = make_staff(db, workspace=workspace, clock=clock)
    foreign = make_staff(db, workspace=make_workspace(db, clock=clock), clock=clock)
    db.commit()
    good = phone_csv(numbered_phones(3))
    form = {"name": "名单", "staff_ids": str(mei.id), "daily_limit": "5"}
    cases = [
        ({"daily_limit": "0"}, good, {"field": "daily_limit"}),
        ({"staff_ids": ""}, good, {"field": "staff_ids"}),
        ({"staff_ids": "abc"}, good, {"field": "staff_ids"}),
        ({"staff_ids": str(foreign.id)}, good, {"field": "staff_ids", "unknown": [foreign.id]}),
        ({"greeting": "您好{nick}"}, good, {"field": "greeting", "placeholder": "nick"}),
        ({}, b"", {"field": "file"}),
        ({}, "姓名\n陈静\n".encode(), {"field": "file", "headers": ["姓名"]}),
    ]
    for overrides, content, details in cases:
        response = client.post(
            BASE, headers=headers, files={"file": ("list.csv", content, "text/csv")}, data=form | overrides
        )
        assert response.status_code == 422, overrides
        assert response.json()["error"]["details"] == details, overrides
    not_a_number = client.post(
        BASE, headers=headers, files={"file": ("l.csv", good, "text/csv")}, data=form | {"daily_limit": "many"}
    )
    assert not_a_number.json()["error"]["details"][0]["field"] == "daily_limit"
    missing_staff = client.post(
        BASE, headers=headers, files={"file": ("l.csv", good, "text/csv")}, data={"name": "x", "daily_limit": "5"}
    )
    assert missing_staff.json()["error"]["details"][0]["field"] == "staff_ids"
    wrong_type = client.post(BASE, headers=headers, files={"file": ("l.pdf", b"%PDF", "application/pdf")}, data=form)
    assert (wrong_type.status_code, wrong_type.json()["error"]["details"]) == (422, {"field": "file"})
    assert _lists(db, workspace) == 0
    assert not list((client.app.state.settings.data_dir / "uploads").rglob("*.*"))  # type: ignore[attr-defined]


def test_read_scope_cannot_upload_or_mark(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    reader = _headers(db, clock, workspace, scopes=["acquisition:read"])
    mei = make_staff(db, workspace=workspace, clock=clock)
    db.commit()
    response = client.post(
        BASE,
        headers=reader,
        files={"file": ("l.csv", phone_csv(numbered_phones(1)), "text/csv")},
        data={"name": "x", "staff_ids": str(mei.id), "daily_limit": "5"},
    )
    assert response.status_code == 403
    assert client.post("/api/v1/add-tasks/1/status", headers=reader, json={"status": "failed"}).status_code == 403
    assert client.get("/api/v1/add-tasks", headers=reader).json()["error"]["details"] == {"field": "staff_id"}
    assert client.get(f"{BASE}/424242", headers=reader).status_code == 404
    assert _lists(db, workspace) == 0
