"""Group create/edit rules, tags, and the daily snapshot recomputed from stays."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.community.groups import days, service
from siyu.community.groups.importer import parse_rows
from siyu.community.groups.membership import dismiss_group, join_group, leave_group
from siyu.community.groups.schemas import GroupCreate, GroupPatch
from siyu.community.groups.tasks import snapshot_days
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import Conflict, InvalidInput
from siyu.models import GroupDay, Identity, IdentityType
from siyu.models.group import GroupKind
from tests.community.groups.factories import customer_of
from tests.factories import actor_for, make_tag, make_workspace


def test_kind_and_end_rules_name_the_field(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    admin = actor_for(ws)
    cases = [
        (GroupCreate(name="x", kind=GroupKind.FLASH), "ends_at"),
        (GroupCreate(name="x", kind=GroupKind.FLASH, ends_at=clock.now() - timedelta(minutes=1)), "ends_at"),
        (GroupCreate(name="x", ends_at=clock.now() + timedelta(days=1)), "ends_at"),
        (GroupCreate(name="x", member_limit=0), "member_limit"),
        (GroupCreate(name="x", tag_ids=[999_999_999]), "tag_ids"),
        (GroupCreate(name="x", owner_staff_id=999_999_999), "owner_staff_id"),
    ]
    for data, field in cases:
        with pytest.raises(InvalidInput) as raised:
            service.create_group(db, actor=admin, data=data, clock=clock)
        assert raised.value.details == {"field": field}, data
    service.create_group(db, actor=admin, data=GroupCreate(name="a", wecom_chat_id="wr1"), clock=clock)
    with pytest.raises(Conflict):
        service.create_group(db, actor=admin, data=GroupCreate(name="b", wecom_chat_id="wr1"), clock=clock)


def test_patch_keeps_absent_fields_and_refuses_a_limit_under_the_members(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    admin = actor_for(ws)
    group = service.create_group(db, actor=admin, data=GroupCreate(name="会员群", member_limit=5), clock=clock)
    for _ in range(2):
        c = customer_of(db, workspace=ws, clock=clock)
        join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=c.id, at=clock.now(), clock=clock)
    with pytest.raises(InvalidInput) as raised:
        service.update_group(db, actor=admin, group_id=group.id, data=GroupPatch(member_limit=1), clock=clock)
    assert raised.value.details == {"field": "member_limit"}
    ends = clock.now() + timedelta(days=2)
    patched = service.update_group(
        db, actor=admin, group_id=group.id, data=GroupPatch(kind=GroupKind.FLASH, ends_at=ends), clock=clock
    )
    assert (patched.name, patched.member_limit, patched.kind, patched.ends_at) == ("会员群", 5, "flash", ends)
    back = service.update_group(
        db, actor=admin, group_id=group.id, data=GroupPatch(kind=GroupKind.LONG_TERM), clock=clock
    )
    assert (back.kind, back.ends_at) == ("long_term", None)


def test_tags_are_assigned_and_removed_idempotently(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    admin = actor_for(ws)
    a, b = make_tag(db, workspace=ws, name="华东"), make_tag(db, workspace=ws, name="VIP")
    group = service.create_group(db, actor=admin, data=GroupCreate(name="g", tag_ids=[a.id]), clock=clock)
    assert service.assign_tag(db, actor=admin, group_id=group.id, tag_id=b.id, clock=clock) == sorted([a.id, b.id])
    assert service.assign_tag(db, actor=admin, group_id=group.id, tag_id=b.id, clock=clock) == sorted([a.id, b.id])
    assert service.remove_tag(db, actor=admin, group_id=group.id, tag_id=a.id, clock=clock) == [b.id]
    assert [r.group.id for r in service.list_groups(db, actor=admin, tag_id=b.id)] == [group.id]
    assert service.list_groups(db, actor=admin, tag_id=a.id) == []


def test_the_snapshot_recomputes_days_from_stays_in_brand_time(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    # given joins on Sunday 23:30 and Monday 09:00 Shanghai, and a leave on Monday 09:30
    ws = make_workspace(db, clock=clock)
    admin = actor_for(ws)
    group = service.create_group(db, actor=admin, data=GroupCreate(name="g"), clock=clock)
    group.created_at = datetime.fromisoformat("2026-11-20T00:00:00+00:00")
    a, b = customer_of(db, workspace=ws, clock=clock), customer_of(db, workspace=ws, clock=clock)
    sunday_night = datetime.fromisoformat("2026-11-22T15:30:00+00:00")
    monday_9 = datetime.fromisoformat("2026-11-23T01:00:00+00:00")
    join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=a.id, at=sunday_night, clock=clock)
    join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=b.id, at=monday_9, clock=clock)
    leave_group(
        db, workspace_id=ws.id, group_id=group.id, customer_id=a.id, at=monday_9 + timedelta(minutes=30), clock=clock
    )
    # and the day rows are spoiled
    for row in db.scalars(select(GroupDay).where(GroupDay.group_id == group.id)):
        row.joined = row.member_count = 99
    db.commit()
    # when the job runs (Monday 10:00 Shanghai: it recomputes Sunday and Monday)
    assert snapshot_days(database, clock, workspace_id=ws.id) == {"workspaces": 1, "rows": 2}
    # then each day is right again, and the chart series fill days without rows
    db.expire_all()
    points = days.counts(db, group=group, start=date(2026, 11, 21), end=date(2026, 11, 23))
    assert [(p.day.day, p.member_count, p.joined, p.left) for p in points] == [
        (21, 0, 0, 0),
        (22, 1, 1, 0),
        (23, 1, 1, 1),
    ]


def test_the_snapshot_skips_inactive_groups_nobody_was_in_that_day(db: Session, clock: FrozenClock) -> None:
    # given an active group, a switched-off group that keeps a member, and two dismissed groups:
    # one on Sunday, one ten days earlier
    ws = make_workspace(db, clock=clock)
    admin = actor_for(ws)
    long_ago = clock.now() - timedelta(days=20)

    def group_with_member(name: str) -> int:
        group = service.create_group(db, actor=admin, data=GroupCreate(name=name), clock=clock)
        group.created_at = long_ago
        member = customer_of(db, workspace=ws, clock=clock)
        join_group(db, workspace_id=ws.id, group_id=group.id, customer_id=member.id, at=long_ago, clock=clock)
        return group.id

    active, switched_off, dismissed_sunday, dismissed_long_ago = (group_with_member(n) for n in "abcd")
    service.update_group(db, actor=admin, group_id=switched_off, data=GroupPatch(is_active=False), clock=clock)
    sunday = datetime.fromisoformat("2026-11-22T04:00:00+00:00")
    for group_id, at in ((dismissed_sunday, sunday), (dismissed_long_ago, sunday - timedelta(days=10))):
        dismiss_group(db, group=service.get_group(db, actor=admin, group_id=group_id), at=at, clock=clock)
    db.execute(delete(GroupDay).where(GroupDay.workspace_id == ws.id))
    # when Sunday and Monday (Shanghai) are snapshotted
    assert days.snapshot_workspace(db, workspace_id=ws.id, day=date(2026, 11, 22)) == 3
    assert days.snapshot_workspace(db, workspace_id=ws.id, day=date(2026, 11, 23)) == 2
    # then the groups someone was in that day have rows, the long-dismissed one none
    rows = {(r.group_id, r.day): (r.member_count, r.joined, r.left) for r in db.scalars(select(GroupDay))}
    assert rows == {
        (active, date(2026, 11, 22)): (1, 0, 0),
        (active, date(2026, 11, 23)): (1, 0, 0),
        (switched_off, date(2026, 11, 22)): (1, 0, 0),
        (switched_off, date(2026, 11, 23)): (1, 0, 0),
        (dismissed_sunday, date(2026, 11, 22)): (0, 0, 1),
    }


def test_the_import_matches_live_customers_by_phone_then_external_id(db: Session, clock: FrozenClock) -> None:
    # given an erased customer still holding a phone, and a customer known by a WeCom external id
    ws = make_workspace(db, clock=clock)
    erased = customer_of(db, workspace=ws, clock=clock, name="甲", phone="13800138009")
    erased.erased_at = clock.now()
    known = customer_of(db, workspace=ws, clock=clock, name="乙")
    db.add(
        Identity(
            workspace_id=ws.id,
            customer_id=known.id,
            type=IdentityType.WECOM_EXTERNAL_USERID,
            value="wm_known",
            created_at=clock.now(),
        )
    )
    db.flush()
    csv_rows = "姓名,手机,external_id\n甲,13800138009,\n乙,13800138009,wm_known\n丙,,wm_nobody\n丁,,\n"
    # when the rows are parsed, then the erased customer matches no row, the external id does
    with pytest.raises(InvalidInput) as refused:
        parse_rows(db, workspace_id=ws.id, data=csv_rows.encode())
    assert refused.value.details["rows"] == [
        {"row": 2, "field": "phone", "message": "no customer matches 甲"},
        {"row": 4, "field": "external_id", "message": "no customer matches 丙"},
        {"row": 5, "field": "phone", "message": "a phone or an external id is needed"},
    ]
    assert parse_rows(db, workspace_id=ws.id, data="手机,external_id\n13800138009,wm_known\n".encode()) == [
        (2, known.id, None)
    ]
