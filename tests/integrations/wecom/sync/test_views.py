"""Console pages `/integrations/wecom/sync` and `/integrations/wecom/transfers`, and their REST API."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.sync.service import run_sync
from siyu.kit.clock import FrozenClock
from siyu.models import Identity, Job, Role, User, WecomTransfer, Workspace
from tests.integrations.wecom.helpers import wecom_staff, wecom_workspace
from tests.integrations.wecom.sync.pool import befriend
from tests.web.conftest import app, client, login, user_with_role, workspace

__all__ = ["app", "client", "user_with_role", "workspace"]


def test_sync_page_lists_runs_and_queues_a_sync(
    db: Session,
    database: Database,
    clock: FrozenClock,
    client: TestClient,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    fake_wecom: RunningFake,
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom, workspace=workspace)
    wecom_staff(db, setup, clock=clock, userid="zhangsan")
    setup.corp.fail_next("externalcontact/get_follow_user_list", 60011)
    db.commit()
    run_sync(database, workspace.id, clock)
    csrf = login(client, user_with_role(Role.OPERATOR).email)

    page = client.get("/integrations/wecom/sync")

    assert page.status_code == 200 and page.text.count("data-run-id=") == 1
    assert "externalcontact/get_follow_user_list: scripted failure" in page.text
    queued = client.post("/integrations/wecom/sync", data={"csrf_token": csrf, "scope": "customers"})
    assert queued.status_code == 303
    db.expire_all()
    job = db.scalar(select(Job).where(Job.workspace_id == workspace.id, Job.kind == "wecom_sync"))
    assert job is not None and job.args == {"scope": "customers"}


def test_transfer_form_checks_then_submits_and_lists_the_rows(
    db: Session,
    database: Database,
    clock: FrozenClock,
    client: TestClient,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    fake_wecom: RunningFake,
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom, workspace=workspace)
    zhang = wecom_staff(db, setup, clock=clock, userid="zhangsan", name="张三")
    li = wecom_staff(db, setup, clock=clock, userid="lisi", name="李四")
    befriend(setup.corp, "wmA", "zhangsan", name="王芳")
    db.commit()
    run_sync(database, workspace.id, clock, scope="customers")
    customer_id = db.scalar(select(Identity.customer_id).where(Identity.value == "wmA"))
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    form = {"csrf_token": csrf, "kind": "on_job", "handover_staff_id": str(zhang.id), "takeover_staff_id": str(li.id)}

    listed = client.post("/integrations/wecom/transfers", data=form | {"action": "check"})
    assert listed.status_code == 200 and f'name="customer_ids" value="{customer_id}"' in listed.text
    assert "每位客户 90 天内最多被转接 2 次" in listed.text
    assert 'id="transfer-limit-note"' in listed.text and "管理后台做的转接 siyu 看不到" in listed.text
    same = client.post(
        "/integrations/wecom/transfers",
        data=form | {"takeover_staff_id": str(zhang.id), "customer_ids": str(customer_id), "action": "submit"},
    )
    assert same.status_code == 422 and "接替成员不能是原跟进成员" in same.text
    done = client.post(
        "/integrations/wecom/transfers", data=form | {"customer_ids": str(customer_id), "action": "submit"}
    )
    assert done.status_code == 303
    blocked = client.post(
        "/integrations/wecom/transfers", data=form | {"customer_ids": str(customer_id), "action": "check"}
    )
    assert '<span class="text-danger small">— 已有进行中的转接</span>' in blocked.text  # keyed "c:<id>"
    page = client.get("/integrations/wecom/transfers").text
    assert page.count("data-transfer-id=") == 1 and "waiting" in page and "<code>wmA</code>" in page
    db.expire_all()
    assert [r.status for r in db.scalars(select(WecomTransfer).where(WecomTransfer.workspace_id == workspace.id))] == [
        "waiting"
    ]
    # the resigned view lists what WeCom holds of members who left
    befriend(setup.corp, "wmB", "zhangsan")
    setup.corp.users["zhangsan"]["status"] = 5
    # a plain view does not call WeCom; the "加载离职成员客户" button does
    plain = client.get("/integrations/wecom/transfers?kind=resigned").text
    assert setup.corp.calls_of("externalcontact/get_unassigned_list") == 0
    assert 'id="load-unassigned"' in plain and 'id="unassigned"' not in plain
    resigned = client.get("/integrations/wecom/transfers?kind=resigned&load=1").text
    assert setup.corp.calls_of("externalcontact/get_unassigned_list") == 1
    assert '<ul class="mb-0" id="unassigned"><li>zhangsan → wmB</li></ul>' in resigned


def test_transfers_ignore_or_refuse_malformed_ids(
    db: Session,
    clock: FrozenClock,
    client: TestClient,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    fake_wecom: RunningFake,
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom, workspace=workspace)
    zhang = wecom_staff(db, setup, clock=clock, userid="zhangsan", name="张三")
    li = wecom_staff(db, setup, clock=clock, userid="lisi", name="李四")
    db.commit()
    csrf = login(client, user_with_role(Role.OPERATOR).email)
    form = {"csrf_token": csrf, "kind": "on_job", "handover_staff_id": str(zhang.id), "takeover_staff_id": str(li.id)}
    for bad in ("²", "1" * 25):  # "²".isdigit() is True but int("²") raises; 25 digits overflow BIGINT
        page = client.get("/integrations/wecom/transfers", params={"handover_staff_id": bad})
        assert page.status_code == 200  # a malformed filter is no filter
        for key in ("handover_staff_id", "takeover_staff_id", "customer_ids", "group_ids"):
            refused = client.post("/integrations/wecom/transfers", data=form | {key: bad, "action": "check"})
            assert refused.status_code == 422 and f"invalid id in {key}" in refused.text, key
    assert db.scalar(select(WecomTransfer)) is None


def test_api_checks_submits_and_refuses_analysts(
    db: Session,
    database: Database,
    clock: FrozenClock,
    client: TestClient,
    workspace: Workspace,
    user_with_role: Callable[..., User],
    fake_wecom: RunningFake,
) -> None:
    from siyu.auth.permissions import ROLE_SCOPES
    from tests.api.conftest import bearer
    from tests.factories import make_token

    setup = wecom_workspace(db, clock=clock, fake=fake_wecom, workspace=workspace)
    zhang = wecom_staff(db, setup, clock=clock, userid="zhangsan")
    li = wecom_staff(db, setup, clock=clock, userid="lisi")
    befriend(setup.corp, "wmA", "zhangsan")
    db.commit()
    run_sync(database, workspace.id, clock, scope="customers")
    customer_id = db.scalar(select(Identity.customer_id).where(Identity.value == "wmA"))

    def headers(role: Role) -> dict[str, str]:
        token = make_token(db, clock=clock, workspace=workspace, scopes=sorted(str(s) for s in ROLE_SCOPES[role]))
        db.commit()
        return bearer(token)

    operator, analyst = headers(Role.OPERATOR), headers(Role.ANALYST)
    body = {"kind": "on_job", "handover_staff_id": zhang.id, "takeover_staff_id": li.id, "customer_ids": [customer_id]}
    assert client.post("/api/v1/integrations/wecom/transfers", headers=analyst, json=body).status_code == 403
    check = client.post("/api/v1/integrations/wecom/transfers/check", headers=operator, json=body).json()
    assert (check["ok"], check["blocked"], check["calls"]) == ([f"c:{customer_id}"], {}, 1)
    bad = client.post("/api/v1/integrations/wecom/transfers", headers=operator, json=body | {"kind": "x"})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "kind"
    made = client.post("/api/v1/integrations/wecom/transfers", headers=operator, json=body)
    assert made.status_code == 201 and [r["status"] for r in made.json()["items"]] == ["waiting"]
    again = client.post("/api/v1/integrations/wecom/transfers", headers=operator, json=body)
    assert again.status_code == 422 and again.json()["error"]["details"]["blocked"] == {
        f"c:{customer_id}": "已有进行中的转接"
    }
    runs = client.get("/api/v1/integrations/wecom/sync/runs", headers=operator).json()["items"]
    assert [(r["scope"], r["status"]) for r in runs] == [("customers", "done")]
    assert client.post("/api/v1/integrations/wecom/sync", headers=operator, json={"scope": "all"}).status_code == 422
    assert client.post("/api/v1/integrations/wecom/sync", headers=operator, json={}).status_code == 202
