"""A hand-built order history whose RFM is worked out by hand (clock: 2026-11-23 10:00 Shanghai).

Window 365 days: 2025-11-24 … 2026-11-23 (brand-local).
- A: 2026-11-23 ¥100 and 2026-11-01 ¥50            → R 0,   F 2, M 15000
- B: 2026-11-12T16:30Z (= 2026-11-13 00:30 local) ¥300 → R 10, F 1, M 30000
- C: 2026-08-25 ¥50, plus a fully refunded ¥999 order (ignored) → R 90, F 1, M 5000
- D: 2026-05-27, 05-01, 04-01, ¥100 each, one refunded ¥40 → R 180, F 3, M 26000
- E: only 2025-11-01 (before the window) → no recent orders
- N: no orders → no recent orders
- G: merged into A, with an order → not counted anywhere
Scores (n = 4, score = ceil(5·rank/4), rank = 1 + number of strictly worse values):
- R (fewer days better): D rank 1 → 2, C 2 → 3, B 3 → 4, A 4 → 5
- F: B, C rank 1 → 2; A rank 3 → 4; D rank 4 → 5
- M: C 1 → 2, A 2 → 3, D 3 → 4, B 4 → 5
- FM = (F+M)/2: A 3.5, B 3.5, C 2, D 4.5
Segments (default table): A R5/FM3.5 loyal; B R4/FM3.5 loyal; C R3/FM2 need_attention;
D R2/FM4.5 at_risk. Grid cells: A (5,4), B (4,2), C (3,2), D (2,5). Revenue 76000 fen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.kit.clock import Clock
from siyu.models import Customer, OrderStatus, Role, Workspace
from tests.factories import actor_for, make_customer, make_order


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Scenario:
    actor: Actor
    a: Customer
    b: Customer
    c: Customer
    d: Customer
    e: Customer
    n: Customer
    g: Customer


def build(db: Session, clock: Clock, workspace: Workspace) -> Scenario:
    actor = actor_for(workspace, role=Role.ADMIN)
    people = [make_customer(db, actor=actor, clock=clock, name=f"客户{x}").customer for x in "ABCDENG"]
    a, b, c, d, e, n, g = people
    make_order(db, customer=a, paid_at=at("2026-11-23T01:00:00"), total_fen=10_000)
    make_order(db, customer=a, paid_at=at("2026-11-01T04:00:00"), total_fen=5_000)
    make_order(db, customer=b, paid_at=at("2026-11-12T16:30:00"), total_fen=30_000)
    make_order(db, customer=c, paid_at=at("2026-08-25T04:00:00"), total_fen=5_000)
    refunded = make_order(db, customer=c, paid_at=at("2026-10-01T04:00:00"), total_fen=99_900)
    refunded.status = OrderStatus.REFUNDED
    refunded.refunded_fen = 99_900
    make_order(db, customer=d, paid_at=at("2026-05-27T04:00:00"), total_fen=10_000)
    make_order(db, customer=d, paid_at=at("2026-05-01T04:00:00"), total_fen=10_000, refunded_fen=4_000)
    make_order(db, customer=d, paid_at=at("2026-04-01T04:00:00"), total_fen=10_000)
    make_order(db, customer=e, paid_at=at("2025-11-01T04:00:00"), total_fen=10_000)
    make_order(db, customer=g, paid_at=at("2026-11-20T04:00:00"), total_fen=10_000)
    g.merged_into_id = a.id
    db.flush()
    return Scenario(actor, a, b, c, d, e, n, g)
