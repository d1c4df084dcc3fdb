"""Console pages for live codes: list, editor with validation, detail, QR download, permissions."""

from __future__ import annotations

import io
import zipfile

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import LiveCode, LiveCodeRoute, Role, Workspace
from tests.community.groups.factories import seat
from tests.factories import make_channel, make_group, make_live_code, make_staff, make_tag
from tests.web.conftest import login


def _form(csrf: str, **fields: object) -> dict[str, object]:
    return {"csrf_token": csrf, **fields}


def test_operator_creates_a_code_in_the_editor(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: object
) -> None:
    # given an operator, two staff members, a channel and a tag
    user = user_with_role(Role.OPERATOR)  # type: ignore[operator]
    a = make_staff(db, workspace=workspace, clock=clock, name="小林")
    b = make_staff(db, workspace=workspace, clock=clock, name="小周")
    channel = make_channel(db, workspace=workspace, clock=clock, name="包裹卡")
    tag = make_tag(db, workspace=workspace, name="包裹卡客户")
    db.commit()
    csrf = login(client, user.email)
    editor = client.get("/live-codes/new?kind=staff")
    assert editor.status_code == 200 and 'name="route-0-target"' in editor.text
    # when they submit routes, a schedule, a welcome message and a tag
    fields = {
        "route-0-target": str(a.id),
        "route-0-weight": "2",
        "route-0-cap": "50",
        "route-0-shift": "working",
        "route-0-active": "on",
        "route-1-target": str(b.id),
        "route-1-weight": "1",
        "route-1-cap": "",
        "route-1-shift": "always",
        "route-1-backup": "on",
        "route-1-active": "on",
        "route-2-target": "",
        "schedule-0-days": ["0", "1", "2", "3", "4"],
        "schedule-0-start": "09:00",
        "schedule-0-end": "18:00",
        "welcome-text": "{{ name }}您好～",
        "tag_ids": [str(tag.id)],
    }
    response = client.post(
        "/live-codes/new",
        data=_form(
            csrf,
            kind="staff",
            name="双11包裹卡",
            channel_id=str(channel.id),
            rotation="weighted",
            is_sticky="on",
            **fields,
        ),
    )
    # then the code exists as entered and the detail page shows it
    assert response.status_code == 303, response.text
    code = db.scalar(select(LiveCode).where(LiveCode.name == "双11包裹卡"))
    assert code is not None and code.schedule == [{"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "18:00"}]
    routes = db.scalars(
        select(LiveCodeRoute).where(LiveCodeRoute.live_code_id == code.id).order_by(LiveCodeRoute.position)
    ).all()
    assert [(r.staff_id, r.weight, r.daily_cap, str(r.shift), r.is_backup) for r in routes] == [
        (a.id, 2, 50, "working", False),
        (b.id, 1, None, "always", True),
    ]
    detail = client.get(response.headers["location"])
    assert detail.status_code == 200
    assert f'data-testid="public-url" target="_blank">http://testserver/q/{code.slug}<' in detail.text
    assert 'data-testid="welcome-preview">王小姐您好～<' in detail.text
    assert "0 / 50" in detail.text and "周一、周二、周三、周四、周五 09:00–18:00" in detail.text
    qr = client.get(f"/live-codes/{code.id}/qr.png?size=s")
    assert qr.status_code == 200 and qr.content.startswith(b"\x89PNG")


def test_editor_errors_keep_the_input_and_name_the_field(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: object
) -> None:
    user = user_with_role(Role.ADMIN)  # type: ignore[operator]
    a = make_staff(db, workspace=workspace, clock=clock)
    db.commit()
    csrf = login(client, user.email)
    response = client.post(
        "/live-codes/new",
        data=_form(
            csrf,
            kind="staff",
            name="有误的活码",
            **{"route-0-target": str(a.id), "route-0-cap": "0", "route-0-active": "on", "welcome-text": "{{ name }}"},
        ),
    )
    assert response.status_code == 422
    assert 'data-error="routes[0].daily_cap"' in response.text
    assert 'value="有误的活码"' in response.text
    assert db.scalar(select(LiveCode.id)) is None
    overlapping = {
        "route-0-target": str(a.id),
        "route-0-active": "on",
        "schedule-0-days": ["0"],
        "schedule-0-start": "09:00",
        "schedule-0-end": "12:00",
        "schedule-1-days": ["0"],
        "schedule-1-start": "11:00",
        "schedule-1-end": "13:00",
    }
    bad_schedule = client.post("/live-codes/new", data=_form(csrf, kind="staff", name="x", **overlapping))
    assert bad_schedule.status_code == 422 and 'data-error="schedule[1]"' in bad_schedule.text
    unknown_variable = client.post(
        "/live-codes/new",
        data=_form(
            csrf,
            kind="staff",
            name="x",
            **{"route-0-target": str(a.id), "route-0-active": "on", "welcome-text": "{{ nick }}"},
        ),
    )
    assert unknown_variable.status_code == 422 and 'data-error="welcome.text"' in unknown_variable.text
    assert "nick" in unknown_variable.text


def test_list_warns_when_groups_fill_up_and_zips_qr_codes(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: object
) -> None:
    user = user_with_role(Role.OPERATOR)  # type: ignore[operator]
    full = make_group(db, workspace=workspace, clock=clock, limit=3)
    almost = make_group(db, workspace=workspace, clock=clock, limit=3)
    seat(db, group=full, clock=clock, count=3)
    seat(db, group=almost, clock=clock, count=2)
    code = make_live_code(
        db,
        workspace=workspace,
        clock=clock,
        kind="group",
        name="福利群活码",
        routes=[{"group_id": full.id}, {"group_id": almost.id}],
    )
    db.commit()
    csrf = login(client, user.email)
    page = client.get("/live-codes")
    assert f'data-warning="{code.id}"' in page.text and "5/6" in page.text
    archive = client.post("/live-codes/qr.zip", data=_form(csrf, ids=[str(code.id)], format="svg", size="s"))
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        assert zipped.namelist() == ["福利群活码.svg"]


def test_analyst_sees_but_cannot_edit(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: object
) -> None:
    user = user_with_role(Role.ANALYST)  # type: ignore[operator]
    a = make_staff(db, workspace=workspace, clock=clock)
    code = make_live_code(db, workspace=workspace, clock=clock, routes=[{"staff_id": a.id}], name="只读活码")
    db.commit()
    csrf = login(client, user.email)
    listing = client.get("/live-codes").text
    assert "只读活码" in listing and "/live-codes/new" not in listing
    assert client.get("/live-codes/new").status_code == 403
    denied = client.post(f"/live-codes/{code.id}/delete", data=_form(csrf))
    assert denied.status_code == 403
    db.refresh(code)
    assert code.deleted_at is None


def test_staff_role_cannot_open_live_codes(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: object
) -> None:
    staff = make_staff(db, workspace=workspace, clock=clock)
    db.commit()
    user = user_with_role(Role.STAFF, staff_id=staff.id)  # type: ignore[operator]
    login(client, user.email)
    assert client.get("/live-codes").status_code == 403
