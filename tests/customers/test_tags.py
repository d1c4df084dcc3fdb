"""Tags: single and bulk tagging, within the actor's view."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.customers.repository import CustomerFilter
from siyu.customers.service import tags as tag_service
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import Conflict, PermissionDenied
from siyu.models import AuditEntry, CustomerTag, Role
from tests.factories import actor_for, make_customer, make_staff, make_tag, make_workspace


def test_assign_twice_adds_once(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = make_customer(db, actor=actor, clock=clock).customer
    tag = make_tag(db, workspace=ws)
    assert tag_service.assign_tag(db, actor=actor, customer_id=customer.id, tag_id=tag.id, clock=clock) is True
    assert tag_service.assign_tag(db, actor=actor, customer_id=customer.id, tag_id=tag.id, clock=clock) is False
    assert db.scalar(select(func.count()).select_from(CustomerTag).where(CustomerTag.tag_id == tag.id)) == 1
    assert tag_service.remove_tag(db, actor=actor, customer_id=customer.id, tag_id=tag.id, clock=clock) is True
    assert tag_service.remove_tag(db, actor=actor, customer_id=customer.id, tag_id=tag.id, clock=clock) is False


def test_bulk_tag_by_filter_tags_only_matches_and_is_idempotent(db: Session, clock: FrozenClock) -> None:
    # given 3 customers in Shanghai's stage "active" and 2 others, one already tagged
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    tag = make_tag(db, workspace=ws, name="会员日")
    active = [make_customer(db, actor=actor, clock=clock, lifecycle_stage="active").customer for _ in range(3)]
    for _ in range(2):
        make_customer(db, actor=actor, clock=clock, lifecycle_stage="new")
    tag_service.assign_tag(db, actor=actor, customer_id=active[0].id, tag_id=tag.id, clock=clock)
    # when bulk-tagging the "active" filter twice
    flt = CustomerFilter(lifecycle_stage="active")
    assert tag_service.bulk_tag(db, actor=actor, flt=flt, tag_id=tag.id, clock=clock) == 2
    assert tag_service.bulk_tag(db, actor=actor, flt=flt, tag_id=tag.id, clock=clock) == 0
    # then exactly the 3 active customers carry it, with one audit entry per bulk run
    tagged = set(db.scalars(select(CustomerTag.customer_id).where(CustomerTag.tag_id == tag.id)))
    assert tagged == {c.id for c in active}
    audits = db.scalars(select(AuditEntry.after).where(AuditEntry.action == "bulk_tag")).all()
    assert [a["customers"] for a in audits if a] == [2, 0]
    assert tag_service.bulk_untag(db, actor=actor, flt=CustomerFilter(), tag_id=tag.id, clock=clock) == 3


def test_staff_bulk_tag_reaches_only_their_own_customers(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    admin = actor_for(ws)
    mine, other = make_staff(db, workspace=ws, clock=clock), make_staff(db, workspace=ws, clock=clock)
    own = make_customer(db, actor=admin, clock=clock, owner_staff_id=mine.id).customer
    make_customer(db, actor=admin, clock=clock, owner_staff_id=other.id)
    tag = make_tag(db, workspace=ws)
    manager = actor_for(ws, role=Role.STORE_MANAGER, store_id=None)
    with pytest.raises(PermissionDenied):
        tag_service.bulk_tag(
            db, actor=actor_for(ws, role=Role.STAFF, staff_id=mine.id), flt=CustomerFilter(), tag_id=tag.id, clock=clock
        )
    assert tag_service.bulk_tag(db, actor=manager, flt=CustomerFilter(), tag_id=tag.id, clock=clock) == 0
    staff_actor = actor_for(ws, role=Role.STAFF, staff_id=mine.id)
    assert tag_service.assign_tag(db, actor=staff_actor, customer_id=own.id, tag_id=tag.id, clock=clock) is True


def test_duplicate_tag_names_conflict_within_a_group(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    group = tag_service.create_group(db, actor=actor, name="风格", clock=clock)
    tag_service.create_tag(db, actor=actor, group_id=group.id, name="通勤", clock=clock)
    with pytest.raises(Conflict):
        tag_service.create_tag(db, actor=actor, group_id=group.id, name="通勤", clock=clock)
    with pytest.raises(Conflict):
        tag_service.create_group(db, actor=actor, name="风格", clock=clock)


def test_bulk_listeners_hear_each_bulk_action_once_with_the_changed_customers(
    db: Session, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard: list[tuple[int, list[int], bool]] = []

    def listener(
        session: Session, *, workspace_id: int, customer_ids: object, tag_id: int, is_added: bool, clock: object
    ) -> None:
        assert isinstance(customer_ids, list)
        heard.append((tag_id, sorted(customer_ids), is_added))

    monkeypatch.setattr(tag_service, "_bulk_listeners", [])
    tag_service.register_bulk_tag_listener(listener)
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    tag = make_tag(db, workspace=ws)
    customers = [make_customer(db, actor=actor, clock=clock).customer for _ in range(3)]
    tag_service.assign_tag(db, actor=actor, customer_id=customers[0].id, tag_id=tag.id, clock=clock)
    tag_service.bulk_tag(db, actor=actor, flt=CustomerFilter(), tag_id=tag.id, clock=clock)
    tag_service.bulk_tag(db, actor=actor, flt=CustomerFilter(), tag_id=tag.id, clock=clock)  # nothing new: silent
    tag_service.bulk_untag(db, actor=actor, flt=CustomerFilter(), tag_id=tag.id, clock=clock)
    assert heard == [
        (tag.id, sorted(c.id for c in customers[1:]), True),
        (tag.id, sorted(c.id for c in customers), False),
    ]
