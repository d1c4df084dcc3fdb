"""Hand-built and simulated order histories for the CLV tests (bulk inserts: thousands of rows stay fast)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.models import Customer, Order, OrderStatus, Workspace

NOON_SHANGHAI = time(4, 0)  # 12:00 in Asia/Shanghai: the UTC day is the brand-local day


def paid(day: date) -> datetime:
    return datetime.combine(day, NOON_SHANGHAI, tzinfo=UTC)


def bulk_customers(db: Session, workspace: Workspace, count: int, clock: Clock) -> list[int]:
    """`count` bare customers; their ids in creation order."""
    now = clock.now()
    rows = [
        {"workspace_id": workspace.id, "name": f"客户{i}", "created_at": now, "updated_at": now} for i in range(count)
    ]
    for start in range(0, count, 5000):
        db.execute(insert(Customer), rows[start : start + 5000])
    return list(
        db.scalars(
            select(Customer.id).where(Customer.workspace_id == workspace.id).order_by(Customer.id.desc()).limit(count)
        )
    )[::-1]


def bulk_orders(db: Session, workspace: Workspace, rows: list[tuple[int, date, int]], *, prefix: str = "S") -> None:
    """Orders (customer id, brand-local day, total in fen), paid at noon Shanghai time."""
    payload = [
        {
            "workspace_id": workspace.id,
            "customer_id": customer_id,
            "platform": "taobao",
            "external_id": f"{prefix}{i}",
            "status": OrderStatus.PAID,
            "total_fen": total,
            "refunded_fen": 0,
            "paid_at": paid(day),
            "created_at": paid(day),
        }
        for i, (customer_id, day, total) in enumerate(rows)
    ]
    for start in range(0, len(payload), 5000):
        db.execute(insert(Order), payload[start : start + 5000])


@dataclass(frozen=True)
class Truth:
    r: float = 0.25
    alpha: float = 4.0
    a: float = 0.8
    b: float = 2.5
    p: float = 6.0
    q: float = 4.0
    v: float = 15.0


def simulated_history(
    db: Session, workspace: Workspace, clock: Clock, *, customers: int, end: date, days: int, seed: int = 7
) -> Truth:
    """E's simulator's order list (CDNOW-like parameters, weeks) stored as orders ending on `end`."""
    from siyu.analytics.clv.simulate import simulate_transactions

    truth = Truth()
    start = end - timedelta(days=days - 1)
    ids, order_days, amounts = simulate_transactions(
        truth, truth, customers, np.random.default_rng(seed), start=start, days=days, time_unit="week"
    )
    real = bulk_customers(db, workspace, customers, clock)
    rows = [
        (real[int(c) - 1], d.astype(date), max(1, round(float(a) * 100)))
        for c, d, a in zip(ids, order_days, amounts, strict=True)
    ]
    bulk_orders(db, workspace, rows, prefix="SIM")
    return truth
