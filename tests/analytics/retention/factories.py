"""A small hand-built history for the retention tests (today is Monday 2026-11-23, Asia/Shanghai)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.models import Customer, CustomerEvent, Order, OrderStatus, Workspace
from tests.factories import actor_for, make_customer, make_order, make_relationship, make_staff

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A brand-local (Shanghai) time in 2026."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def order(
    db: Session, customer: Customer, paid_at: datetime, *, pool_sequence: int | None = None, refunded: bool = False
) -> Order:
    row = make_order(db, customer=customer, paid_at=paid_at, total_fen=10_000)
    row.pool_sequence = pool_sequence
    if refunded:
        row.status, row.refunded_fen = OrderStatus.REFUNDED, row.total_fen
    db.flush()
    return row


def event(db: Session, customer: Customer, type_: str, occurred_at: datetime) -> CustomerEvent:
    row = CustomerEvent(
        workspace_id=customer.workspace_id,
        customer_id=customer.id,
        type=type_,
        occurred_at=occurred_at,
        properties={},
        source="test",
        idempotency_key=f"{type_}:{customer.id}:{occurred_at.isoformat()}",
        recorded_at=occurred_at,
    )
    db.add(row)
    db.flush()
    return row


@dataclass
class History:
    a: Customer
    b: Customer
    c: Customer
    d: Customer
    e: Customer


def seed_history(db: Session, workspace: Workspace, clock: Clock) -> History:
    """Weeks of 2026-11-02 (W1) and 2026-11-09 (W2); every figure in the tests is worked from this.

    A  added Mon 11-02, removed 11-10; orders 11-03 (pool #1), 11-17
    B  added Wed 11-04, open; orders 11-01 (before the add), 11-12; checkin.done 11-05
    C  added Mon 11-09 00:30 local (= 11-08 UTC: still W2); order 11-23 09:00; page.view 11-10
    D  added 11-10, removed 11-11, added again 11-20 by another staff; orders 11-10 (pool #1), 11-17 refunded
    E  added 10-30 (before the period); order 11-03
    F  added 11-03 but merged into A (hidden); G first added 11-16 (after the period)
    """
    actor = actor_for(workspace)
    s1, s2 = make_staff(db, workspace=workspace, clock=clock), make_staff(db, workspace=workspace, clock=clock)
    a, b, c, d, e, f, g = (make_customer(db, actor=actor, clock=clock).customer for _ in range(7))
    make_relationship(db, customer=a, staff=s1, added_at=at(11, 2), removed_at=at(11, 10), removed_by="customer")
    order(db, a, at(11, 3), pool_sequence=1)
    order(db, a, at(11, 17), pool_sequence=2)
    make_relationship(db, customer=b, staff=s1, added_at=at(11, 4))
    order(db, b, at(11, 1))
    order(db, b, at(11, 12))
    event(db, b, "checkin.done", at(11, 5))
    make_relationship(db, customer=c, staff=s1, added_at=at(11, 9, 0, 30))
    order(db, c, at(11, 23, 9))
    event(db, c, "page.view", at(11, 10))
    make_relationship(db, customer=d, staff=s1, added_at=at(11, 10), removed_at=at(11, 11), removed_by="staff")
    make_relationship(db, customer=d, staff=s2, added_at=at(11, 20))
    order(db, d, at(11, 10), pool_sequence=1)
    order(db, d, at(11, 17), refunded=True)
    make_relationship(db, customer=e, staff=s1, added_at=at(10, 30))
    order(db, e, at(11, 3))
    make_relationship(db, customer=f, staff=s1, added_at=at(11, 3))
    f.merged_into_id = a.id
    make_relationship(db, customer=g, staff=s1, added_at=at(11, 16))
    db.flush()
    return History(a, b, c, d, e)
