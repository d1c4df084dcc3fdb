"""A small hand-built pool for the planning tests (brand zone Asia/Shanghai, UTC+8; clock 2026-11-23).

Every time is 04:00 UTC (12:00 local), far from day boundaries.

    A  friend 2026-08-10, open       orders #1 2026-08-20 ¥100, #2 2026-09-19 ¥200
    B  friend 2026-08-15, deleted by the customer 2026-09-05   order #1 2026-10-01 ¥50
    C  friend 2026-09-10, open       order #1 2026-11-02 ¥80 (this month: outside the history)
    D  friend 2026-10-05, open       a non-pool order 2026-10-06 ¥999 (pool_sequence NULL: ignored)
    E  no friend edge                a pool order #1 2026-10-10, fully refunded (ignored)
    F  friend 2026-09-01, merged into A (ignored)

History months: 2026-08 (first data) .. 2026-10.
    month  adds  deletions  open at start  pool at end  orders  GMV
    08     2     0          0              2 (A,B)      1       10000
    09     1     1 (B)      2 (A,B)        2 (A,C)      1       20000
    10     1     0          2 (A,C)        3 (A,C,D)    1        5000
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.models import Customer, OrderStatus, Workspace
from tests.factories import actor_for, make_customer, make_order, make_relationship, make_staff


def at(month: int, day: int, year: int = 2026) -> datetime:
    return datetime(year, month, day, 4, 0, tzinfo=UTC)


@dataclass
class Pool:
    a: Customer
    b: Customer
    c: Customer
    d: Customer


def build(db: Session, clock: Clock, workspace: Workspace) -> Pool:
    actor = actor_for(workspace)
    staff = make_staff(db, workspace=workspace, clock=clock)
    a, b, c, d, e, f = (make_customer(db, actor=actor, clock=clock).customer for _ in range(6))
    make_relationship(db, customer=a, staff=staff, added_at=at(8, 10))
    make_relationship(db, customer=b, staff=staff, added_at=at(8, 15), removed_at=at(9, 5), removed_by="customer")
    make_relationship(db, customer=c, staff=staff, added_at=at(9, 10))
    make_relationship(db, customer=d, staff=staff, added_at=at(10, 5))
    make_relationship(db, customer=f, staff=staff, added_at=at(9, 1))
    f.merged_into_id = a.id
    for customer, sequence, paid, fen in (
        (a, 1, at(8, 20), 10_000),
        (a, 2, at(9, 19), 20_000),
        (b, 1, at(10, 1), 5_000),
        (c, 1, at(11, 2), 8_000),
    ):
        make_order(db, customer=customer, paid_at=paid, total_fen=fen).pool_sequence = sequence
    make_order(db, customer=d, paid_at=at(10, 6), total_fen=99_900)
    refunded = make_order(db, customer=e, paid_at=at(10, 10), total_fen=3_000, refunded_fen=3_000)
    refunded.status, refunded.pool_sequence = OrderStatus.REFUNDED, 1
    db.flush()
    return Pool(a, b, c, d)
