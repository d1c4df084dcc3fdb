"""The demo brand on the built-in fake WeCom: staff as corp members, every open friend edge as the
corp's follows (so the first full sync closes nothing), and an integration whose secrets the saved
fake corp accepts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.config import Settings
from siyu.db import Database
from siyu.demo import build_demo
from siyu.demo.wecom import DEMO_CORP_ID, build_wecom
from siyu.integrations.wecom.fake.server import start_fake_server
from siyu.integrations.wecom.fake.state import FakeWecom
from siyu.integrations.wecom.ratelimit import memory_counter
from siyu.integrations.wecom.settings.service import check_connection
from siyu.integrations.wecom.sync.service import run_sync
from siyu.integrations.wecom.tokens import memory_store
from siyu.kit.clock import FrozenClock
from siyu.models import (
    AuditEntry,
    Identity,
    IdentityType,
    Relationship,
    Staff,
    WechatOfficialAccount,
    WecomIntegration,
)

CUSTOMERS = 300


@pytest.fixture
def fake_on(settings: Settings) -> Settings:
    return settings.model_copy(update={"fake_wecom": True})


@pytest.fixture
def built(database: Database, clock: FrozenClock, fake_on: Settings) -> Iterator[None]:
    memory_store().clear()
    memory_counter().clear()
    assert build_demo(database, customers=CUSTOMERS, clock=clock) is True
    assert build_wecom(database, clock=clock, settings=fake_on) is True
    yield


def _open_wecom_edges(db: Session) -> set[str]:
    rows = db.execute(
        select(Identity.value, Staff.wecom_user_id)
        .select_from(Relationship)
        .join(Staff, Staff.id == Relationship.staff_id)
        .join(
            Identity,
            (Identity.customer_id == Relationship.customer_id) & (Identity.type == IdentityType.WECOM_EXTERNAL_USERID),
        )
        .where(Relationship.removed_at.is_(None), Staff.wecom_user_id.is_not(None))
    )
    return {f"{ext}|{uid}" for ext, uid in rows}


def _open_edges(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(Relationship).where(Relationship.removed_at.is_(None))) or 0)


def test_the_demo_runs_on_a_fake_corp(
    built: None, db: Session, settings: Settings, database: Database, clock: FrozenClock
) -> None:
    integration = db.scalars(select(WecomIntegration)).one()
    assert (integration.corp_id, integration.is_fake, integration.api_base_url) == (
        DEMO_CORP_ID,
        True,
        "http://127.0.0.1:8000/fake-wecom/cgi-bin/",
    )
    fake = FakeWecom.load(settings.data_dir / "fake-wecom.json")
    corp = fake.corps[DEMO_CORP_ID]
    # every demo staff member is a corp member under their WeCom userid
    staff_ids = set(db.scalars(select(Staff.wecom_user_id).where(Staff.wecom_user_id.is_not(None))))
    assert set(corp.users) == staff_ids and len(staff_ids) > 0
    # every open friend edge of a customer with an external userid is one of the corp's follows
    edges = _open_wecom_edges(db)
    assert set(corp.follows) == edges and len(edges) > 200
    for key, follow in corp.follows.items():
        external_userid, userid = key.split("|")
        assert external_userid in corp.contacts and follow["userid"] == userid in staff_ids
    assert corp.callback_url == f"http://127.0.0.1:8000/integrations/wecom/callback?ws={integration.workspace_id}"
    assert db.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "wecom_integration")).all() == [
        "create"
    ]
    # and the saved corp accepts the integration's secrets
    running = start_fake_server(fake)
    try:
        integration.api_base_url = running.api_base_url
        checks = check_connection(db, actor=Actor.system(integration.workspace_id), clock=clock)
    finally:
        running.stop()
    assert [c.ok for c in checks] == [True, True, True, True]
    assert (settings.data_dir / "fake-wecom.json").stat().st_mode & 0o777 == 0o600
    # the brand's official account lives on the same fake
    account = db.scalars(select(WechatOfficialAccount)).one()
    assert (account.is_fake, account.workspace_id) == (True, integration.workspace_id)
    assert account.app_id in fake.accounts


def test_the_first_full_sync_closes_no_demo_friendship(
    built: None, db: Session, settings: Settings, database: Database, clock: FrozenClock
) -> None:
    # given the demo on its saved fake corp, as the server loads it
    fake = FakeWecom.load(settings.data_dir / "fake-wecom.json")
    integration = db.scalars(select(WecomIntegration)).one()
    before = _open_edges(db)
    running = start_fake_server(fake)
    try:
        integration.api_base_url = running.api_base_url
        db.flush()
        # when the daily full sync runs right after `make demo`
        outcome = run_sync(database, integration.workspace_id, clock)
    finally:
        running.stop()
    # then every friendship stays open and none is added
    assert outcome.status == "done", outcome.error
    assert outcome.counts["contacts_seen"] == len(_open_wecom_edges(db))
    assert outcome.counts.get("edges_closed", 0) == 0 and outcome.counts.get("edges_opened", 0) == 0
    db.expire_all()
    assert _open_edges(db) == before


def test_building_twice_keeps_the_first_configuration(
    built: None, database: Database, clock: FrozenClock, fake_on: Settings
) -> None:
    assert build_wecom(database, clock=clock, settings=fake_on) is False


def test_a_lost_state_file_gets_the_demo_corp_back(
    built: None, db: Session, database: Database, clock: FrozenClock, fake_on: Settings
) -> None:
    path = fake_on.data_dir / "fake-wecom.json"
    follows = set(FakeWecom.load(path).corps[DEMO_CORP_ID].follows)
    path.unlink()
    assert build_wecom(database, clock=clock, settings=fake_on) is True
    corp = FakeWecom.load(path).corps[DEMO_CORP_ID]
    assert set(corp.follows) == follows
    # and the corp accepts the saved integration's secrets
    integration = db.scalars(select(WecomIntegration)).one()
    running = start_fake_server(FakeWecom.load(path))
    try:
        integration.api_base_url = running.api_base_url
        checks = check_connection(db, actor=Actor.system(integration.workspace_id), clock=clock)
    finally:
        running.stop()
    assert all(c.ok for c in checks)
    assert build_wecom(database, clock=clock, settings=fake_on) is False


def test_without_the_fake_turned_on_nothing_is_built(
    database: Database, clock: FrozenClock, settings: Settings, db: Session
) -> None:
    assert build_demo(database, customers=20, clock=clock) is True
    assert build_wecom(database, clock=clock, settings=settings) is False
    assert db.scalars(select(WecomIntegration)).all() == []
    assert not (settings.data_dir / "fake-wecom.json").exists()


def test_without_a_demo_brand_nothing_is_built(database: Database, clock: FrozenClock, fake_on: Settings) -> None:
    assert build_wecom(database, clock=clock, settings=fake_on) is False
    assert not (fake_on.data_dir / "fake-wecom.json").exists()


def test_demo_groups_are_on_the_fake_and_the_first_sync_keeps_their_members(
    database: Database, db: Session, clock: FrozenClock, fake_on: Settings
) -> None:
    from siyu.models import CommunityGroup, GroupMember

    memory_store().clear()
    memory_counter().clear()
    assert build_demo(database, customers=40, clock=clock) is True
    # given a WeCom group of the demo with a staff owner, a member with an external userid and one without
    with database.transaction() as session:
        owner = session.scalars(select(Staff).where(Staff.wecom_user_id.is_not(None)).order_by(Staff.id)).first()
        assert owner is not None
        with_id = session.scalar(
            select(Identity.customer_id).where(Identity.type == IdentityType.WECOM_EXTERNAL_USERID).limit(1)
        )
        without_id = session.scalar(
            select(Relationship.customer_id)
            .where(
                ~Relationship.customer_id.in_(
                    select(Identity.customer_id).where(Identity.type == IdentityType.WECOM_EXTERNAL_USERID)
                )
            )
            .limit(1)
        ) or session.scalar(
            select(Identity.customer_id)
            .where(Identity.type != IdentityType.WECOM_EXTERNAL_USERID)
            .where(
                ~Identity.customer_id.in_(
                    select(Identity.customer_id).where(Identity.type == IdentityType.WECOM_EXTERNAL_USERID)
                )
            )
            .limit(1)
        )
        assert with_id is not None and without_id is not None
        group = CommunityGroup(
            workspace_id=owner.workspace_id,
            name="会员福利群",
            owner_staff_id=owner.id,
            wecom_chat_id="wrDEMOGROUP0001",
            member_count=3,
            created_at=clock.now(),
        )
        session.add(group)
        session.flush()
        for customer_id, staff_id in ((with_id, None), (without_id, None), (None, owner.id)):
            session.add(
                GroupMember(
                    workspace_id=owner.workspace_id,
                    group_id=group.id,
                    customer_id=customer_id,
                    staff_id=staff_id,
                    joined_at=clock.now(),
                )
            )
        group_id, workspace_id = group.id, owner.workspace_id
    # when the WeCom demo is built and the first full sync runs
    assert build_wecom(database, clock=clock, settings=fake_on) is True
    fake = FakeWecom.load(fake_on.data_dir / "fake-wecom.json")
    chat = fake.corps[DEMO_CORP_ID].table("groups")["wrDEMOGROUP0001"]
    assert (chat["owner"], len(chat["member_list"])) == (owner.wecom_user_id, 3)
    running = start_fake_server(fake)
    try:
        db.execute(
            WecomIntegration.__table__.update().values(api_base_url=running.api_base_url)  # type: ignore[attr-defined]
        )
        db.flush()
        outcome = run_sync(database, workspace_id, clock)
    finally:
        running.stop()
    # then the member without an external userid got one, and every stay is still open
    assert outcome.status == "done", outcome.error
    assert outcome.counts.get("groups_synced", 0) >= 1, outcome.counts
    db.expire_all()
    open_stays = db.scalars(
        select(GroupMember).where(GroupMember.group_id == group_id, GroupMember.left_at.is_(None))
    ).all()
    assert sorted((m.customer_id or 0, m.staff_id or 0) for m in open_stays) == sorted(
        [(with_id, 0), (without_id, 0), (0, owner.id)]
    )
    assert (
        db.scalar(
            select(func.count())
            .select_from(Identity)
            .where(Identity.customer_id == without_id, Identity.type == IdentityType.WECOM_EXTERNAL_USERID)
        )
        == 1
    )
