"""The console groups pages: create (errors name the field), detail with members/roles/chart,
add/remove/role, CSV import errors listed per row, and read-only roles kept out of writes."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.models import CommunityGroup, GroupMember, Role, User, Workspace
from tests.community.groups.factories import customer_of
from tests.factories import make_staff, make_tag
from tests.web.conftest import app, client, login, user_with_role, workspace

__all__ = ["app", "client", "user_with_role", "workspace"]

FORM = {
    "name": "双11闪购群",
    "kind": "flash",
    "ends_at": "2026-11-30T20:00",
    "member_limit": "100",
    "owner_staff_id": "",
    "tag_ids": "",
    "join_url": "",
    "wecom_chat_id": "",
    "is_active": "on",
    "description": "<script>alert(1)</script>",
}


def test_operator_creates_a_group_manages_members_and_sees_the_chart(
    db: Session, clock: FrozenClock, client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    # given an operator, a staff member, a tag and a customer
    staff = make_staff(db, workspace=workspace, clock=clock, name="王店长")
    tag = make_tag(db, workspace=workspace, name="华东")
    customer = customer_of(db, workspace=workspace, clock=clock, name="<b>李雷</b>")
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    # when a flash group without an end time is posted, then the error sits under ends_at and nothing is saved
    bad = client.post("/community/groups", data=FORM | {"ends_at": "", "csrf_token": csrf})
    assert bad.status_code == 422 and 'data-error="ends_at"' in bad.text and 'value="双11闪购群"' in bad.text
    assert db.scalar(select(CommunityGroup.id).where(CommunityGroup.workspace_id == workspace.id)) is None
    # when it is posted right, with an owner and a tag
    created = client.post(
        "/community/groups",
        data=FORM | {"owner_staff_id": str(staff.id), "tag_ids": str(tag.id), "csrf_token": csrf},
        follow_redirects=False,
    )
    assert created.status_code == 303
    group = db.scalar(select(CommunityGroup).where(CommunityGroup.workspace_id == workspace.id))
    assert group is not None and (group.kind, group.member_count) == ("flash", 1)
    # and a customer is added and made KOC
    added = client.post(
        f"/community/groups/{group.id}/members",
        data={"customer_id": str(customer.id), "role": "member", "csrf_token": csrf},
    )
    assert added.status_code == 303
    stay = db.scalar(select(GroupMember).where(GroupMember.customer_id == customer.id))
    assert stay is not None
    client.post(f"/community/groups/{group.id}/members/{stay.id}/role", data={"role": "koc", "csrf_token": csrf})
    db.refresh(stay)
    assert stay.role == "koc"
    # then the detail page shows members (escaped), the tag, and the chart data; the list shows the group
    page = client.get(f"/community/groups/{group.id}")
    assert page.status_code == 200
    assert "&lt;b&gt;李雷&lt;/b&gt;" in page.text and "<b>李雷</b>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>alert(1)</script>" not in page.text
    assert "华东" in page.text and 'id="count-chart"' in page.text and '"members": [' in page.text
    listing = client.get("/community/groups?kind=flash")
    assert "双11闪购群" in listing.text and "2 / 100" in listing.text and "王店长" in listing.text
    # when the customer is removed
    client.post(f"/community/groups/{group.id}/members/{stay.id}/remove", data={"csrf_token": csrf})
    db.refresh(stay)
    assert stay.left_reason == "removed"


def test_import_errors_are_listed_per_row_and_nothing_is_written(
    db: Session, clock: FrozenClock, client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    customer_of(db, workspace=workspace, clock=clock, name="甲", phone="13800138001")
    group = CommunityGroup(workspace_id=workspace.id, name="导入群", member_limit=10, created_at=clock.now())
    db.add(group)
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    page = client.post(
        f"/community/groups/{group.id}/import",
        data={"csrf_token": csrf},
        files={"file": ("m.csv", "姓名,手机\n甲,13800138001\n乙,12345\n".encode(), "text/csv")},
    )
    assert page.status_code == 422
    assert 'id="import-errors"' in page.text and "not a phone number: &#39;12345&#39;" in page.text
    assert db.scalar(select(GroupMember.id).where(GroupMember.group_id == group.id)) is None
    none = client.post(f"/community/groups/{group.id}/import", data={"csrf_token": csrf})
    assert none.status_code == 422 and 'data-error="import"' in none.text


def test_an_analyst_reads_but_cannot_write(
    db: Session, clock: FrozenClock, client: TestClient, workspace: Workspace, user_with_role: Callable[..., User]
) -> None:
    group = CommunityGroup(workspace_id=workspace.id, name="只读群", created_at=clock.now())
    db.add(group)
    db.commit()
    csrf = login(client, user_with_role(Role.ANALYST).email)
    page = client.get(f"/community/groups/{group.id}")
    assert page.status_code == 200 and 'id="add-member"' not in page.text
    assert client.get("/community/groups/new").status_code == 403
    assert client.post("/community/groups", data=FORM | {"csrf_token": csrf}).status_code == 403
