"""A small hand-built workspace for the overview; every figure in the tests is worked out from it.

Period 2026-11-16 (Mon) … 2026-11-22 (Sun), previous period 2026-11-09 … 2026-11-15, brand zone
Asia/Shanghai (times below are local; `at(day, hour)` converts to UTC).

    c1 (owner s1): edge s1 added 11-10, removed by the customer 11-17; first order 11-18 ¥100
    c2 (owner s1): edge s1 (channel A) added 11-17, open; first order 11-12 ¥50; 2nd order 11-20 ¥200
                   with ¥50 refunded
    c3 (owner s2): edge s2 added 11-18, removed by staff 11-21; SMS granted 11-01
    c4 (no owner): group stay joined 11-19, open; a fully refunded order (seq 3) 11-19; page.view 11-20;
                   tagged T
    c5 (no owner): official account granted 11-20; tagged T; OA deliveries sent 11-20 (read) and 11-21
    c6: merged into c5, with an edge added 11-18 (hidden everywhere)
    c7 (owner s2): edge s2 added 11-01, open; first order 11-21 ¥30
    staff s1 (user logged in 11-20), s2 in store X (user never logged in)
    tasks: s1 due 11-18 done 11-17; s1 due 11-19 done 11-20; s2 due 11-20 open
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from siyu.analytics.periods import Period
from siyu.kit.clock import FrozenClock
from siyu.models import (
    Channel,
    Consent,
    Customer,
    CustomerEvent,
    CustomerTag,
    Delivery,
    GroupMember,
    Role,
    Staff,
    StaffTask,
    Store,
    Tag,
    Workspace,
)
from tests.factories import (
    actor_for,
    make_channel,
    make_customer,
    make_group,
    make_order,
    make_relationship,
    make_staff,
    make_store,
    make_tag,
    make_user,
)

PERIOD = Period(date(2026, 11, 16), date(2026, 11, 22))


def at(day: int, hour: int = 12, month: int = 11) -> datetime:
    """Brand-local 2026-month-day hour:00 (Asia/Shanghai, UTC+8) as UTC."""
    return datetime(2026, month, day, hour, tzinfo=UTC) - timedelta(hours=8)


@dataclass
class World:
    ws: Workspace
    c: dict[int, Customer]
    s1: Staff
    s2: Staff
    store: Store
    channel: Channel
    tag: Tag


def build(db: Session, clock: FrozenClock, ws: Workspace) -> World:
    admin = actor_for(ws, role=Role.ADMIN)
    store = make_store(db, workspace=ws)
    s1 = make_staff(db, workspace=ws, clock=clock)
    s2 = make_staff(db, workspace=ws, clock=clock, store=store)
    channel = make_channel(db, workspace=ws, clock=clock, name="渠道A")
    tag = make_tag(db, workspace=ws)
    c = {i: make_customer(db, actor=admin, clock=clock).customer for i in range(1, 8)}
    c[1].owner_staff_id = c[2].owner_staff_id = s1.id
    c[3].owner_staff_id = c[7].owner_staff_id = s2.id
    c[6].merged_into_id = c[5].id
    db.flush()

    make_relationship(db, customer=c[1], staff=s1, added_at=at(10), removed_at=at(17), removed_by="customer")
    make_relationship(db, customer=c[2], staff=s1, added_at=at(17), channel=channel)
    make_relationship(db, customer=c[3], staff=s2, added_at=at(18), removed_at=at(21), removed_by="staff")
    make_relationship(db, customer=c[6], staff=s2, added_at=at(18))
    make_relationship(db, customer=c[7], staff=s2, added_at=at(1))

    def order(cust: Customer, day: int, fen: int, seq: int, refunded: int = 0) -> None:
        o = make_order(db, customer=cust, paid_at=at(day), total_fen=fen, refunded_fen=refunded)
        o.pool_sequence = seq
        if refunded == fen:
            o.status = "refunded"  # type: ignore[assignment]

    order(c[1], 18, 10_000, 1)
    order(c[2], 12, 5_000, 1)
    order(c[2], 20, 20_000, 2, refunded=5_000)
    order(c[4], 19, 8_000, 3, refunded=8_000)
    order(c[7], 21, 3_000, 1)

    group = make_group(db, workspace=ws, clock=clock)
    db.add(GroupMember(workspace_id=ws.id, group_id=group.id, customer_id=c[4].id, joined_at=at(19)))
    for cust, channel_name, when in ((c[3], "sms", at(1)), (c[5], "official_account", at(20))):
        db.add(
            Consent(
                workspace_id=ws.id,
                customer_id=cust.id,
                channel=channel_name,
                status="granted",
                source="test",
                changed_at=when,
            )
        )
    for cust in (c[4], c[5]):
        db.add(CustomerTag(workspace_id=ws.id, customer_id=cust.id, tag_id=tag.id, source="manual", assigned_at=at(1)))
    db.add(
        CustomerEvent(
            workspace_id=ws.id,
            customer_id=c[4].id,
            type="page.view",
            occurred_at=at(20),
            properties={},
            source="test",
            idempotency_key="pv-c4",
            recorded_at=at(20),
        )
    )
    for step, sent, read in (("a", at(20), at(20, 13)), ("b", at(21), None)):
        db.add(
            Delivery(
                workspace_id=ws.id,
                source="broadcast",
                source_id=1,
                step=step,
                customer_id=c[5].id,
                channel="official_account",
                status="delivered",
                not_before=sent,
                planned_at=sent,
                sent_at=sent,
                read_at=read,
            )
        )
    u1 = make_user(db, clock=clock, workspace=ws, role=Role.STAFF, staff_id=s1.id)
    make_user(db, clock=clock, workspace=ws, role=Role.STAFF, staff_id=s2.id)
    u1.last_login_at = at(20)
    for key, staff, due, done in (("t1", s1, at(18), at(17)), ("t2", s1, at(19), at(20)), ("t3", s2, at(20), None)):
        db.add(
            StaffTask(
                workspace_id=ws.id,
                staff_id=staff.id,
                source="sop",
                source_id=1,
                idempotency_key=f"{ws.id}-{key}",
                title="跟进",
                status="done" if done else "open",
                due_at=due,
                done_at=done,
                created_at=at(10),
            )
        )
    db.flush()
    return World(ws=ws, c=c, s1=s1, s2=s2, store=store, channel=channel, tag=tag)
