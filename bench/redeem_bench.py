"""`siyu bench redeem`: many clients redeeming rewards for the same members at once, against plain
balance updates.

The brand: `members` members (customers written with the ORM, points through the ledger: most hold
1,000,000 points, one in ten only 600, so they run dry during the run), a privilege reward (200
points, unlimited stock) and a physical gift (500 points, stock `gift_stock`, shipped to an
address). `clients` threads, each with its own connection, redeem through
`siyu.loyalty.rewards.service.redeem` for `seconds`: every attempt picks a random member (so clients
collide on the same member rows and on the gift's stock row), a reward (one in four the gift) and a
fresh idempotency key, in its own transaction. Refusals (not enough points, out of stock) are
counted; any other error is an `error`.

Figures (same run, same database):
- `redeem` → redemptions/s over the run.
- `plain_update` (the baseline): as many statements as there were redemptions,
  `UPDATE members SET points_balance = points_balance - 200 WHERE id = ?`, one per transaction, from
  the same number of threads with their own connections, on the same number of members of a second
  workspace (so the checked ledger is not touched).
Counters (all must be 0): `overdrafts` (a member or an entry's running balance below 0),
`ledger_mismatches` (cached balance ≠ sum of entries ≠ sum of lots), `stock_below_zero`,
`stock_mismatches` (gift stock + redemptions ≠ the stock it started with), `errors`.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from bench.harness import Reporter, bench_database, new_workspace, result_row, size_rows
from siyu.db import make_engine
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import DomainError
from siyu.loyalty.errors import InsufficientPoints, OutOfStock
from siyu.loyalty.members import ensure_member
from siyu.loyalty.points import ledger
from siyu.loyalty.rewards.service import redeem
from siyu.models import (
    Customer,
    Member,
    PointsEntry,
    PointsLot,
    PointsReason,
    Redemption,
    RedemptionStatus,
    Reward,
    RewardKind,
)

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
PRIVILEGE_PRICE, GIFT_PRICE = 200, 500
RICH, POOR = 1_000_000, 600
ADDRESS = {"name": "王芳", "phone": "13800138000", "address": "上海市静安区南京西路 1000 号"}


@dataclass(frozen=True)
class Plan:
    clients: int
    seconds: float
    members: int
    gift_stock: int


PLANS = {
    "tiny": Plan(clients=8, seconds=3.0, members=40, gift_stock=10),
    "small": Plan(clients=50, seconds=10.0, members=200, gift_stock=100),
    "full": Plan(clients=50, seconds=30.0, members=1_000, gift_stock=500),
}


@dataclass
class Brand:
    workspace_id: int
    customer_ids: list[int]
    member_ids: list[int]
    privilege_id: int
    gift_id: int


def load(engine: Engine, workspace_id: int, plan: Plan, clock: FrozenClock) -> Brand:
    """Members with points (through the ledger) and the two rewards."""
    with Session(engine) as session, session.begin():
        now = clock.now()
        customers = [
            Customer(workspace_id=workspace_id, name=f"会员{i:05d}", attributes={}, created_at=now, updated_at=now)
            for i in range(plan.members)
        ]
        session.add_all(customers)
        session.flush()
        member_ids = []
        for i, customer in enumerate(customers):
            member = ensure_member(session, workspace_id=workspace_id, customer_id=customer.id, clock=clock)
            ledger.earn(
                session,
                member=member,
                points=POOR if i % 10 == 9 else RICH,
                reason=PointsReason.PURCHASE,
                description="开卡积分",
                idempotency_key=f"bench:{customer.id}",
                clock=clock,
                expires_at=None,
            )
            member_ids.append(member.id)
        rewards = [
            Reward(
                workspace_id=workspace_id,
                name="专属客服",
                kind=RewardKind.PRIVILEGE,
                points_price=PRIVILEGE_PRICE,
                stock=None,
                visible_tier_ids=[],
                created_at=now,
                updated_at=now,
            ),
            Reward(
                workspace_id=workspace_id,
                name="限量帆布袋",
                kind=RewardKind.GIFT,
                points_price=GIFT_PRICE,
                stock=plan.gift_stock,
                visible_tier_ids=[],
                created_at=now,
                updated_at=now,
            ),
        ]
        session.add_all(rewards)
        session.flush()
        return Brand(workspace_id, [c.id for c in customers], member_ids, rewards[0].id, rewards[1].id)


def _run_clients(clients: int, work: Any) -> None:
    barrier = threading.Barrier(clients)
    threads = [threading.Thread(target=work, args=(i, barrier)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def hammer(engine: Engine, brand: Brand, plan: Plan, clock: FrozenClock) -> tuple[float, Counter[str], list[str]]:
    """`plan.clients` threads redeeming for `plan.seconds`; wall seconds, outcomes, unexpected errors."""
    outcomes: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    started: list[float] = []

    def work(index: int, barrier: threading.Barrier) -> None:
        rng = random.Random(index)
        mine: Counter[str] = Counter()
        attempt = 0
        barrier.wait()
        deadline = time.perf_counter() + plan.seconds
        with lock:
            started.append(time.perf_counter())
        while time.perf_counter() < deadline:
            attempt += 1
            customer_id = rng.choice(brand.customer_ids)
            gift = rng.randrange(4) == 0
            try:
                with Session(engine) as session, session.begin():
                    redeem(
                        session,
                        workspace_id=brand.workspace_id,
                        customer_id=customer_id,
                        reward_id=brand.gift_id if gift else brand.privilege_id,
                        idempotency_key=f"c{index}:{attempt}",
                        address=ADDRESS if gift else None,
                        clock=clock,
                    )
                mine["redeemed"] += 1
            except InsufficientPoints:
                mine["insufficient_points"] += 1
            except OutOfStock:
                mine["out_of_stock"] += 1
            except (DomainError, Exception) as exc:  # counted: the bench must report them, not die
                mine["error"] += 1
                with lock:
                    errors.append(repr(exc)[:300])
        with lock:
            outcomes.update(mine)

    begin = time.perf_counter()
    _run_clients(plan.clients, work)
    return time.perf_counter() - min(started, default=begin), outcomes, errors


def baseline(engine: Engine, workspace_id: int, plan: Plan, statements: int) -> float:
    """`statements` plain balance updates on a second set of members, from as many threads."""
    with Session(engine) as session, session.begin():
        now = NOW
        customers = [
            Customer(workspace_id=workspace_id, name=f"对照{i:05d}", attributes={}, created_at=now, updated_at=now)
            for i in range(plan.members)
        ]
        session.add_all(customers)
        session.flush()
        members = [
            Member(
                workspace_id=workspace_id,
                customer_id=c.id,
                points_balance=10**12,
                points_debt=0,
                points_earned_total=0,
                spend_fen=0,
                orders_count=0,
                is_repurchaser=False,
                checkin_streak=0,
                created_at=now,
                updated_at=now,
            )
            for c in customers
        ]
        session.add_all(members)
        session.flush()
        member_ids = [m.id for m in members]
    share = [statements // plan.clients + (1 if i < statements % plan.clients else 0) for i in range(plan.clients)]
    started: list[float] = []
    lock = threading.Lock()

    def work(index: int, barrier: threading.Barrier) -> None:
        rng = random.Random(1_000 + index)
        with engine.connect() as conn:
            barrier.wait()
            with lock:
                started.append(time.perf_counter())
            for _ in range(share[index]):
                with conn.begin():
                    conn.execute(
                        update(Member)
                        .where(Member.id == rng.choice(member_ids))
                        .values(points_balance=Member.points_balance - PRIVILEGE_PRICE)
                    )

    _run_clients(plan.clients, work)
    return time.perf_counter() - min(started)


def check(engine: Engine, brand: Brand, plan: Plan) -> dict[str, int]:
    """The counters that must be 0, and what the run left."""
    ws = brand.workspace_id
    entries = (
        select(PointsEntry.member_id, func.sum(PointsEntry.amount).label("total"))
        .where(PointsEntry.workspace_id == ws)
        .group_by(PointsEntry.member_id)
        .subquery()
    )
    lots = (
        select(PointsLot.member_id, func.sum(PointsLot.remaining).label("total"))
        .where(PointsLot.workspace_id == ws)
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
                Member.workspace_id == ws,
                (Member.points_balance != func.coalesce(entries.c.total, 0))
                | (Member.points_balance != func.coalesce(lots.c.total, 0)),
            )
        )
        negative_members = conn.scalar(
            select(func.count()).select_from(Member).where(Member.workspace_id == ws, Member.points_balance < 0)
        )
        negative_entries = conn.scalar(
            select(func.count())
            .select_from(PointsEntry)
            .where(PointsEntry.workspace_id == ws, PointsEntry.balance_after < 0)
        )
        stock = conn.scalar(select(Reward.stock).where(Reward.id == brand.gift_id))
        by_reward = dict(
            conn.execute(
                select(Redemption.reward_id, func.count())
                .where(Redemption.workspace_id == ws, Redemption.status != RedemptionStatus.CANCELLED)
                .group_by(Redemption.reward_id)
            ).all()
        )
        spent = conn.scalar(select(func.coalesce(func.sum(Redemption.points), 0)).where(Redemption.workspace_id == ws))
        spent_in_ledger = conn.scalar(
            select(func.coalesce(-func.sum(PointsEntry.amount), 0)).where(
                PointsEntry.workspace_id == ws, PointsEntry.source_ref.like("redemption:%")
            )
        )
    gifts = int(by_reward.get(brand.gift_id, 0))
    return {
        "overdrafts": int(negative_members or 0) + int(negative_entries or 0),
        "ledger_mismatches": int(mismatches or 0) + int(spent != spent_in_ledger),
        "stock_below_zero": int(stock is not None and stock < 0),
        "stock_mismatches": int(stock is None or stock + gifts != plan.gift_stock),
        "gift_stock_left": int(stock or 0),
        "redemptions_stored": sum(int(n) for n in by_reward.values()),
        "gifts": gifts,
        "points_spent": int(spent or 0),
    }


def run(*, size: str, database_url: str | None, reporter: Reporter) -> dict[str, Any]:
    """Load members and rewards, hammer `redeem` from many clients, time the baseline, check."""
    size_rows(size)
    plan = PLANS[size]
    clock = FrozenClock(NOW)
    with bench_database(database_url) as bench_db:
        engine = bench_db.engine
        workspace_id = new_workspace(engine, "bench-redeem")
        reporter.step(f"{plan.members:,} members with points and two rewards in {bench_db.label}")
        brand = load(engine, workspace_id, plan, clock)
        reporter.step(f"{plan.clients} clients redeeming for {plan.seconds:g}s")
        # One connection per client: the default pool (10 + 20 overflow) is smaller than 50 clients.
        clients_engine = (
            make_engine(engine.url.render_as_string(hide_password=False), pool_size=plan.clients)
            if engine.dialect.name == "postgresql"
            else engine
        )
        try:
            seconds, outcomes, errors = hammer(clients_engine, brand, plan, clock)
            redeemed = outcomes.get("redeemed", 0)
            reporter.step(f"{redeemed:,} redemptions; baseline: {redeemed:,} plain balance updates")
            baseline_seconds = baseline(clients_engine, new_workspace(engine, "bench-redeem-raw"), plan, redeemed)
        finally:
            if clients_engine is not engine:
                clients_engine.dispose()
        reporter.step("checking")
        outcome = check(engine, brand, plan)
    reporter.step("done")
    return {
        "bench": "redeem",
        "size": size,
        "database": bench_db.kind,
        "results": [result_row("redeem", seconds, baseline_seconds, redeemed)],
        "clients": plan.clients,
        "seconds": round(seconds, 2),
        "members": plan.members,
        "attempts": sum(outcomes.values()),
        "redemptions": redeemed,
        "refused": {
            "insufficient_points": outcomes.get("insufficient_points", 0),
            "out_of_stock": outcomes.get("out_of_stock", 0),
        },
        "errors": outcomes.get("error", 0),
        "error_samples": sorted(set(errors))[:5],
        "redemptions_per_s": round(redeemed / seconds, 1) if seconds > 0 else None,
        "baseline_updates_per_s": round(redeemed / baseline_seconds, 1) if baseline_seconds > 0 else None,
        **outcome,
    }
