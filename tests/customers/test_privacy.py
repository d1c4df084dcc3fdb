"""PIPL requests: export and erase one person."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.customers import repository
from siyu.customers.errors import CustomerErased
from siyu.customers.service import privacy, timeline
from siyu.customers.service.profile import ingest_customer
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import PermissionDenied
from siyu.models import AuditEntry, CustomerEvent, Identity, Relationship, Role
from tests.factories import actor_for, make_customer, make_staff, make_workspace


def test_export_contains_everything_about_the_person(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    customer = make_customer(
        db, actor=actor, clock=clock, phone="13800138000", name="王芳", identities=[("taobao", "tb_wf")]
    ).customer
    timeline.set_consent(
        db, actor=actor, customer_id=customer.id, channel="sms", status="granted", source="h5", clock=clock
    )
    doc = privacy.export_customer(db, actor=actor, customer_id=customer.id, clock=clock)
    assert doc["customer"]["name"] == "王芳"
    assert sorted((i["type"], i["value"]) for i in doc["identities"]) == [
        ("phone", "+8613800138000"),
        ("taobao", "tb_wf"),
    ]
    assert doc["consents"][0]["status"] == "granted"
    assert [e["type"] for e in doc["events"]] == ["consent.changed"]


def test_erase_removes_personal_data_keeps_aggregates(db: Session, clock: FrozenClock) -> None:
    # given a customer with identities, a relationship and events
    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    staff = make_staff(db, workspace=ws, clock=clock)
    customer = make_customer(db, actor=actor, clock=clock, phone="13800138000", name="王芳", city="上海").customer
    timeline.add_relationship(
        db, actor=actor, customer_id=customer.id, staff_id=staff.id, added_at=clock.now(), clock=clock
    )
    # when erased
    privacy.erase_customer(db, actor=actor, customer_id=customer.id, clock=clock)
    # then no personal field or identity remains, the relationship and event rows stay
    assert (customer.name, customer.phone, customer.city, customer.erased_at) == (None, None, None, clock.now())
    assert repository.identities_of(db, customer.id) == []
    assert db.scalar(select(func.count()).select_from(Relationship).where(Relationship.customer_id == customer.id)) == 1
    props = db.scalars(select(CustomerEvent.properties).where(CustomerEvent.customer_id == customer.id)).all()
    assert props == [{}]
    audit = db.scalar(select(AuditEntry).where(AuditEntry.action == "erase"))
    assert audit is not None and audit.after == {"identities_removed": 1, "profiles_erased": 1}
    # and the same phone arriving again creates a new, separate person
    again = ingest_customer(db, actor=actor, identities=[("phone", "13800138000")], source="t", clock=clock)
    assert again.customer.id != customer.id
    with pytest.raises(CustomerErased):
        privacy.erase_customer(db, actor=actor, customer_id=customer.id, clock=clock)


def test_operator_cannot_erase_and_nothing_changes(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    customer = make_customer(db, actor=actor_for(ws), clock=clock, phone="13800138000").customer
    with pytest.raises(PermissionDenied):
        privacy.erase_customer(db, actor=actor_for(ws, role=Role.OPERATOR), customer_id=customer.id, clock=clock)
    assert customer.phone == "+8613800138000"
    assert db.scalar(select(func.count()).select_from(Identity).where(Identity.customer_id == customer.id)) == 1


def test_erase_reaches_merged_profiles_merge_snapshots_and_old_audit_values(db: Session, clock: FrozenClock) -> None:
    from siyu.customers.errors import MergeNotUndoable
    from siyu.customers.service.merge import merge_customers, undo_merge
    from siyu.models import Customer

    ws = make_workspace(db, clock=clock)
    actor = actor_for(ws)
    a = make_customer(db, actor=actor, clock=clock, phone="13800138000", name="王芳").customer
    b = make_customer(db, actor=actor, clock=clock, phone="13900139000", name="赵六六", city="上海").customer
    merge = merge_customers(db, actor=actor, survivor_id=a.id, merged_id=b.id, reason="t", clock=clock)
    privacy.erase_customer(db, actor=actor, customer_id=a.id, clock=clock)
    merged = db.get(Customer, b.id)
    assert merged is not None and (merged.name, merged.city, merged.phone) == (None, None, None)
    assert merge.undo_data == {"erased": True}
    with pytest.raises(MergeNotUndoable):
        undo_merge(db, actor=actor, merge_id=merge.id, clock=clock)
    creates = db.scalars(
        select(AuditEntry).where(
            AuditEntry.action == "create", AuditEntry.entity_type == "customer", AuditEntry.workspace_id == ws.id
        )
    ).all()
    assert len(creates) == 2
    assert all("王芳" not in str(e.after) and "赵六六" not in str(e.after) for e in creates)
    assert creates[0].after is not None and creates[0].after["name"] == "[erased]"
