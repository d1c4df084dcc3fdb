"""Full sync against the fake WeCom: staff, customers with edges, paging, resume, idempotency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.db import Database
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.sync.service import run_sync
from siyu.kit.clock import FrozenClock
from siyu.models import Customer, Identity, Relationship, Staff, WecomIntegration, WecomSyncRun
from tests.factories import make_customer
from tests.integrations.wecom.helpers import wecom_staff, wecom_workspace
from tests.integrations.wecom.sync.pool import ADDED, befriend


def edges(db: Session, workspace_id: int) -> set[tuple[str, str, datetime, datetime | None]]:
    db.expire_all()
    rows = db.execute(
        select(Identity.value, Staff.wecom_user_id, Relationship.added_at, Relationship.removed_at)
        .join(Staff, Staff.id == Relationship.staff_id)
        .join(Identity, (Identity.customer_id == Relationship.customer_id) & (Identity.type == "wecom_external_userid"))
        .where(Relationship.workspace_id == workspace_id)
    )

    def utc(v: datetime | None) -> datetime | None:
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v

    return {(e, u, utc(a), utc(r)) for e, u, a, r in rows}  # type: ignore[misc]


def test_full_sync_pulls_staff_customers_and_edges_and_a_second_run_changes_nothing(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    ws = setup.workspace.id
    wecom_staff(db, setup, clock=clock, userid="zhangsan", name="张三")
    setup.corp.users["lisi"] = {"userid": "lisi", "name": "李四", "department": [1], "status": 1}
    befriend(setup.corp, "wmAAA", "zhangsan", name="王芳", unionid="ouUNION1")
    befriend(setup.corp, "wmAAA", "lisi", name="王芳", unionid="ouUNION1", at=ADDED + timedelta(days=1))
    befriend(setup.corp, "wmBBB", "lisi", name="李雷")
    db.commit()

    first = run_sync(database, ws, clock)

    assert first.status == "done"
    assert first.counts["staff_created"] == 1 and first.counts["customers_created"] == 2
    assert first.counts["edges_opened"] == 3
    db.expire_all()
    assert {
        (s.wecom_user_id, s.name, s.is_active) for s in db.scalars(select(Staff).where(Staff.workspace_id == ws))
    } == {
        ("zhangsan", "张三", True),
        ("lisi", "李四", True),
    }
    assert edges(db, ws) == {
        ("wmAAA", "zhangsan", ADDED, None),
        ("wmAAA", "lisi", ADDED + timedelta(days=1), None),
        ("wmBBB", "lisi", ADDED, None),
    }
    unionids = db.scalars(select(Identity.value).where(Identity.workspace_id == ws, Identity.type == "wechat_unionid"))
    assert list(unionids) == ["ouUNION1"]
    assert {c.name for c in db.scalars(select(Customer).where(Customer.workspace_id == ws))} == {"王芳", "李雷"}

    clock.advance(timedelta(days=1))
    second = run_sync(database, ws, clock)
    assert second.run_id != first.run_id
    assert {k: v for k, v in second.counts.items() if k not in ("staff_seen", "contacts_seen", "groups_skipped")} == {}
    assert len(edges(db, ws)) == 3


def test_sync_closes_edges_wecom_lost_and_deactivates_members_who_left(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    ws = setup.workspace.id
    wecom_staff(db, setup, clock=clock, userid="zhangsan", name="张三")
    gone = wecom_staff(db, setup, clock=clock, userid="wangwu", name="王五")
    befriend(setup.corp, "wmAAA", "zhangsan")
    befriend(setup.corp, "wmBBB", "zhangsan")
    db.commit()
    run_sync(database, ws, clock)
    # the customer wmBBB deleted 张三 while siyu missed the callback; 王五 left the corp (renamed 张三 too)
    del setup.corp.follows["wmBBB|zhangsan"]
    setup.corp.users["wangwu"]["status"] = 5
    setup.corp.users["zhangsan"]["name"] = "张三丰"
    # an imported customer without an external_userid stays untouched
    imported = make_customer(db, actor=Actor.system(ws), clock=clock).customer
    db.add(
        Relationship(
            workspace_id=ws,
            staff_id=db.scalar(select(Staff.id).where(Staff.wecom_user_id == "zhangsan", Staff.workspace_id == ws)),
            customer_id=imported.id,
            added_at=ADDED,
        )
    )
    db.commit()
    clock.advance(timedelta(hours=5))

    outcome = run_sync(database, ws, clock)

    assert outcome.counts["edges_closed"] == 1
    assert outcome.counts["staff_deactivated"] == 1 and outcome.counts["staff_updated"] == 1
    assert edges(db, ws) == {("wmAAA", "zhangsan", ADDED, None), ("wmBBB", "zhangsan", ADDED, clock.now())}
    closed = db.scalar(
        select(Relationship).where(Relationship.removed_at.is_not(None), Relationship.workspace_id == ws)
    )
    assert closed is not None and closed.removed_by is None
    assert db.scalar(select(Relationship.removed_at).where(Relationship.customer_id == imported.id)) is None
    db.refresh(gone)
    assert gone.is_active is False


def test_sync_pages_batches_and_resumes_after_an_error(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    ws = setup.workspace.id
    for i in range(101):  # 101 members: two batches of userids
        setup.corp.users[f"u{i:03d}"] = {"userid": f"u{i:03d}", "name": f"员工{i}", "department": [1], "status": 1}
    for i in range(150):  # 150 customers of u000: two pages of 100
        befriend(setup.corp, f"wm{i:05d}", "u000", name=f"客户{i}")
    befriend(setup.corp, "wmLAST", "u100", name="最后")
    db.commit()
    setup.corp.fail_next("externalcontact/batch/get_by_user", -1, times=1)

    failed = run_sync(database, ws, clock)

    assert failed.status == "failed" and "externalcontact/batch/get_by_user" in (failed.error or "")
    db.expire_all()
    integration = db.scalar(select(WecomIntegration).where(WecomIntegration.workspace_id == ws))
    assert integration is not None and "系统繁忙" in (integration.last_error or "")
    assert failed.counts["staff_created"] == 101 and "customers_created" not in failed.counts
    # a page is committed, then the process "crashes"
    partial = run_sync(database, ws, clock, max_pages=1)
    assert partial.run_id == failed.run_id and partial.counts["customers_created"] == 100
    resumed = run_sync(database, ws, clock)
    assert resumed.run_id == failed.run_id and resumed.status == "done"
    assert resumed.counts["customers_created"] == 151 and resumed.counts["edges_opened"] == 151
    assert resumed.counts.get("groups_synced", 0) == 0  # the corp has no groups
    assert setup.corp.calls_of("externalcontact/batch/get_by_user") == 1 + 3  # the failure, 2 pages, batch 2
    assert len(edges(db, ws)) == 151
    run = db.get(WecomSyncRun, resumed.run_id)
    assert run is not None and (run.status, run.step, run.cursor, run.error) == ("done", None, {}, None)
