"""Enterprise tag sync both ways: pull creates/links/renames/deletes in siyu, push creates/renames/
deletes in WeCom, conflicts follow the documented rules, WeCom events trigger a pull."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.integrations.wecom.dispatch import process
from siyu.integrations.wecom.errors import KNOWN_CODES
from siyu.integrations.wecom.fake.server import RunningFake
from siyu.integrations.wecom.fake.tags import simulate_create, simulate_delete, simulate_rename
from siyu.integrations.wecom.tags.state import load_map
from siyu.integrations.wecom.tags.sync import opt_in_group, pull, push
from siyu.integrations.wecom.tags.tasks import PULL_KIND
from siyu.kit.clock import FrozenClock
from siyu.models import CustomerTag, EventStatus, Job, Tag, TagGroup, TagSource, WecomIntegration
from tests.factories import make_tag
from tests.integrations.wecom.groups.pushed import run_pushed, store
from tests.integrations.wecom.helpers import WecomSetup, wecom_workspace


def _wecom_tags(setup: WecomSetup) -> dict[str, list[str]]:
    return {g["group_name"]: sorted(t["name"] for t in g["tag"]) for g in setup.corp.table("tag_groups").values()}


def _siyu_tags(db: Session, setup: WecomSetup) -> dict[str, list[tuple[str, bool]]]:
    out: dict[str, list[tuple[str, bool]]] = {}
    rows = db.execute(
        select(TagGroup.name, Tag.name, Tag.wecom_tag_id)
        .join(Tag, Tag.group_id == TagGroup.id)
        .where(TagGroup.workspace_id == setup.workspace.id)
        .order_by(TagGroup.name, Tag.name)
    ).all()
    for group, tag, wecom_id in rows:
        out.setdefault(group, []).append((tag, wecom_id is not None))
    return out


def test_pull_creates_and_links_then_changes_nothing(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    made = simulate_create(fake_wecom.fake, setup.corp.corp_id, group_name="客户等级", names=["VIP", "普通"])
    existing_group = TagGroup(workspace_id=setup.workspace.id, name="客户等级")
    db.add(existing_group)
    db.flush()
    vip = make_tag(db, workspace=setup.workspace, name="VIP", group=existing_group)
    counts = pull(db, setup.config, clock)
    assert counts == {
        "groups_created": 0,
        "groups_linked": 1,
        "tags_created": 1,
        "tags_linked": 1,
        "renamed": 0,
        "deleted": 0,
    }
    assert vip.wecom_tag_id == made["tag_ids"][0]
    assert _siyu_tags(db, setup) == {"客户等级": [("VIP", True), ("普通", True)]}
    assert set(pull(db, setup.config, clock).values()) == {0}


def test_wecom_events_rename_and_delete_in_siyu(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    made = simulate_create(fake_wecom.fake, setup.corp.corp_id, group_name="兴趣", names=["美妆", "母婴"])
    [first, second] = run_pushed(db, setup.corp, setup.config, clock)
    assert (first.status, first.error) == (EventStatus.PROCESSED, "pull queued")
    assert (second.status, second.error) == (EventStatus.PROCESSED, "pull already queued")  # debounced
    assert db.scalar(select(func.count()).select_from(Job).where(Job.kind == PULL_KIND)) == 1
    assert pull(db, setup.config, clock)["tags_created"] == 2
    beauty = db.scalar(select(Tag).where(Tag.wecom_tag_id == made["tag_ids"][0]))
    assert beauty is not None
    db.add(
        CustomerTag(
            workspace_id=setup.workspace.id,
            customer_id=_customer(db, setup, clock),
            tag_id=beauty.id,
            source=TagSource.MANUAL,
            assigned_at=clock.now(),
        )
    )
    db.flush()
    simulate_rename(fake_wecom.fake, setup.corp.corp_id, id=made["tag_ids"][0], name="彩妆")
    simulate_delete(fake_wecom.fake, setup.corp.corp_id, id=made["tag_ids"][1])
    run_pushed(db, setup.corp, setup.config, clock)
    assert pull(db, setup.config, clock) == {
        "groups_created": 0,
        "groups_linked": 0,
        "tags_created": 0,
        "tags_linked": 0,
        "renamed": 1,
        "deleted": 1,
    }
    assert _siyu_tags(db, setup) == {"兴趣": [("彩妆", True)]}
    simulate_delete(fake_wecom.fake, setup.corp.corp_id, id=made["group_id"])
    # WeCom now lists nothing: the guard deletes nothing until the operator confirms
    assert pull(db, setup.config, clock)["deleted"] == 0
    tmap = load_map(db, setup.workspace.id, clock)
    assert (tmap.issues[0]["kind"], tmap.confirm) == ("mass_delete_blocked", {"pull": 1})
    assert _siyu_tags(db, setup) == {"兴趣": [("彩妆", True)]}
    pull(db, setup.config, clock, allow_mass_delete=True)
    assert _siyu_tags(db, setup) == {}
    assert db.scalar(select(CustomerTag.id).where(CustomerTag.tag_id == beauty.id)) is None
    assert db.scalar(select(TagGroup.id).where(TagGroup.workspace_id == setup.workspace.id)) is None


def test_strategy_tag_events_are_noted_not_pulled(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    event = store(
        db,
        setup.workspace.id,
        {"Event": "change_external_tag", "ChangeType": "create", "Id": "etX", "TagType": "tag", "StrategyId": "1"},
        clock,
    )
    assert process(db, event, setup.config, clock) == EventStatus.PROCESSED
    assert event.error == "strategy tags are not synced"
    assert setup.corp.calls_of("externalcontact/get_corp_tag_list") == 0


def test_push_creates_renames_and_deletes_in_wecom(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    group = TagGroup(workspace_id=setup.workspace.id, name="生命周期")
    db.add(group)
    db.flush()
    new = make_tag(db, workspace=setup.workspace, name="新客", group=group)
    old = make_tag(db, workspace=setup.workspace, name="老客", group=group)
    make_tag(db, workspace=setup.workspace, name="不同步")  # its group is not opted in: stays in siyu only
    assert push(db, setup.config, clock)["created"] == 0
    assert opt_in_group(db, setup.workspace.id, group.id, clock) is True
    counts = push(db, setup.config, clock)
    assert (counts["created"], counts["renamed"], counts["deleted"], counts["errors"]) == (2, 0, 0, 0)
    assert _wecom_tags(setup) == {"生命周期": ["新客", "老客"]}
    assert new.wecom_tag_id and old.wecom_tag_id and group.wecom_group_id
    new.name = "首单客"
    db.delete(old)
    db.flush()
    counts = push(db, setup.config, clock)
    assert (counts["created"], counts["renamed"], counts["deleted"]) == (0, 1, 1)
    assert _wecom_tags(setup) == {"生命周期": ["首单客"]}
    assert set(v for k, v in push(db, setup.config, clock).items()) == {0}


def test_rename_conflicts_follow_the_tags_origin(db: Session, clock: FrozenClock, fake_wecom: RunningFake) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    from_wecom = simulate_create(fake_wecom.fake, setup.corp.corp_id, group_name="来源", names=["抖音"])["tag_ids"][0]
    setup.corp.pushed.clear()
    group = TagGroup(workspace_id=setup.workspace.id, name="来源")
    db.add(group)
    db.flush()
    pull(db, setup.config, clock)
    assert group.wecom_group_id in setup.corp.table("tag_groups")  # the link is the column now
    mine = make_tag(db, workspace=setup.workspace, name="淘宝", group=group)
    push(db, setup.config, clock)
    theirs = db.scalar(select(Tag).where(Tag.wecom_tag_id == from_wecom))
    assert theirs is not None and mine.wecom_tag_id
    # both sides rename both tags before the next sync
    theirs.name, mine.name = "抖音siyu", "淘宝siyu"
    db.flush()
    simulate_rename(fake_wecom.fake, setup.corp.corp_id, id=from_wecom, name="抖音企微")
    simulate_rename(fake_wecom.fake, setup.corp.corp_id, id=mine.wecom_tag_id, name="淘宝企微")
    setup.corp.pushed.clear()
    push(db, setup.config, clock)
    assert (theirs.name, mine.name) == ("抖音企微", "淘宝siyu")
    assert _wecom_tags(setup) == {"来源": ["抖音企微", "淘宝siyu"]}
    issues = [i["kind"] for i in load_map(db, setup.workspace.id, clock).issues]
    assert issues == ["rename_conflict", "rename_conflict"]


def test_a_refused_wecom_call_is_recorded_and_the_rest_goes_on(
    db: Session, clock: FrozenClock, fake_wecom: RunningFake
) -> None:
    setup = wecom_workspace(db, clock=clock, fake=fake_wecom)
    for name in ("甲", "乙"):
        opt_in_group(db, setup.workspace.id, make_tag(db, workspace=setup.workspace, name=name).group_id, clock)
    setup.corp.fail_next("externalcontact/add_corp_tag", 40097)
    counts = push(db, setup.config, clock)
    assert (counts["created"], counts["errors"]) == (1, 1)
    [issue] = load_map(db, setup.workspace.id, clock).issues
    assert issue["kind"] == "create_failed"
    assert issue["detail"] == f"externalcontact/add_corp_tag: scripted failure ({KNOWN_CODES[40097]})"
    integration = db.scalar(select(WecomIntegration).where(WecomIntegration.workspace_id == setup.workspace.id))
    assert integration is not None
    db.refresh(integration)
    assert integration.last_error == issue["detail"]
    assert push(db, setup.config, clock)["created"] == 1  # the next run creates the one that failed


def _customer(db: Session, setup: WecomSetup, clock: FrozenClock) -> int:
    from siyu.auth.permissions import Actor
    from tests.factories import make_customer

    return make_customer(db, actor=Actor.system(setup.workspace.id), clock=clock).customer.id
