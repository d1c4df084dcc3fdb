"""Hand-built data sets for the performance reports; every figure the tests expect is worked out here.

The test clock is 2026-11-23T02:00Z (10:00 in Shanghai, the brand's zone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from siyu.analytics.periods import Period
from siyu.auth.permissions import Actor
from siyu.kit.clock import Clock
from siyu.models import (
    Channel,
    CostModel,
    Customer,
    Delivery,
    DeliveryStatus,
    Order,
    OrderStatus,
    Staff,
    StaffTask,
    StaffTaskStatus,
    Store,
    Workspace,
)
from tests.factories import (
    actor_for,
    make_channel,
    make_customer,
    make_order,
    make_relationship,
    make_staff,
    make_store,
)

ROI_PERIOD = Period(datetime(2026, 1, 1).date(), datetime(2026, 11, 23).date())
STAFF_PERIOD = Period(datetime(2026, 11, 1).date(), datetime(2026, 11, 23).date())


def at(text: str) -> datetime:
    """A UTC instant from "2026-01-10T02:00"."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def customer(db: Session, actor: Actor, clock: Clock, name: str) -> Customer:
    return make_customer(db, actor=actor, clock=clock, name=name).customer


def order(
    db: Session, c: Customer, paid: str, fen: int, *, staff: Staff | None = None, seq: int | None = None, **kw: int
) -> Order:
    o = make_order(db, customer=c, paid_at=at(paid), total_fen=fen, **kw)
    o.staff_id = staff.id if staff else None
    o.pool_sequence = seq
    if o.refunded_fen >= o.total_fen:
        o.status = OrderStatus.REFUNDED
    db.flush()
    return o


@dataclass
class Roi:
    a: Channel
    b: Channel
    c1: Customer
    c2: Customer
    c3: Customer


def build_roi(db: Session, clock: Clock, ws: Workspace) -> Roi:
    """Channel A charges ¥10 per add (CPA), B ¥5.

    - c1: first edge ever via A on 2026-01-10T02:00 (317 days old). Orders ¥100 on 01-15 (5 days
      after), ¥50 on 03-01 (50 days), ¥200 on 06-01 (142 days), and ¥80 refunded in full on 01-12.
    - c2: first edge via A on 2026-11-01T02:00 (22 days old); order ¥100 on 11-05 (4 days after).
    - c3: first edge via A on 2025-06-01 (before the period), re-added via B on 2026-02-01: not an
      acquired customer of either channel.
    A: acquired 2. 30-day GMV per customer: only c1 is 30 days old → ¥100 / 1 = ¥100. 90 days: c1
    → (¥100 + ¥50) / 1 = ¥150. 365 days: nobody is 365 days old → "未满 365 天".
    Payback at ¥10 per add, no margin: at N = 5 both c1 and c2 are ≥ 5 days old; c2's order (4 days
    after its add) is within 5 days → ¥100 ≥ 2 × ¥10 → 5 days. (N = 1..4: nothing yet.)
    """
    actor = actor_for(ws)
    store = make_store(db, workspace=ws)
    s1 = make_staff(db, workspace=ws, clock=clock, store=store, name="小王")
    a = make_channel(db, workspace=ws, clock=clock, name="包裹卡", cost_model=CostModel.CPA, cpa_fen=1_000)
    b = make_channel(db, workspace=ws, clock=clock, name="直播", cost_model=CostModel.CPA, cpa_fen=500)
    c1, c2, c3 = (customer(db, actor, clock, n) for n in ("甲", "乙", "丙"))
    make_relationship(db, customer=c1, staff=s1, added_at=at("2026-01-10T02:00"), channel=a)
    make_relationship(db, customer=c2, staff=s1, added_at=at("2026-11-01T02:00"), channel=a)
    make_relationship(
        db, customer=c3, staff=s1, added_at=at("2025-06-01T02:00"), channel=a, removed_at=at("2025-07-01T02:00")
    )
    make_relationship(db, customer=c3, staff=s1, added_at=at("2026-02-01T02:00"), channel=b)
    order(db, c1, "2026-01-15T02:00", 10_000)
    order(db, c1, "2026-01-12T02:00", 8_000, refunded_fen=8_000)
    order(db, c1, "2026-03-01T02:00", 5_000)
    order(db, c1, "2026-06-01T02:00", 20_000)
    order(db, c2, "2026-11-05T02:00", 10_000)
    order(db, c3, "2026-02-03T02:00", 7_000)
    return Roi(a, b, c1, c2, c3)


@dataclass
class Team:
    s1_store: Store
    s2_store: Store
    s1: Staff
    s2: Staff
    s3: Staff
    ca: Customer
    cb: Customer
    cc: Customer
    cd: Customer
    ce: Customer


def build_staff(db: Session, clock: Clock, ws: Workspace) -> Team:
    """Period 2026-11-01 ~ 11-23 (Shanghai). Stores 静安 (小王 s1, 小李 s2) and 徐汇 (小张 s3).

    s1 小王: cA added 10-01 (open) and cB added 11-05 (open) → held 2; adds cB and cC (11-06,
      deleted by the customer 11-10) → adds 2; cD added 10-01, deleted by s1 on 11-12.
      held 2, adds 2, deleted 2 (1 by customer, 1 by staff).
      Deliveries planned in the period: 3 (2 sent, 1 queued); one more on 10-20 not counted →
      assigned 3, sent 2, rate 2/3. Tasks due in the period: done on time, done late, open, and a
      cancelled one (ignored) → due 3, done 2, on time 1, reply rate 1/3.
      Orders: cB ¥100 first order (pool 1); cA ¥50 refunded ¥10 (pool 2) → ¥40; cC ¥30 refunded in
      full (ignored) → first orders 1, GMV ¥140.
    s2 小李: cE added 11-20 → held 1, adds 1; cM (merged into cE) has an edge too: not counted.
      cE ¥30 first order → first orders 1, GMV ¥30.
    s3 小张: nothing.
    """
    actor = actor_for(ws)
    jingan = make_store(db, workspace=ws, name="静安店")
    xuhui = make_store(db, workspace=ws, name="徐汇店")
    s1 = make_staff(db, workspace=ws, clock=clock, store=jingan, name="小王")
    s2 = make_staff(db, workspace=ws, clock=clock, store=jingan, name="小李")
    s3 = make_staff(db, workspace=ws, clock=clock, store=xuhui, name="小张")
    ca, cb, cc, cd, ce, cm = (customer(db, actor, clock, n) for n in ("A", "B", "C", "D", "E", "M"))
    make_relationship(db, customer=ca, staff=s1, added_at=at("2026-10-01T02:00"))
    make_relationship(db, customer=cb, staff=s1, added_at=at("2026-11-05T02:00"))
    make_relationship(
        db,
        customer=cc,
        staff=s1,
        added_at=at("2026-11-06T02:00"),
        removed_at=at("2026-11-10T02:00"),
        removed_by="customer",
    )
    make_relationship(
        db,
        customer=cd,
        staff=s1,
        added_at=at("2026-10-01T02:00"),
        removed_at=at("2026-11-12T02:00"),
        removed_by="staff",
    )
    make_relationship(db, customer=ce, staff=s2, added_at=at("2026-11-20T02:00"))
    make_relationship(db, customer=cm, staff=s2, added_at=at("2026-11-21T02:00"))
    cm.merged_into_id = ce.id
    for i, (status, planned, sent) in enumerate(
        [
            (DeliveryStatus.SENT, "2026-11-02T02:00", "2026-11-02T03:00"),
            (DeliveryStatus.READ, "2026-11-03T02:00", "2026-11-03T03:00"),
            (DeliveryStatus.QUEUED, "2026-11-04T02:00", None),
            (DeliveryStatus.SENT, "2026-10-20T02:00", "2026-10-20T03:00"),
        ]
    ):
        db.add(
            Delivery(
                workspace_id=ws.id,
                source="broadcast",
                source_id=900 + i,
                step="",
                customer_id=ca.id,
                staff_id=s1.id,
                status=status,
                planned_at=at(planned),
                not_before=at(planned),
                sent_at=at(sent) if sent else None,
            )
        )
    for i, (status, due, done) in enumerate(
        [
            (StaffTaskStatus.DONE, "2026-11-10T02:00", "2026-11-09T02:00"),
            (StaffTaskStatus.DONE, "2026-11-10T02:00", "2026-11-11T02:00"),
            (StaffTaskStatus.OPEN, "2026-11-12T02:00", None),
            (StaffTaskStatus.CANCELLED, "2026-11-12T02:00", None),
        ]
    ):
        db.add(
            StaffTask(
                workspace_id=ws.id,
                staff_id=s1.id,
                customer_id=ca.id,
                source="journey",
                source_id=1,
                idempotency_key=f"perf-{ws.id}-{i}",
                title="发送",
                status=status,
                due_at=at(due),
                done_at=at(done) if done else None,
                created_at=at("2026-11-01T02:00"),
            )
        )
    order(db, cb, "2026-11-10T02:00", 10_000, staff=s1, seq=1)
    order(db, ca, "2026-11-11T02:00", 5_000, staff=s1, seq=2, refunded_fen=1_000)
    order(db, cc, "2026-11-07T02:00", 3_000, staff=s1, seq=1, refunded_fen=3_000)
    order(db, ce, "2026-11-21T02:00", 3_000, staff=s2, seq=1)
    db.flush()
    return Team(jingan, xuhui, s1, s2, s3, ca, cb, cc, cd, ce)


__all__ = ["ROI_PERIOD", "STAFF_PERIOD", "Roi", "Team", "at", "build_roi", "build_staff", "timedelta"]
