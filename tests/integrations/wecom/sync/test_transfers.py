"""Transfers (在职继承 / 离职继承) against the fake WeCom: limits before submit, errcodes, results, edges moved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.integrations.wecom.config import client_for
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.fake.transfers import complete_transfer
from siyu.integrations.wecom.sync.service import run_sync
from siyu.integrations.wecom.sync.transfers import check_transfer, poll_transfers, submit_transfer, unassigned
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import InvalidInput
from siyu.models import Customer, Identity, Relationship, Staff, WecomTransfer
from tests.integrations.wecom.helpers import WecomSetup, wecom_staff, wecom_workspace
from tests.integrations.wecom.sync.pool import ADDED, befriend


def _pool(
    db: Session, database: Database, clock: FrozenClock, fake: RunningFake
) -> tuple[WecomSetup, Staff, Staff, dict[str, int]]:
    setup = wecom_workspace(db, clock=clock, fake=fake)
    setup.corp.clock = lambda: clock.now().timestamp()
    zhang = wecom_staff(db, setup, clock=clock, userid="zhangsan", name="张三")
    li = wecom_staff(db, setup, clock=clock, userid="lisi", name="李四")
    for ext in ("wmA", "wmB", "wmC"):
        befriend(setup.corp, ext, "zhangsan", name=ext)
    db.commit()
    run_sync(database, setup.workspace.id, clock, scope="customers")
    db.expire_all()
    ids = dict(
        db.execute(
            select(Identity.value, Identity.customer_id).where(
                Identity.workspace_id == setup.workspace.id, Identity.type == "wecom_external_userid"
            )
        ).all()
    )
    return setup, zhang, li, ids


def _edges(db: Session, customer_id: int) -> list[tuple[int, datetime, datetime | None]]:
    db.expire_all()
    rows = db.execute(
        select(Relationship.staff_id, Relationship.added_at, Relationship.removed_at)
        .where(Relationship.customer_id == customer_id)
        .order_by(Relationship.id)
    )

    def utc(v: datetime | None) -> datetime | None:
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v

    return [(s, utc(a), utc(r)) for s, a, r in rows]  # type: ignore[misc]


def test_on_job_transfer_waits_then_moves_the_customer_to_the_takeover_member(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup, zhang, li, ids = _pool(db, database, clock, fake_wecom)
    check = check_transfer(
        db,
        setup.workspace.id,
        kind="on_job",
        handover_staff_id=zhang.id,
        takeover_staff_id=li.id,
        customer_ids=[ids["wmA"], ids["wmB"]],
        clock=clock,
    )
    assert (check.ok, check.blocked, check.errors, check.calls) == ([f"c:{ids['wmA']}", f"c:{ids['wmB']}"], {}, {}, 1)
    kept = db.scalar(select(Relationship).where(Relationship.customer_id == ids["wmA"]))
    assert kept is not None
    kept.channel, kept.variant = "门店海报", "B"  # the add's attribution, to be kept on the handed-over edge
    db.flush()

    rows = submit_transfer(
        db,
        setup.config,
        kind="on_job",
        handover_staff_id=zhang.id,
        takeover_staff_id=li.id,
        customer_ids=[ids["wmA"], ids["wmB"]],
        submitted_by="admin",
        clock=clock,
    )

    assert [(r.external_id, r.status, r.takeover_at) for r in rows] == [
        ("wmA", "waiting", clock.now() + timedelta(hours=24)),
        ("wmB", "waiting", clock.now() + timedelta(hours=24)),
    ]
    assert poll_transfers(db, setup.config, clock) == {}  # WeCom: still 2 等待接替
    assert complete_transfer(setup.corp, "wmA", status=1) == 1
    assert complete_transfer(setup.corp, "wmB", status=3) == 1  # the customer refused
    assert poll_transfers(db, setup.config, clock) == {"succeeded": 1, "refused": 1}
    db.expire_all()
    done = db.get(WecomTransfer, rows[0].id)
    assert done is not None and done.status == "succeeded" and done.takeover_at is not None
    at = done.takeover_at.replace(tzinfo=UTC) if done.takeover_at.tzinfo is None else done.takeover_at
    assert at == clock.now() + timedelta(hours=24)  # WeCom's takeover_time, by the fake's (frozen) clock
    assert _edges(db, ids["wmA"]) == [(zhang.id, ADDED, at), (li.id, at, None)]
    moved = list(
        db.scalars(select(Relationship).where(Relationship.customer_id == ids["wmA"]).order_by(Relationship.id))
    )
    assert [(e.removed_by, e.channel, e.variant, e.channel_id, e.live_code_id) for e in moved] == [
        ("transferred", "门店海报", "B", None, None),  # not a deletion; the attribution stays here
        (None, "transfer", None, None, None),  # the takeover edge: not an add
    ]
    clock.advance(timedelta(days=2))
    from siyu.analytics.performance.staff import staff_performance
    from siyu.analytics.periods import Period
    from siyu.auth.permissions import Actor

    today = clock.now().date()
    perf = staff_performance(
        db, actor=Actor.system(setup.workspace.id), period=Period(today - timedelta(days=3), today), clock=clock
    )
    figures = {r.staff_id: (r.held, r.adds, r.deleted, r.deleted_by_staff) for r in perf.rows}
    assert figures == {zhang.id: (2, 0, 0, 0), li.id: (1, 0, 0, 0)}
    assert _edges(db, ids["wmB"]) == [(zhang.id, ADDED, None)]
    customer = db.get(Customer, ids["wmA"])
    assert customer is not None and customer.owner_staff_id == li.id
    # polling again changes nothing
    assert poll_transfers(db, setup.config, clock) == {}
    assert len(_edges(db, ids["wmA"])) == 2


def test_limits_are_shown_before_submitting_and_block_it(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup, zhang, li, ids = _pool(db, database, clock, fake_wecom)
    ws = setup.workspace.id
    for days in (80, 10):  # wmA was already transferred twice in the last 90 days
        db.add(
            WecomTransfer(
                workspace_id=ws,
                kind="on_job",
                handover_staff_id=li.id,
                takeover_staff_id=zhang.id,
                customer_id=ids["wmA"],
                external_id="wmA",
                status="succeeded",
                submitted_at=clock.now() - timedelta(days=days),
            )
        )
    db.flush()

    check = check_transfer(
        db,
        ws,
        kind="on_job",
        handover_staff_id=zhang.id,
        takeover_staff_id=zhang.id,
        customer_ids=[ids["wmA"], ids["wmB"]],
        clock=clock,
    )
    assert check.blocked == {f"c:{ids['wmA']}": "90 天内已在职转接 2 次（企业微信上限）"}
    assert check.errors == {"takeover_staff_id": "接替成员不能是原跟进成员"}
    assert "每次最多转接 100 位客户或 100 个群，超出将分批提交" in check.notes
    resigned = check_transfer(
        db,
        ws,
        kind="resigned",
        handover_staff_id=zhang.id,
        takeover_staff_id=li.id,
        customer_ids=[ids["wmB"]],
        clock=clock,
    )
    assert resigned.errors == {"handover_staff_id": "离职继承只能转接已离职成员的客户"}
    with pytest.raises(InvalidInput) as info:
        submit_transfer(
            db,
            setup.config,
            kind="on_job",
            handover_staff_id=zhang.id,
            takeover_staff_id=li.id,
            customer_ids=[ids["wmA"], ids["wmB"]],
            submitted_by="admin",
            clock=clock,
        )
    assert info.value.details["field"] == "customer_ids"
    assert db.scalar(select(func.count()).select_from(WecomTransfer).where(WecomTransfer.status != "succeeded")) == 0
    assert setup.corp.calls_of("externalcontact/transfer_customer") == 0
    # the 90-day limit is on-job only: once zhangsan left, a resigned transfer of wmA is allowed
    zhang.is_active = False
    setup.corp.users["zhangsan"]["status"] = 5
    db.flush()
    left = check_transfer(
        db,
        ws,
        kind="resigned",
        handover_staff_id=zhang.id,
        takeover_staff_id=li.id,
        customer_ids=[ids["wmA"]],
        clock=clock,
    )
    assert (left.ok, left.blocked, left.errors) == ([f"c:{ids['wmA']}"], {}, {})
    assert any("离职继承不受此限" in n and "管理后台" in n for n in left.notes)
    setup.corp.table("transfers")["customers"] = [
        {"kind": "on_job", "external_userid": "wmA", "status": 1, "submitted": clock.now().timestamp() - d * 86400}
        | {"handover_userid": "lisi", "takeover_userid": "zhangsan", "takeover_time": 0}
        for d in (80, 10)
    ]
    rows = submit_transfer(
        db,
        setup.config,
        kind="resigned",
        handover_staff_id=zhang.id,
        takeover_staff_id=li.id,
        customer_ids=[ids["wmA"]],
        submitted_by="admin",
        clock=clock,
    )
    assert [(r.status, r.errcode) for r in rows] == [("waiting", None)]  # the fake does not limit resigned ones


def test_check_keys_customers_and_groups_apart_and_a_move_closes_every_open_edge(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    from siyu.integrations.wecom.sync.transfers import move_customer
    from siyu.models import CommunityGroup, RemovedBy

    setup, zhang, li, ids = _pool(db, database, clock, fake_wecom)
    ws = setup.workspace.id
    group = CommunityGroup(workspace_id=ws, name="群", wecom_chat_id=None, created_at=clock.now())
    db.add(group)
    db.flush()
    same_id = ids["wmA"]
    check = check_transfer(
        db,
        ws,
        kind="on_job",
        handover_staff_id=zhang.id,
        takeover_staff_id=li.id,
        customer_ids=[same_id],
        group_ids=[group.id],
        clock=clock,
    )
    assert check.ok == [f"c:{same_id}"] and check.blocked == {f"g:{group.id}": "不是企业微信客户群"}
    # two open edges of the handover member with one customer (a stray duplicate): both move
    db.add(Relationship(workspace_id=ws, staff_id=zhang.id, customer_id=same_id, added_at=ADDED))
    db.flush()
    row = WecomTransfer(
        workspace_id=ws,
        kind="on_job",
        handover_staff_id=zhang.id,
        takeover_staff_id=li.id,
        customer_id=same_id,
        external_id="wmA",
        status="succeeded",
        submitted_at=clock.now(),
        takeover_at=clock.now(),
    )
    db.add(row)
    db.flush()
    move_customer(db, row, clock)
    db.flush()
    edges = db.scalars(
        select(Relationship).where(Relationship.customer_id == same_id, Relationship.staff_id == zhang.id)
    )
    assert [(e.removed_at is not None, e.removed_by) for e in edges] == [(True, RemovedBy.TRANSFERRED)] * 2


def test_wecom_errors_end_on_the_row_and_retryable_ones_are_resubmitted(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup, zhang, li, ids = _pool(db, database, clock, fake_wecom)
    del setup.corp.follows["wmC|zhangsan"]  # WeCom no longer has the edge siyu has: 84061
    setup.corp.fail_next("externalcontact/transfer_customer", -1)
    rows = submit_transfer(
        db,
        setup.config,
        kind="on_job",
        handover_staff_id=zhang.id,
        takeover_staff_id=li.id,
        customer_ids=[ids["wmB"], ids["wmC"]],
        submitted_by="admin",
        clock=clock,
    )
    assert [(r.status, r.errcode) for r in rows] == [("submitted", -1), ("submitted", -1)]
    db.refresh(setup.integration)
    assert "系统繁忙" in (setup.integration.last_error or "")

    assert poll_transfers(db, setup.config, clock) == {"resubmitted": 2}
    db.expire_all()
    got = [
        (r.external_id, r.status, r.errcode, r.error)
        for r in db.scalars(select(WecomTransfer).order_by(WecomTransfer.id))
    ]
    assert got == [("wmB", "waiting", None, None), ("wmC", "failed", 84061, "errcode 84061 (不存在外部联系人的关系)")]


def test_resigned_member_customers_are_listed_and_handed_over(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup, zhang, li, ids = _pool(db, database, clock, fake_wecom)
    setup.corp.users["zhangsan"]["status"] = 5
    setup.corp.users["zhangsan"]["dimission_time"] = 1763800000
    run_sync(database, setup.workspace.id, clock, scope="staff")
    db.expire_all()
    info, cursor = unassigned(client_for(setup.config), page_size=2)
    assert (
        info
        == [
            {"handover_userid": "zhangsan", "external_userid": "wmA", "dimission_time": 1763800000},
            {"handover_userid": "zhangsan", "external_userid": "wmB", "dimission_time": 1763800000},
        ]
        and cursor == "2"
    )
    rows = submit_transfer(
        db,
        setup.config,
        kind="resigned",
        handover_staff_id=zhang.id,
        takeover_staff_id=li.id,
        customer_ids=[ids["wmC"]],
        submitted_by="admin",
        clock=clock,
    )
    assert rows[0].status == "waiting"
    assert setup.corp.calls_of("externalcontact/resigned/transfer_customer") == 1
    info, _ = unassigned(client_for(setup.config))
    assert [i["external_userid"] for i in info] == ["wmA", "wmB"]
    complete_transfer(setup.corp, "wmC")
    assert poll_transfers(db, setup.config, clock) == {"succeeded": 1}
    assert [s for s, _, removed in _edges(db, ids["wmC"]) if removed is None] == [li.id]


def test_full_sync_pulls_groups_and_a_group_is_handed_to_the_takeover_member(
    db: Session, database: Database, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    from siyu.integrations.wecom.fake.groups import simulate_create
    from siyu.models import CommunityGroup

    setup, zhang, li, _ids = _pool(db, database, clock, fake_wecom)
    made = simulate_create(
        fake_wecom.fake,
        setup.corp.corp_id,
        owner="zhangsan",
        name="会员群",
        members=[{"external_userid": "wmA", "name": "wmA"}],
    )
    gone = simulate_create(fake_wecom.fake, setup.corp.corp_id, owner="zhangsan", name="旧群")
    outcome = run_sync(database, setup.workspace.id, clock, scope="groups")
    assert outcome.status == "done" and outcome.counts["groups_synced"] == 2
    db.expire_all()
    group = db.scalar(select(CommunityGroup).where(CommunityGroup.wecom_chat_id == made["chat_id"]))
    old = db.scalar(select(CommunityGroup).where(CommunityGroup.wecom_chat_id == gone["chat_id"]))
    assert group is not None and old is not None and group.owner_staff_id == zhang.id
    del setup.corp.table("groups")[gone["chat_id"]]  # dismissed in WeCom meanwhile: 40050 for that chat

    rows = submit_transfer(
        db,
        setup.config,
        kind="on_job",
        handover_staff_id=zhang.id,
        takeover_staff_id=li.id,
        group_ids=[group.id, old.id],
        submitted_by="admin",
        clock=clock,
    )

    assert [(r.external_id, r.status, r.errcode) for r in rows] == [
        (made["chat_id"], "succeeded", None),
        (gone["chat_id"], "failed", 40050),
    ]
    assert setup.corp.table("groups")[made["chat_id"]]["owner"] == "lisi"
    db.refresh(group)
    assert group.owner_staff_id == li.id
