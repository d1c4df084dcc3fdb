"""The library's rules: who sees what, reads and downloads counted once a day, the publishing flow."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.community.resources import service
from siyu.community.resources.errors import InvalidResource, ResourceNotFound, ResourceStateConflict
from siyu.community.resources.files import PDF, check_upload
from siyu.community.resources.schemas import ResourceIn, ResourcePatch
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import PermissionDenied
from siyu.models import AuditEntry, Role
from siyu.models.resource import Resource, ResourceKind, ResourceStatus, ResourceView
from tests.community.resources import factories as f
from tests.factories import actor_for, make_customer, make_workspace
from tests.loyalty.h5.factories import make_member, make_tier
from tests.segments.factories import make_segment


def test_visibility_matrix_by_tier_and_segment(db: Session, clock: FrozenClock) -> None:
    # given tiers 普通 (base) and 高级, a segment, and four published resources
    ws = make_workspace(db, clock=clock)
    make_tier(db, workspace=ws, clock=clock, name="普通", rank=0, threshold=0)
    gold = make_tier(db, workspace=ws, clock=clock, name="高级", rank=1, threshold=100_000)
    base_out, _m1 = make_member(db, workspace=ws, clock=clock)
    gold_out, m2 = make_member(db, workspace=ws, clock=clock)
    base_in, _m3 = make_member(db, workspace=ws, clock=clock)
    gold_in, m4 = make_member(db, workspace=ws, clock=clock)
    no_member_row = make_customer(db, actor=actor_for(ws), clock=clock).customer
    m2.tier_id = m4.tier_id = gold.id
    segment = make_segment(db, workspace=ws, clock=clock, members=[base_in.id, gold_in.id])
    f.make_resource(db, workspace=ws, clock=clock, title="人人可看")
    f.make_resource(db, workspace=ws, clock=clock, title="高级专享", visible_tier_ids=[gold.id])
    f.make_resource(db, workspace=ws, clock=clock, title="人群专享", visible_segment_id=segment.id)
    both = f.make_resource(
        db, workspace=ws, clock=clock, title="高级且人群", visible_tier_ids=[gold.id], visible_segment_id=segment.id
    )
    db.flush()
    # when each member lists the library
    seen = {
        who: [r.title for r in service.visible_resources(db, workspace_id=ws.id, customer_id=c.id, clock=clock)]
        for who, c in {
            "base_out": base_out,
            "gold_out": gold_out,
            "base_in": base_in,
            "gold_in": gold_in,
            "no_member_row": no_member_row,
        }.items()
    }
    # then each sees exactly what their tier and segment allow (same order: newest id first)
    assert seen == {
        "base_out": ["人人可看"],
        "gold_out": ["高级专享", "人人可看"],
        "base_in": ["人群专享", "人人可看"],
        "gold_in": ["高级且人群", "人群专享", "高级专享", "人人可看"],
        "no_member_row": ["人人可看"],
    }
    # and opening one they may not see is a plain not-found
    with pytest.raises(ResourceNotFound):
        service.member_resource(db, workspace_id=ws.id, customer_id=gold_out.id, resource_id=both.id, clock=clock)


def test_drafts_archived_and_other_brands_are_not_found(db: Session, clock: FrozenClock) -> None:
    # given a draft, an archived resource and another brand's published one
    ws, other = make_workspace(db, clock=clock), make_workspace(db, clock=clock)
    customer = make_customer(db, actor=actor_for(ws), clock=clock).customer
    draft = f.make_resource(db, workspace=ws, clock=clock, status=ResourceStatus.DRAFT)
    archived = f.make_resource(db, workspace=ws, clock=clock, status=ResourceStatus.ARCHIVED)
    foreign = f.make_resource(db, workspace=other, clock=clock)
    # when the member asks for each / then none is found and the library is empty
    for resource in (draft, archived, foreign):
        with pytest.raises(ResourceNotFound):
            service.member_resource(
                db, workspace_id=ws.id, customer_id=customer.id, resource_id=resource.id, clock=clock
            )
    assert service.visible_resources(db, workspace_id=ws.id, customer_id=customer.id, clock=clock) == []


def test_pinned_first_then_newest_and_kind_filter(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    customer = make_customer(db, actor=actor_for(ws), clock=clock).customer
    # given an old pinned guide, a newer news item and a newest file
    f.make_resource(
        db, workspace=ws, clock=clock, title="置顶攻略", is_pinned=True, published_at=clock.now() - timedelta(days=9)
    )
    f.make_resource(
        db,
        workspace=ws,
        clock=clock,
        title="新品消息",
        kind=ResourceKind.NEWS,
        published_at=clock.now() - timedelta(days=1),
    )
    f.make_resource(db, workspace=ws, clock=clock, title="价目表", kind=ResourceKind.FILE, published_at=clock.now())
    # when listed, and filtered to news
    every = service.visible_resources(db, workspace_id=ws.id, customer_id=customer.id, clock=clock)
    news = service.visible_resources(
        db, workspace_id=ws.id, customer_id=customer.id, clock=clock, kind=ResourceKind.NEWS
    )
    # then pinned comes first, then newest
    assert [r.title for r in every] == ["置顶攻略", "价目表", "新品消息"]
    assert [r.title for r in news] == ["新品消息"]


def test_reads_and_downloads_count_once_per_member_per_brand_day(db: Session, clock: FrozenClock) -> None:
    # given a published file and two members (clock: 2026-11-23 10:00 in Shanghai)
    ws = make_workspace(db, clock=clock)
    a = make_customer(db, actor=actor_for(ws), clock=clock).customer
    b = make_customer(db, actor=actor_for(ws), clock=clock).customer
    resource = f.make_resource(db, workspace=ws, clock=clock, kind=ResourceKind.FILE)
    # when A reads three times and downloads twice today, B reads once,
    counted = [
        service.record_view(db, resource=resource, customer_id=a.id, action="read", clock=clock) for _ in range(3)
    ]
    counted += [
        service.record_view(db, resource=resource, customer_id=a.id, action="download", clock=clock) for _ in range(2)
    ]
    counted.append(service.record_view(db, resource=resource, customer_id=b.id, action="read", clock=clock))
    # and A reads again at 23:59 Shanghai the same day, then at 00:00 the next day
    late = FrozenClock(clock.now() + timedelta(hours=13, minutes=59))
    counted.append(service.record_view(db, resource=resource, customer_id=a.id, action="read", clock=late))
    next_day = FrozenClock(clock.now() + timedelta(hours=14))
    counted.append(service.record_view(db, resource=resource, customer_id=a.id, action="read", clock=next_day))
    # then reads = 3 (A today, B today, A tomorrow), downloads = 1, unique readers = 2
    assert counted == [True, False, False, True, False, True, False, True]
    assert (resource.reads_count, resource.downloads_count) == (3, 1)
    assert service.unique_readers(db, workspace_id=ws.id, resource_id=resource.id) == 2
    days = db.scalars(
        select(ResourceView.day_key).where(ResourceView.customer_id == a.id, ResourceView.action == "read")
    )
    assert sorted(days) == ["2026-11-23", "2026-11-24"]


def test_publishing_flow_and_audit(db: Session, clock: FrozenClock) -> None:
    # given an operator who writes a file resource without its file
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    data = ResourceIn(kind=ResourceKind.FILE, title="  价目表  ", summary="2026 秋冬", body="见附件")
    resource = service.create_resource(db, actor=actor, data=data, clock=clock)
    # when publishing it before the upload / then refused naming the file
    with pytest.raises(ResourceStateConflict) as refused:
        service.publish(db, actor=actor, resource_id=resource.id, clock=clock)
    assert refused.value.details == {"field": "file"}
    # when the file is attached, it is published (twice), then archived
    service.attach_file(db, actor=actor, resource_id=resource.id, file=check_upload("价目表.pdf", f.PDF), clock=clock)
    later = FrozenClock(clock.now() + timedelta(hours=1))
    service.publish(db, actor=actor, resource_id=resource.id, clock=clock)
    service.publish(db, actor=actor, resource_id=resource.id, clock=later)
    service.archive(db, actor=actor, resource_id=resource.id, clock=later)
    # then it went draft → published → archived, kept its first publishing time, and each change is audited
    assert (resource.title, resource.status, resource.published_at) == ("价目表", ResourceStatus.ARCHIVED, clock.now())
    assert (resource.file_name, resource.file_type, resource.file_size) == ("价目表.pdf", PDF, len(f.PDF))
    actions = db.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.entity_type == "resource", AuditEntry.entity_id == str(resource.id))
        .order_by(AuditEntry.id)
    ).all()
    assert actions == ["resource.create", "resource.update", "resource.published", "resource.archived"]


def test_bad_references_and_permissions_write_nothing(db: Session, clock: FrozenClock) -> None:
    ws, other = make_workspace(db, clock=clock), make_workspace(db, clock=clock)
    foreign_tier = make_tier(db, workspace=other, clock=clock, name="外", rank=0, threshold=0)
    foreign_segment = make_segment(db, workspace=other, clock=clock, members=[])
    actor = actor_for(ws)
    # when creating with another brand's tier or segment, a file on a guide, or as an analyst
    cases = [
        (dict(visible_tier_ids=[foreign_tier.id]), None, "visible_tier_ids"),
        (dict(visible_segment_id=foreign_segment.id), None, "visible_segment_id"),
        ({}, check_upload("a.pdf", f.PDF), "file"),
        (dict(title="   "), None, "title"),
    ]
    for extra, upload, field in cases:
        data = ResourceIn.model_validate({"kind": "guide", "title": "攻略", **extra})
        with pytest.raises(InvalidResource) as refused:
            service.create_resource(db, actor=actor, data=data, clock=clock, file=upload)
        assert refused.value.details == {"field": field}
    with pytest.raises(PermissionDenied):
        service.create_resource(
            db, actor=actor_for(ws, role=Role.ANALYST), data=ResourceIn(kind=ResourceKind.GUIDE, title="x"), clock=clock
        )
    # then nothing was written
    assert db.scalars(select(Resource).where(Resource.workspace_id == ws.id)).all() == []


def test_patch_changes_only_what_is_sent(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    gold = make_tier(db, workspace=ws, clock=clock, name="高级", rank=1, threshold=1)
    actor = actor_for(ws)
    data = ResourceIn(kind=ResourceKind.NEWS, title="上新", body="周五上新", visible_tier_ids=[gold.id], is_pinned=True)
    resource = service.create_resource(db, actor=actor, data=data, clock=clock)
    # when only the title changes / then visibility and pin stay
    service.update_resource(db, actor=actor, resource_id=resource.id, data=ResourcePatch(title="周五上新"), clock=clock)
    assert (resource.title, resource.body, resource.visible_tier_ids, resource.is_pinned) == (
        "周五上新",
        "周五上新",
        [gold.id],
        True,
    )
