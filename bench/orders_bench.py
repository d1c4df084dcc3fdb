"""`siyu bench orders`: orders through `ingest_orders` (identity resolution, points, tiers) against a
raw insert of the same order and item rows.

The brand: a pool of `orders / 4` customers with a phone, a Taobao id and a JD id each (raw bulk
insert, `bench.raw`), created 30 days before the first order; 40 products; the loyalty program's
defaults (1 point per yuan) with tiers 普通 (rank 0), 高级 (≥ 1,000 yuan in 365 days, 1.2×) and 尊享
(≥ 5,000 yuan, 1.5×). Order `j` is a pure function of `j` and the seed: 70% are bought by a pool
customer (phone, plus the platform's buyer id on Taobao and JD), 30% by one of `orders / 5` new
buyers (a phone never seen, plus a Taobao id on Taobao) — a new buyer's first order creates the
customer, later ones find it. 1–3 lines of catalogue SKUs, shipping on one order in five, paid
times spread over the 360 days before the bench's clock, in order.

Figures (same run, same database):
- `raw_insert` (the baseline): the same orders and lines as Core `executemany` inserts with the
  buyer already known, one transaction per batch of 1,000; deleted afterwards.
- `ingest`: `ingest_orders` in batches of 1,000, one transaction each (identities resolved for the
  whole batch, new buyers created, lines named from the catalogue, pool flags, purchase points
  through the ledger, tier upgrades) → orders/s.
Counters: outcomes by status (all "created"), customers created (= distinct new buyers), members by
tier, points, and `ledger_mismatches`: members whose cached balance differs from the sum of their
entries or of their lots' remaining points — must be 0.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, cast

from sqlalchemy import Engine, Table, delete, func, insert, select, text
from sqlalchemy.orm import Session

from bench import data
from bench.harness import Reporter, bench_database, new_workspace, peak_memory, result_row, size_rows, timed
from bench.raw import raw_insert as raw_pool
from siyu.auth.permissions import Actor
from siyu.commerce.orders.ingest import MAX_BATCH, ingest_orders
from siyu.commerce.orders.schemas import OrderIn, OrderItemIn
from siyu.customers.schemas import IdentityIn
from siyu.kit.clock import FrozenClock
from siyu.loyalty.program import get_program
from siyu.models import (
    Customer,
    Member,
    Order,
    OrderItem,
    OrderSource,
    OrderStatus,
    Platform,
    PointsEntry,
    PointsLot,
    Product,
    Tier,
)

BATCH = MAX_BATCH
SEED = 20261124
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
SPAN = timedelta(days=360)
"""Orders are paid over the 360 days before `NOW`, in order."""
POOL_SHARE, NEW_BUYER_SHARE = 4, 5
"""The pool holds orders / 4 customers; new buyers are drawn from orders / 5 phones."""
POOL_BUYERS_PCT = 70
PLATFORMS = ["taobao", "taobao", "jd", "youzan", "miniprogram"]
PRODUCTS = 40
TIERS = [("普通", 0, 0, 100), ("高级", 1, 100_000, 120), ("尊享", 2, 500_000, 150)]
"""(name, rank, threshold in fen of spend over 365 days, points multiplier %)."""

_ORDERS = cast(Table, Order.__table__)
_ITEMS = cast(Table, OrderItem.__table__)


def sku(k: int) -> str:
    return f"SKU-{k:04d}"


def price_fen(k: int) -> int:
    """Catalogue price of product `k`: 39 to 819 yuan."""
    return (39 + (k * 37) % 781) * 100


@dataclass(frozen=True)
class Spec:
    """Order `j` of the bench, before it becomes an `OrderIn` (or a raw row)."""

    index: int
    platform: str
    buyer: int
    """Pool customer index (< pool), or a new buyer's index (≥ pool)."""
    lines: tuple[tuple[int, int], ...]
    """(product, quantity)."""
    shipping_fen: int
    paid_at: datetime

    @property
    def external_id(self) -> str:
        return f"{self.platform[:2].upper()}{self.index:08d}"

    @property
    def total_fen(self) -> int:
        return sum(price_fen(k) * q for k, q in self.lines) + self.shipping_fen


def specs(orders: int, pool: int, *, seed: int = SEED) -> Iterator[Spec]:
    """The bench's orders, in order (a pure function of the index and the seed)."""
    rng = random.Random(seed)
    new_buyers = max(orders // NEW_BUYER_SHARE, 1)
    start = NOW - SPAN
    for j in range(orders):
        buyer = rng.randrange(pool) if rng.randrange(100) < POOL_BUYERS_PCT else pool + rng.randrange(new_buyers)
        lines = tuple((rng.randrange(PRODUCTS), 1 + (rng.random() < 0.2)) for _ in range(1 + rng.randrange(3)))
        yield Spec(
            index=j,
            platform=rng.choice(PLATFORMS),
            buyer=buyer,
            lines=lines,
            shipping_fen=1_000 if rng.randrange(5) == 0 else 0,
            paid_at=start + SPAN * j / orders,
        )


def order_in(spec: Spec, pool: int) -> OrderIn:
    """The order as a shop integration sends it: the buyer by identities, never by customer id."""
    identities = [IdentityIn(type="phone", value=data.phone_digits(spec.buyer))]
    if spec.platform == "taobao":
        identities.append(IdentityIn(type="taobao", value=data.taobao_id(spec.buyer)))
    elif spec.platform == "jd" and spec.buyer < pool:
        identities.append(IdentityIn(type="jd", value=data.jd_id(spec.buyer)))
    return OrderIn(
        platform=Platform(spec.platform),
        external_id=spec.external_id,
        identities=identities,
        total_fen=spec.total_fen,
        shipping_fen=spec.shipping_fen,
        paid_at=spec.paid_at,
        items=[OrderItemIn(sku=sku(k), quantity=q, amount_fen=price_fen(k) * q) for k, q in spec.lines],
    )


def expected_new_customers(orders: int, pool: int) -> int:
    """Distinct new buyers among the orders: the customers ingestion must create."""
    return len({spec.buyer for spec in specs(orders, pool) if spec.buyer >= pool})


# --- the brand -----------------------------------------------------------------------------------


def load(engine: Engine, workspace_id: int, pool: int, clock: FrozenClock) -> None:
    """The pool (raw bulk insert), the catalogue, the program and its tiers."""
    raw_pool(
        engine,
        workspace_id=workspace_id,
        rows=data.rows(pool, duplicates=False),
        count=pool,
        batch_size=5_000,
        now=NOW - SPAN - timedelta(days=30),
    )
    with Session(engine) as session, session.begin():
        now = clock.now()
        for k in range(PRODUCTS):
            session.add(
                Product(
                    workspace_id=workspace_id,
                    sku=sku(k),
                    name=f"商品{k:02d}",
                    category=["护肤", "彩妆", "香氛", "个护"][k % 4],
                    price_fen=price_fen(k),
                    is_active=True,
                    created_at=now,
                    updated_at=now,
                )
            )
        get_program(session, workspace_id, clock=clock)
        for name, rank, threshold, multiplier in TIERS:
            session.add(
                Tier(
                    workspace_id=workspace_id,
                    name=name,
                    rank=rank,
                    threshold=threshold,
                    points_multiplier_pct=multiplier,
                    benefits={},
                    created_at=now,
                    updated_at=now,
                )
            )
    _analyze(engine)


def _analyze(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def _pool_ids(engine: Engine, workspace_id: int) -> list[int]:
    """Pool customer ids by index (raw_insert writes them in index order)."""
    with engine.connect() as conn:
        return list(
            conn.scalars(select(Customer.id).where(Customer.workspace_id == workspace_id).order_by(Customer.id))
        )


# --- the two sides ---------------------------------------------------------------------------------


def raw_insert(engine: Engine, workspace_id: int, orders: int, pool: int, pool_ids: list[int]) -> int:
    """The baseline: the same orders and lines, buyer known, Core `executemany`, 1,000 per transaction."""
    written = 0
    stream = specs(orders, pool)
    now = NOW
    while batch := list(islice(stream, BATCH)):
        with engine.begin() as conn:
            ids = conn.execute(
                insert(_ORDERS).returning(_ORDERS.c.id, sort_by_parameter_order=True),
                [
                    {
                        "workspace_id": workspace_id,
                        "customer_id": pool_ids[spec.buyer % pool],
                        "platform": spec.platform,
                        "external_id": "RAW" + spec.external_id,
                        "status": OrderStatus.PAID,
                        "total_fen": spec.total_fen,
                        "discount_fen": 0,
                        "shipping_fen": spec.shipping_fen,
                        "refunded_fen": 0,
                        "paid_at": spec.paid_at,
                        "created_at": now,
                        "source": OrderSource.IMPORT,
                        "attributes": {},
                    }
                    for spec in batch
                ],
            ).scalars()
            conn.execute(
                insert(_ITEMS),
                [
                    {
                        "workspace_id": workspace_id,
                        "order_id": order_id,
                        "customer_id": pool_ids[spec.buyer % pool],
                        "sku": sku(k),
                        "product_name": f"商品{k:02d}",
                        "category": ["护肤", "彩妆", "香氛", "个护"][k % 4],
                        "quantity": q,
                        "amount_fen": price_fen(k) * q,
                        "refunded_fen": 0,
                    }
                    for spec, order_id in zip(batch, ids, strict=True)
                    for k, q in spec.lines
                ],
            )
        written += len(batch)
    return written


def _clear_raw(engine: Engine, workspace_id: int) -> None:
    raw = select(Order.id).where(Order.workspace_id == workspace_id, Order.external_id.like("RAW%"))
    with engine.begin() as conn:
        conn.execute(delete(OrderItem).where(OrderItem.order_id.in_(raw)))
        conn.execute(delete(Order).where(Order.id.in_(raw)))
    _analyze(engine)


def ingest(
    engine: Engine, workspace_id: int, orders: int, pool: int, clock: FrozenClock, reporter: Reporter
) -> tuple[float, Counter[str]]:
    """Every order through `ingest_orders`, 1,000 per transaction; seconds spent there, outcomes."""
    actor = Actor.system(workspace_id, label="bench")
    outcomes: Counter[str] = Counter()
    seconds = 0.0
    stream = specs(orders, pool)
    every = max(orders // 10, BATCH)
    done = 0
    while batch := [order_in(spec, pool) for spec in islice(stream, BATCH)]:
        with timed() as spent, Session(engine) as session, session.begin():
            results = ingest_orders(session, actor=actor, orders=batch, source=OrderSource.IMPORT, clock=clock)
        seconds += spent.seconds
        outcomes.update(result.status for result in results)
        done += len(batch)
        if done % every == 0:
            reporter.step(f"  ingested {done:,}")
    return seconds, outcomes


def check(engine: Engine, workspace_id: int) -> dict[str, Any]:
    """Members by tier, points, and the ledger mismatches (must be 0)."""
    entries = (
        select(PointsEntry.member_id, func.sum(PointsEntry.amount).label("total"))
        .where(PointsEntry.workspace_id == workspace_id)
        .group_by(PointsEntry.member_id)
        .subquery()
    )
    lots = (
        select(PointsLot.member_id, func.sum(PointsLot.remaining).label("total"))
        .where(PointsLot.workspace_id == workspace_id)
        .group_by(PointsLot.member_id)
        .subquery()
    )
    with engine.connect() as conn:
        mismatches = conn.scalar(
            select(func.count())
            .select_from(Member)
            .outerjoin(entries, entries.c.member_id == Member.id)
            .outerjoin(lots, lots.c.member_id == Member.id)
            .where(
                Member.workspace_id == workspace_id,
                (Member.points_balance != func.coalesce(entries.c.total, 0))
                | (Member.points_balance != func.coalesce(lots.c.total, 0))
                | (Member.points_balance < 0),
            )
        )
        tiers = dict(
            conn.execute(
                select(Tier.name, func.count(Member.id))
                .join(Member, Member.tier_id == Tier.id)
                .where(Member.workspace_id == workspace_id)
                .group_by(Tier.name)
            ).all()
        )
        members, points, repurchasers = conn.execute(
            select(
                func.count(Member.id),
                func.coalesce(func.sum(Member.points_balance), 0),
                func.count(Member.id).filter(Member.is_repurchaser.is_(True)),
            ).where(Member.workspace_id == workspace_id)
        ).one()
        customers = conn.scalar(select(func.count()).select_from(Customer).where(Customer.workspace_id == workspace_id))
        orders = conn.scalar(select(func.count()).select_from(Order).where(Order.workspace_id == workspace_id))
    return {
        "ledger_mismatches": int(mismatches or 0),
        "members_by_tier": {name: int(tiers.get(name, 0)) for name, *_ in TIERS},
        "members": int(members),
        "points": int(points),
        "repurchasers": int(repurchasers),
        "customers": int(customers or 0),
        "orders": int(orders or 0),
    }


def run(*, size: str, database_url: str | None, reporter: Reporter) -> dict[str, Any]:
    """Load the brand, time the raw insert and the ingestion, check the outcome."""
    orders = size_rows(size)
    pool = max(orders // POOL_SHARE, 1)
    clock = FrozenClock(NOW)
    with bench_database(database_url) as bench_db:
        engine = bench_db.engine
        workspace_id = new_workspace(engine, "bench-orders")
        reporter.step(f"writing a pool of {pool:,} customers, the catalogue and the tiers into {bench_db.label}")
        with timed() as loading:
            load(engine, workspace_id, pool, clock)
        pool_ids = _pool_ids(engine, workspace_id)
        reporter.step(f"raw insert of {orders:,} orders with their lines (baseline)")
        with peak_memory() as raw_memory, timed() as raw:
            raw_insert(engine, workspace_id, orders, pool, pool_ids)
        _clear_raw(engine, workspace_id)
        reporter.step(f"ingesting {orders:,} orders in batches of {BATCH:,}")
        with peak_memory() as ingest_memory:
            seconds, outcomes = ingest(engine, workspace_id, orders, pool, clock, reporter)
        reporter.step(f"ingested in {seconds:.1f}s; checking")
        outcome = check(engine, workspace_id)
    reporter.step("done")
    return {
        "bench": "orders",
        "size": size,
        "database": bench_db.kind,
        "results": [result_row("ingest", seconds, raw.seconds, orders)],
        "orders": orders,
        "pool_customers": pool,
        "outcomes": dict(sorted(outcomes.items())),
        "customers_created": outcome["customers"] - pool,
        "orders_stored": outcome["orders"],
        "members": outcome["members"],
        "members_by_tier": outcome["members_by_tier"],
        "repurchasers": outcome["repurchasers"],
        "points": outcome["points"],
        "ledger_mismatches": outcome["ledger_mismatches"],
        "orders_per_s": round(orders / seconds, 1) if seconds > 0 else None,
        "raw_orders_per_s": round(orders / raw.seconds, 1) if raw.seconds > 0 else None,
        "load_seconds": round(loading.seconds, 1),
        "peak_mb": {"raw_insert": raw_memory.peak_mb, "ingest": ingest_memory.peak_mb},
    }
