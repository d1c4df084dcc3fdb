"""Full sync rules from the review: seen stamps, transfers in flight, failures, membership, unionids."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers.service.profile import ProfileInput, ingest_customer
from siyu.customers.service.timeline import add_relationship
from siyu.db import Database
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.fake.transfers import complete_transfer
from siyu.integrations.wecom.sync import service
from siyu.integrations.wecom.sync.service import run_sync
from siyu.integrations.wecom.sync.transfers import submit_transfer
from siyu.kit.clock import FrozenClock
from siyu.models import Identity, Relationship, Staff, WecomSyncRun, WecomTransfer
from tests.integrations.wecom.helpers import wecom_staff, wecom_workspace
from tests.integrations.wecom.sync.pool import befriend


def _customer_id(db: Session, ws: int, ext: str) -> int:
    found = db.scalar(select(Identity.customer_id).where(Identity.workspace_id == ws, Identity.value == ext))
    assert found is not None
    return int(found)


def test_a_resumed_run_and_an_edge_a_callback_opened_mid_run_are_not_closed(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "CONTACTS_PER_PAGE", 2)
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    ws = setup.workspace.id
    zhang = wecom_staff(db, setup, clock=clock, userid="zhangsan")
    for ext in ("wmA", "wmB", "wmC"):
        befriend(setup.corp, ext, "zhangsan", name=ext)
    db.commit()
    assert run_sync(database, ws, clock, scope="customers").counts["edges_opened"] == 3
    clock.advance(timedelta(days=1))

    partial = run_sync(database, ws, clock, scope="customers", max_pages=1)  # page 1 (wmA, wmB), then a "crash"
    clock.advance(timedelta(minutes=5))
    # a callback adds wmD to 张三 meanwhile; WeCom's listing of this run already passed it
    actor = Actor.system(ws)
    wm_d = ingest_customer(
        db,
        actor=actor,
        identities=[("wecom_external_userid", "wmD")],
        profile=ProfileInput(values={"name": "wmD"}),
        source="test",
        clock=clock,
    ).customer
    add_relationship(db, actor=actor, customer_id=wm_d.id, staff_id=zhang.id, added_at=clock.now(), clock=clock)
    db.commit()
    resumed = run_sync(database, ws, clock, scope="customers")

    assert resumed.run_id == partial.run_id and resumed.status == "done"
    assert resumed.counts.get("edges_closed", 0) == 0
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Relationship).where(Relationship.removed_at.is_not(None))) == 0
    run = db.get(WecomSyncRun, resumed.run_id)
    assert run is not None and "seen" not in (run.cursor or {})
    seen = db.scalars(select(Relationship.wecom_seen_at).where(Relationship.customer_id != wm_d.id))
    assert {s.replace(tzinfo=None) if s else None for s in seen} == {run.started_at.replace(tzinfo=None)}


def test_a_transfer_wecom_completed_before_the_poll_is_moved_not_deleted_and_re_added(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.corp.clock = lambda: clock.now().timestamp()
    ws = setup.workspace.id
    zhang = wecom_staff(db, setup, clock=clock, userid="zhangsan")
    li = wecom_staff(db, setup, clock=clock, userid="lisi")
    befriend(setup.corp, "wmA", "zhangsan", name="wmA")
    befriend(setup.corp, "wmB", "zhangsan", name="wmB")
    db.commit()
    run_sync(database, ws, clock, scope="customers")
    db.expire_all()
    a, b = _customer_id(db, ws, "wmA"), _customer_id(db, ws, "wmB")
    submit_transfer(
        db,
        setup.config,
        kind="on_job",
        handover_staff_id=zhang.id,
        takeover_staff_id=li.id,
        customer_ids=[a, b],
        submitted_by="admin",
        clock=clock,
    )
    db.commit()
    complete_transfer(setup.corp, "wmA")  # taken over in WeCom; wmB still waiting (WeCom moved nothing yet)
    del setup.corp.follows["wmB|zhangsan"]  # …and wmB's edge vanished in WeCom while its transfer waits
    clock.advance(timedelta(days=2))

    outcome = run_sync(database, ws, clock, scope="customers")

    assert (outcome.counts.get("edges_transferred"), outcome.counts.get("edges_closed", 0)) == (1, 0)
    assert outcome.counts.get("edges_opened", 0) == 0
    db.expire_all()
    rows = {r.customer_id: r.status for r in db.scalars(select(WecomTransfer))}
    assert rows == {a: "succeeded", b: "waiting"}
    got = [
        (e.customer_id, e.staff_id, e.removed_by, e.channel, e.removed_at is None)
        for e in db.scalars(select(Relationship).where(Relationship.workspace_id == ws).order_by(Relationship.id))
    ]
    assert got == [
        (a, zhang.id, "transferred", None, False),
        (b, zhang.id, None, None, True),  # kept open: its transfer decides
        (a, li.id, None, "transfer", True),
    ]


def test_a_non_retryable_error_ends_the_run_and_the_next_sync_starts_afresh(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    ws = setup.workspace.id
    wecom_staff(db, setup, clock=clock, userid="zhangsan")
    befriend(setup.corp, "wmA", "zhangsan")
    db.commit()
    setup.corp.fail_next("externalcontact/get_follow_user_list", 48002)  # no API permission

    failed = run_sync(database, ws, clock, scope="customers")

    assert failed.status == "failed" and failed.counts["attempts"] == 1
    db.expire_all()
    run = db.get(WecomSyncRun, failed.run_id)
    assert run is not None and run.finished_at is not None
    again = run_sync(database, ws, clock, scope="customers")
    assert again.run_id != failed.run_id and again.status == "done"


def test_a_member_gone_mid_step_restarts_the_customers_step_and_a_wider_scope_is_respected(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    ws = setup.workspace.id
    wecom_staff(db, setup, clock=clock, userid="zhangsan")
    befriend(setup.corp, "wmA", "zhangsan")
    db.commit()
    setup.corp.fail_next("externalcontact/batch/get_by_user", 60111)

    outcome = run_sync(database, ws, clock, scope="customers")

    assert outcome.status == "done" and outcome.counts["customers_restarts"] == 1
    assert outcome.counts["edges_opened"] == 1
    # an unfinished staff-only run does not swallow a requested full sync
    setup.corp.fail_next("user/list_id", -1)
    stuck = run_sync(database, ws, clock, scope="staff")
    assert stuck.status == "failed"
    full = run_sync(database, ws, clock, scope="full")
    assert full.run_id != stuck.run_id and full.status == "done"
    db.expire_all()
    superseded = db.get(WecomSyncRun, stuck.run_id)
    assert superseded is not None and superseded.finished_at is not None
    assert db.get(WecomSyncRun, full.run_id).scope == "full"  # type: ignore[union-attr]


def test_staff_membership_uses_list_id_and_never_mass_deactivates_or_reactivates(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    ws = setup.workspace.id
    staff = [wecom_staff(db, setup, clock=clock, userid=f"u{i}", name=f"员工{i}") for i in range(6)]
    setup.corp.users["u0"]["hidden"] = True  # outside the app's visible range: still a member
    staff[1].is_active = False  # turned off by an operator
    db.commit()

    first = run_sync(database, ws, clock, scope="staff")

    assert first.counts.get("staff_deactivated", 0) == 0 and "warning" not in first.counts
    db.expire_all()
    active = dict(db.execute(select(Staff.wecom_user_id, Staff.is_active).where(Staff.workspace_id == ws)).all())
    assert active == {"u0": True, "u1": False, "u2": True, "u3": True, "u4": True, "u5": True}
    assert setup.corp.calls_of("user/list_id") == 1 and setup.corp.calls_of("department/simplelist") == 1
    # four of five active members vanish at once (a permission change, not people leaving): a warning
    for i in (2, 3, 4, 5):
        setup.corp.users[f"u{i}"]["status"] = 5
    shrunk = run_sync(database, ws, clock, scope="staff")
    assert shrunk.counts.get("staff_deactivated", 0) == 0 and "would be deactivated" in shrunk.counts["warning"]
    # one member leaves: deactivated as usual
    for i in (2, 3, 4):
        setup.corp.users[f"u{i}"]["status"] = 1
    normal = run_sync(database, ws, clock, scope="staff")
    assert normal.counts["staff_deactivated"] == 1
    db.expire_all()
    assert db.scalar(select(Staff.is_active).where(Staff.workspace_id == ws, Staff.wecom_user_id == "u5")) is False


def test_a_unionid_held_by_another_customer_is_linked_once_then_left_alone(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    ws = setup.workspace.id
    wecom_staff(db, setup, clock=clock, userid="zhangsan")
    befriend(setup.corp, "wmA", "zhangsan", name="王芳")
    db.commit()
    run_sync(database, ws, clock, scope="customers")
    # an official-account follower holds the unionid; WeCom now reports it for wmA too
    ingest_customer(
        db,
        actor=Actor.system(ws),
        identities=[("wechat_unionid", "ouU1")],
        profile=ProfileInput(values={}),
        source="test",
        clock=clock,
    )
    setup.corp.contacts["wmA"]["unionid"] = "ouU1"
    db.commit()

    linked = run_sync(database, ws, clock, scope="customers")
    again = run_sync(database, ws, clock, scope="customers")

    assert linked.counts.get("customers_updated") == 1
    assert again.counts.get("customers_updated", 0) == 0 and again.counts.get("customers_created", 0) == 0
    db.expire_all()
    by_ext = service._customer_by_identity(db, ws, "wecom_external_userid", "wmA")
    by_union = service._customer_by_identity(db, ws, "wechat_unionid", "ouU1")
    assert by_ext is not None and by_union is not None and by_ext.id == by_union.id
