"""Review fixes: retries follow siyu's state now, several staff, bulk tagging, 40068 batches,
mass-delete guard and unlinking of WeCom-born groups."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.customers.service.tags import bulk_tag
from siyu.db import Database
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.fake.tags import simulate_create
from siyu.integrations.wecom.tags.customers import BULK_KIND
from siyu.integrations.wecom.tags.state import load_map
from siyu.integrations.wecom.tags.sync import apply_remote_customer_tags, pull, push
from siyu.integrations.wecom.tags.tasks import bulk_job_body, retry_marks
from siyu.kit.clock import FrozenClock
from siyu.models import CustomerTag, Job, Tag, TagGroup, TagSource
from tests.factories import make_tag
from tests.integrations.wecom.helpers import WecomSetup, wecom_workspace
from tests.integrations.wecom.tags.test_customer_tags import _follow_tags, _friend


def _vip(db: Session, setup: WecomSetup, clock: FrozenClock, fake_wecom: RunningFake) -> Tag:
    setup.corp.clock = lambda: clock.now().timestamp()
    wecom_id = simulate_create(fake_wecom.fake, setup.corp.corp_id, group_name="等级", names=["VIP"])["tag_ids"][0]
    pull(db, setup.config, clock)
    tag = db.scalar(select(Tag).where(Tag.wecom_tag_id == wecom_id))
    assert tag is not None
    return tag


def test_a_pending_retry_sends_what_siyu_has_now(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    tag = _vip(db, setup, clock, fake_wecom)
    customer = _friend(db, setup, clock, "wmA", "zhang")
    tmap = load_map(db, setup.workspace.id, clock)
    # an add failed, then the tag was removed in siyu and that remove failed too: one item, the newest
    tmap.add_pending({"customer_id": customer.id, "tag_id": tag.id, "is_added": True, "attempts": 1})
    tmap.add_pending({"customer_id": customer.id, "tag_id": tag.id, "is_added": False, "attempts": 1})
    assert len(tmap.pending) == 1
    tmap.save()
    setup.corp.follows["wmA|zhang"]["tags"] = [{"tag_id": tag.wecom_tag_id, "type": 1}]
    assert retry_marks(db, setup.workspace.id, clock) == 1
    assert _follow_tags(setup, "wmA", "zhang") == []  # the customer has no VIP in siyu now


def test_one_staff_member_dropping_a_tag_keeps_it_while_another_has_it(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    tag = _vip(db, setup, clock, fake_wecom)
    customer = _friend(db, setup, clock, "wmA", "zhang", "li")
    setup.corp.follows["wmA|li"]["tags"] = [{"tag_id": tag.wecom_tag_id, "type": 1}]
    assert apply_remote_customer_tags(db, setup.config, customer.id, "zhang", [str(tag.wecom_tag_id)], clock)["added"]
    assert apply_remote_customer_tags(db, setup.config, customer.id, "zhang", [], clock)["removed"] == []
    setup.corp.follows["wmA|li"]["tags"] = []
    assert apply_remote_customer_tags(db, setup.config, customer.id, "li", [], clock)["removed"] == [tag.id]


def test_bulk_tagging_queues_one_job_that_marks_every_customer(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, database: Database
) -> None:
    from siyu.customers.repository import CustomerFilter

    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    tag = _vip(db, setup, clock, fake_wecom)
    friends = [_friend(db, setup, clock, f"wm{n}", f"s{n}") for n in range(3)]
    count = bulk_tag(db, actor=Actor.system(setup.workspace.id), flt=CustomerFilter(), tag_id=tag.id, clock=clock)
    assert count == 3
    [job] = db.scalars(select(Job).where(Job.kind == BULK_KIND)).all()
    assert job.args == {"customer_ids": sorted(f.id for f in friends), "tag_id": tag.id, "is_added": True}
    db.commit()
    assert bulk_job_body(setup.workspace.id, job.args, clock) == {"customers": 3, "retry": 0, "skipped": 0}
    assert [_follow_tags(setup, f"wm{n}", f"s{n}") for n in range(3)] == [[tag.wecom_tag_id]] * 3


def test_a_batch_delete_refused_with_40068_deletes_one_by_one(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    group = TagGroup(workspace_id=setup.workspace.id, name="生命周期")
    db.add(group)
    db.flush()
    tags = [make_tag(db, workspace=setup.workspace, name=n, group=group) for n in ("甲", "乙", "丙")]
    group.wecom_group_id = None
    from siyu.integrations.wecom.tags.sync import opt_in_group

    opt_in_group(db, setup.workspace.id, group.id, clock)
    push(db, setup.config, clock)
    setup.corp.fail_next("externalcontact/del_corp_tag", 40068)  # WeCom refuses the whole batch
    db.delete(tags[0])
    db.delete(tags[1])
    db.flush()
    counts = push(db, setup.config, clock, allow_mass_delete=True)
    assert counts["deleted"] == 2 and counts["errors"] == 0
    assert [t["name"] for g in setup.corp.table("tag_groups").values() for t in g["tag"]] == ["丙"]
    assert setup.corp.calls_of("externalcontact/del_corp_tag") == 3


def test_mass_deletes_in_siyu_wait_for_the_operator_and_wecom_groups_are_unlinked(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    setup.corp.clock = lambda: clock.now().timestamp()
    names = [f"t{n}" for n in range(12)]
    simulate_create(fake_wecom.fake, setup.corp.corp_id, group_name="大组", names=names)
    simulate_create(fake_wecom.fake, setup.corp.corp_id, group_name="小组", names=["x"])
    pull(db, setup.config, clock)
    for tag in db.scalars(select(Tag).where(Tag.name.in_(names))):
        db.delete(tag)
    small = db.scalar(select(TagGroup).where(TagGroup.name == "小组"))
    assert small is not None
    db.delete(small)
    db.flush()
    counts = push(db, setup.config, clock)
    assert counts["deleted"] == 0
    tmap = load_map(db, setup.workspace.id, clock)
    assert [i["kind"] for i in tmap.issues[:2]] == ["mass_delete_blocked", "group_unlinked"]
    assert tmap.confirm == {"push": 12}
    assert sorted(g["group_name"] for g in setup.corp.table("tag_groups").values()) == ["大组", "小组"]
    assert push(db, setup.config, clock, allow_mass_delete=True)["deleted"] == 13
    assert setup.corp.table("tag_groups") == {}
    assert db.scalar(select(CustomerTag.id).where(CustomerTag.source == TagSource.WECOM)) is None


def test_an_old_map_moves_its_group_links_to_the_column_once(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    group = TagGroup(workspace_id=setup.workspace.id, name="旧组")
    db.add(group)
    db.flush()
    tmap = load_map(db, setup.workspace.id, clock)
    tmap.groups = {"etOld": {"tag_group_id": group.id, "name": "旧组", "origin": "wecom"}}
    tmap.save()
    db.flush()
    migrated = load_map(db, setup.workspace.id, clock)
    assert group.wecom_group_id == "etOld"
    assert migrated.groups == {"etOld": {"name": "旧组", "origin": "wecom"}}
    assert migrated.row.cursor["groups"] == {"etOld": {"name": "旧组", "origin": "wecom"}}


def test_mark_tag_can_name_the_chat_contact(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    from siyu.integrations.wecom.tags.customers import mark_customer_tag

    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    tag = _vip(db, setup, clock, fake_wecom)
    customer = _friend(db, setup, clock, "wmA", "zhang")
    setup.corp.follows["wmOther|zhang"] = {"userid": "zhang", "tags": [], "createtime": 0}
    done = mark_customer_tag(
        db, setup.config, customer_id=customer.id, tag_id=tag.id, is_added=True, clock=clock, external_userid="wmOther"
    )
    assert done == {"marked": 1, "failed": 0}
    assert _follow_tags(setup, "wmOther", "zhang") == [tag.wecom_tag_id] and _follow_tags(setup, "wmA", "zhang") == []


def test_a_retryable_failure_keeps_the_issues_of_earlier_edges(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake, database: Database
) -> None:
    from siyu.integrations.wecom.tags.tasks import mark_job_body

    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    tag = _vip(db, setup, clock, fake_wecom)
    customer = _friend(db, setup, clock, "wmA", "li", "zhang")
    db.commit()
    setup.corp.failures["externalcontact/mark_tag"] = [84061, -1]  # li refused, then zhang busy
    args = {"customer_id": customer.id, "tag_id": tag.id, "is_added": True}
    assert mark_job_body(setup.workspace.id, args, clock)["retry"] is True
    db.expire_all()
    tmap = load_map(db, setup.workspace.id, clock)
    assert [i["kind"] for i in tmap.issues] == ["mark_tag_failed"]
    assert tmap.pending == [args | {"attempts": 1}]


def test_a_group_member_merged_into_an_existing_customer_is_not_counted_as_created(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    from siyu.integrations.wecom.fake.groups import simulate_create as create_group
    from siyu.integrations.wecom.groups.sync import sync_group
    from tests.factories import make_customer
    from tests.integrations.wecom.helpers import wecom_staff

    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    wecom_staff(db, setup, clock=clock, userid="zhang")
    make_customer(db, actor=Actor.system(setup.workspace.id), clock=clock, identities=[("wechat_unionid", "un1")])
    setup.corp.contacts["wmU"] = {"external_userid": "wmU", "name": "老客", "type": 1, "unionid": "un1"}
    chat = create_group(fake_wecom.fake, setup.corp.corp_id, owner="zhang", members=[{"external_userid": "wmU"}])
    setup.corp.pushed.clear()
    result = sync_group(db, setup.config, chat["chat_id"], clock)
    assert (result.joined, result.customers_created) == (2, 0)
