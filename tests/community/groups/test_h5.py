"""The member's groups on the phone: current groups with role and joined date; left ones gone."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from siyu.community.groups.membership import join_group, leave_group
from siyu.kit.clock import FrozenClock
from siyu.models.group import GroupMemberRole
from tests.community.groups.factories import customer_of
from tests.factories import make_group, make_workspace
from tests.loyalty.h5.conftest import client, sign_in

__all__ = ["client"]


def test_my_groups_lists_open_stays_with_role_and_date(db: Session, clock: FrozenClock, client: TestClient) -> None:
    # given a member in two groups (KOC in one, the other's name has HTML) who left a third
    ws = make_workspace(db, clock=clock)
    customer = customer_of(db, workspace=ws, clock=clock)
    koc = make_group(db, workspace=ws, clock=clock, name="达人群")
    odd = make_group(db, workspace=ws, clock=clock, name="<i>福利</i>群")
    gone = make_group(db, workspace=ws, clock=clock, name="已退的群")
    join_group(
        db,
        workspace_id=ws.id,
        group_id=koc.id,
        customer_id=customer.id,
        at=clock.now() - timedelta(days=3),
        clock=clock,
        role=GroupMemberRole.KOC,
    )
    for g in (odd, gone):
        join_group(db, workspace_id=ws.id, group_id=g.id, customer_id=customer.id, at=clock.now(), clock=clock)
    leave_group(db, workspace_id=ws.id, group_id=gone.id, customer_id=customer.id, at=clock.now(), clock=clock)
    db.commit()
    sign_in(client, ws.id, customer.id, clock)
    # when they open /m/groups
    page = client.get("/m/groups")
    # then the two current groups show, newest join first, escaped, with role and brand-local date
    assert page.status_code == 200
    assert page.text.count('data-testid="group"') == 2
    assert page.text.index("&lt;i&gt;福利&lt;/i&gt;群") < page.text.index("达人群")
    assert "已退的群" not in page.text and "<i>福利</i>" not in page.text
    assert ">KOC<" in page.text and "入群时间 2026-11-20" in page.text


def test_no_groups_and_no_session(db: Session, clock: FrozenClock, client: TestClient) -> None:
    ws = make_workspace(db, clock=clock)
    customer = customer_of(db, workspace=ws, clock=clock)
    db.commit()
    assert client.get("/m/groups").status_code in (401, 403)
    sign_in(client, ws.id, customer.id, clock)
    assert "你还没有加入社群" in client.get("/m/groups").text
