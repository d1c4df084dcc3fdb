"""The live codes' group form and `PUT /api/v1/groups/{id}` go through the community groups service."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.community.groups.membership import join_group
from siyu.community.groups.schemas import GroupCreate
from siyu.community.groups.service import create_group
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import PermissionDenied
from siyu.livecodes import groups as live_code_groups
from siyu.livecodes.schemas import GroupIn
from siyu.models import AuditEntry, CommunityGroup, GroupMember, Role, Workspace
from tests.api.conftest import bearer
from tests.community.groups.factories import customer_of, refreshed
from tests.factories import actor_for, make_staff, make_token, make_workspace
from tests.web.conftest import login


def _token(db: Session, clock: FrozenClock, workspace: Workspace, scopes: list[str]) -> dict[str, str]:
    token = make_token(db, clock=clock, workspace=workspace, scopes=scopes)
    db.commit()
    return bearer(token)


def test_put_checks_like_the_community_service_and_ignores_member_count(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace
) -> None:
    # given a group of 3 with two members seated through join_group, and another group's chat id
    admin = actor_for(workspace)
    group = create_group(db, actor=admin, data=GroupCreate(name="福利1群", member_limit=3), clock=clock)
    create_group(db, actor=admin, data=GroupCreate(name="福利2群", wecom_chat_id="wr2"), clock=clock)
    for name in ("王小明", "李小红"):
        customer = customer_of(db, workspace=workspace, clock=clock, name=name)
        join_group(
            db, workspace_id=workspace.id, group_id=group.id, customer_id=customer.id, at=clock.now(), clock=clock
        )
    owner = make_staff(db, workspace=workspace, clock=clock, name="小林")
    # and a token holding acquisition:write only (what the live codes' PUT has always asked for)
    auth = _token(db, clock, workspace, ["acquisition:read", "acquisition:write"])
    url = f"/api/v1/groups/{group.id}"
    # when a client still sends member_count, it is ignored: seats stay what the joins took
    renamed = client.put(url, headers=auth, json={"name": "福利一群", "member_limit": 3, "member_count": 0})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["member_count"]) == ("福利一群", 2)
    # and the community checks apply: a limit under the seats taken, a chat id of another group
    under = client.put(url, headers=auth, json={"name": "福利一群", "member_limit": 1})
    assert under.status_code == 422 and under.json()["error"]["details"]["field"] == "member_limit"
    taken = client.put(url, headers=auth, json={"name": "福利一群", "member_limit": 3, "wecom_chat_id": "wr2"})
    assert taken.status_code == 409 and taken.json()["error"]["details"]["field"] == "wecom_chat_id"
    # when an owner is named, they take a seat as owner
    owned = client.put(url, headers=auth, json={"name": "福利一群", "member_limit": 3, "owner_staff_id": owner.id})
    assert owned.status_code == 200, owned.text
    assert (owned.json()["owner_staff_id"], owned.json()["member_count"]) == (owner.id, 3)
    stay = db.scalar(select(GroupMember).where(GroupMember.group_id == group.id, GroupMember.staff_id == owner.id))
    assert stay is not None and (stay.role, stay.left_at) == ("owner", None)
    # and a PUT keeping the owner of the (now full) group doesn't seat them again
    again = client.put(url, headers=auth, json={"name": "福利 1 群", "member_limit": 3, "owner_staff_id": owner.id})
    assert again.status_code == 200, again.text
    assert (again.json()["name"], again.json()["member_count"]) == ("福利 1 群", 3)
    # and without acquisition:write the PUT is refused, community:write or not
    community_only = _token(db, clock, workspace, ["community:read", "community:write"])
    assert client.put(url, headers=community_only, json={"name": "x"}).status_code == 403
    assert refreshed(db, group).name == "福利 1 群"


def test_the_console_form_has_no_member_count_and_starts_groups_empty(
    client: TestClient, db: Session, clock: FrozenClock, workspace: Workspace, user_with_role: object
) -> None:
    # given an operator on the groups page
    user = user_with_role(Role.OPERATOR)  # type: ignore[operator]
    db.commit()
    csrf = login(client, user.email)
    page = client.get("/groups")
    assert page.status_code == 200 and 'name="member_limit"' in page.text and 'name="member_count"' not in page.text
    # when an old form still posts a member count, the group is created with no seats taken
    form = {"csrf_token": csrf, "name": "福利群", "member_limit": "5", "member_count": "4"}
    assert client.post("/groups", data=form).status_code == 303
    group = db.scalar(select(CommunityGroup).where(CommunityGroup.name == "福利群"))
    assert group is not None and (group.kind, group.member_limit, group.member_count) == ("long_term", 5, 0)
    entry = db.scalar(select(AuditEntry).where(AuditEntry.entity_type == "community_group"))
    assert entry is not None and entry.action == "create"
    # and a limit over 500 or not a number is refused on the page
    for limit in ("501", "many"):
        refused = client.post("/groups", data={**form, "name": "大群", "member_limit": limit})
        assert refused.status_code == 422 and 'id="g-limit"' in refused.text


def test_the_service_wrappers_need_acquisition_write_and_take_no_seats(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    owner = make_staff(db, workspace=ws, clock=clock)
    operator = actor_for(ws, role=Role.OPERATOR)
    group = live_code_groups.create_group(
        db, actor=operator, data=GroupIn(name="福利群", member_limit=2, owner_staff_id=owner.id), clock=clock
    )
    # the owner holds the only seat taken
    assert refreshed(db, group).member_count == 1
    analyst = actor_for(ws, role=Role.ANALYST)
    with pytest.raises(PermissionDenied) as denied:
        live_code_groups.update_group(db, actor=analyst, group_id=group.id, data=GroupIn(name="x"), clock=clock)
    assert denied.value.details == {"scope": "acquisition:write"}
