"""Customer tags both ways: `mark_tag` on every open edge for a siyu change (queued by the
listener, retried when WeCom is busy), and `apply_remote_customer_tags` for WeCom's edits."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.db import Database
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.fake.tags import simulate_create
from siyu.integrations.wecom.tags.customers import MARK_KIND, mark_customer_tag, on_customer_tag_changed
from siyu.integrations.wecom.tags.state import load_map
from siyu.integrations.wecom.tags.sync import apply_remote_customer_tags, pull
from siyu.integrations.wecom.tags.tasks import mark_job_body, run_tag_sync
from siyu.kit.clock import FrozenClock
from siyu.models import Customer, CustomerTag, IdentityType, Job, Tag, TagSource, WecomSyncRun
from tests.factories import make_customer, make_relationship, make_tag
from tests.integrations.wecom.helpers import WecomSetup, wecom_staff, wecom_workspace


def _friend(db: Session, setup: WecomSetup, clock: FrozenClock, external_userid: str, *userids: str) -> Customer:
    customer = make_customer(
        db,
        actor=Actor.system(setup.workspace.id),
        clock=clock,
        identities=[(str(IdentityType.WECOM_EXTERNAL_USERID), external_userid)],
    ).customer
    setup.corp.contacts[external_userid] = {"external_userid": external_userid, "name": "客户", "type": 1}
    for userid in userids:
        staff = wecom_staff(db, setup, clock=clock, userid=userid)
        make_relationship(db, customer=customer, staff=staff, added_at=clock.now())
        setup.corp.follows[f"{external_userid}|{userid}"] = {"userid": userid, "tags": [], "createtime": 0}
    return customer


def _follow_tags(setup: WecomSetup, external_userid: str, userid: str) -> list[str]:
    return [t["tag_id"] for t in setup.corp.follows[f"{external_userid}|{userid}"]["tags"]]


def test_mark_tag_adds_and_removes_on_every_open_edge(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    tag_id = simulate_create(fake_wecom.fake, setup.corp.corp_id, group_name="等级", names=["VIP"])["tag_ids"][0]
    pull(db, setup.config, clock)
    tag = db.scalar(select(Tag).where(Tag.wecom_tag_id == tag_id))
    assert tag is not None
    customer = _friend(db, setup, clock, "wmA", "zhang", "li")
    done = mark_customer_tag(db, setup.config, customer_id=customer.id, tag_id=tag.id, is_added=True, clock=clock)
    assert done == {"marked": 2, "failed": 0}
    assert _follow_tags(setup, "wmA", "zhang") == [tag_id] and _follow_tags(setup, "wmA", "li") == [tag_id]
    mark_customer_tag(db, setup.config, customer_id=customer.id, tag_id=tag.id, is_added=False, clock=clock)
    assert _follow_tags(setup, "wmA", "zhang") == [] and _follow_tags(setup, "wmA", "li") == []
    unlinked = make_tag(db, workspace=setup.workspace, name="本地")
    skipped = mark_customer_tag(
        db, setup.config, customer_id=customer.id, tag_id=unlinked.id, is_added=True, clock=clock
    )
    assert skipped == {"skipped": "tag not linked to WeCom"}


def test_an_edge_wecom_does_not_know_is_recorded(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    tag_id = simulate_create(fake_wecom.fake, setup.corp.corp_id, group_name="等级", names=["VIP"])["tag_ids"][0]
    pull(db, setup.config, clock)
    tag = db.scalar(select(Tag).where(Tag.wecom_tag_id == tag_id))
    assert tag is not None
    customer = _friend(db, setup, clock, "wmA", "zhang", "li")
    del setup.corp.follows["wmA|li"]
    done = mark_customer_tag(db, setup.config, customer_id=customer.id, tag_id=tag.id, is_added=True, clock=clock)
    assert done == {"marked": 1, "failed": 1}
    [issue] = load_map(db, setup.workspace.id, clock).issues
    assert issue["kind"] == "mark_tag_failed"
    assert issue["detail"].endswith("externalcontact/mark_tag: no external contact relation (不存在外部联系人的关系)")


def test_a_busy_wecom_is_retried_by_the_periodic_sync(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, database: Database
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    tag_id = simulate_create(fake_wecom.fake, setup.corp.corp_id, group_name="等级", names=["VIP"])["tag_ids"][0]
    pull(db, setup.config, clock)
    tag = db.scalar(select(Tag).where(Tag.wecom_tag_id == tag_id))
    assert tag is not None
    customer = _friend(db, setup, clock, "wmA", "zhang")
    db.add(
        CustomerTag(
            workspace_id=setup.workspace.id,
            customer_id=customer.id,
            tag_id=tag.id,
            source=TagSource.MANUAL,
            assigned_at=clock.now(),
        )
    )
    db.commit()
    setup.corp.fail_next("externalcontact/mark_tag", -1)
    args = {"customer_id": customer.id, "tag_id": tag.id, "is_added": True}
    result = mark_job_body(setup.workspace.id, args, clock)
    assert result["retry"] is True
    assert load_map(db, setup.workspace.id, clock).pending == [args | {"attempts": 1}]
    assert _follow_tags(setup, "wmA", "zhang") == []
    synced = run_tag_sync(setup.workspace.id, "push", clock)
    assert synced["marks_retried"] == 1
    assert _follow_tags(setup, "wmA", "zhang") == [tag_id]
    db.expire_all()
    assert load_map(db, setup.workspace.id, clock).pending == []
    run = db.get(WecomSyncRun, synced["run_id"])
    assert run is not None and (run.scope, run.step, run.status) == ("tags", "push", "done")


def test_a_failed_pull_is_kept_on_the_run(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, database: Database
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    db.commit()
    setup.corp.fail_next("externalcontact/get_corp_tag_list", 45033)
    result = run_tag_sync(setup.workspace.id, "pull", clock)
    assert (result["retryable"], result["error"]) == (
        True,
        "externalcontact/get_corp_tag_list: scripted failure (接口并发调用超过限制)",
    )
    run = db.get(WecomSyncRun, result["run_id"])
    assert run is not None and (run.status, run.error) == ("failed", result["error"])


def test_the_listener_queues_mark_tag_only_for_linked_tags(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    linked = make_tag(db, workspace=setup.workspace, name="已同步")
    linked.wecom_tag_id = "etLinked"
    local = make_tag(db, workspace=setup.workspace, name="本地")
    for tag in (linked, local):
        on_customer_tag_changed(
            db, workspace_id=setup.workspace.id, customer_id=7, tag_id=tag.id, is_added=True, clock=clock
        )
    jobs = db.scalars(select(Job).where(Job.kind == MARK_KIND, Job.workspace_id == setup.workspace.id)).all()
    assert [j.args for j in jobs] == [{"customer_id": 7, "tag_id": linked.id, "is_added": True}]


def test_remote_tags_add_missing_remove_wecom_sourced_and_keep_manual(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    ids = simulate_create(fake_wecom.fake, setup.corp.corp_id, group_name="等级", names=["VIP", "铁粉", "沉睡"])[
        "tag_ids"
    ]
    pull(db, setup.config, clock)
    vip, fan, asleep = (db.scalar(select(Tag).where(Tag.wecom_tag_id == i)) for i in ids)
    assert vip and fan and asleep
    customer = _friend(db, setup, clock, "wmA", "zhang")
    for tag, source in ((fan, TagSource.WECOM), (asleep, TagSource.MANUAL)):
        db.add(
            CustomerTag(
                workspace_id=setup.workspace.id,
                customer_id=customer.id,
                tag_id=tag.id,
                source=source,
                assigned_at=clock.now(),
            )
        )
    db.flush()
    # an admin adds a tag in WeCom that siyu has not pulled yet
    late = simulate_create(fake_wecom.fake, setup.corp.corp_id, group_name="等级", names=["新标签"], group_id=None)
    result = apply_remote_customer_tags(
        db, setup.config, customer.id, "zhang", [ids[0], late["tag_ids"][0], "etGone"], clock
    )
    new_tag = db.scalar(select(Tag).where(Tag.wecom_tag_id == late["tag_ids"][0]))
    assert new_tag is not None
    assert result == {"added": sorted([vip.id, new_tag.id]), "removed": [fan.id], "unknown": ["etGone"]}
    held = dict(
        db.execute(select(CustomerTag.tag_id, CustomerTag.source).where(CustomerTag.customer_id == customer.id)).all()
    )
    assert held == {vip.id: "wecom", new_tag.id: "wecom", asleep.id: "manual"}
    again = apply_remote_customer_tags(db, setup.config, customer.id, "zhang", [ids[0], late["tag_ids"][0]], clock)
    assert again == {"added": [], "removed": [], "unknown": []}
