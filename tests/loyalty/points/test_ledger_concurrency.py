"""Many threads moving one member's points at once never overdraw, and the cache equals the ledger.

Real commits from separate threads, each with its own connection and transaction, on the shared
test database (SQLite: writers serialise on `BEGIN IMMEDIATE`; PostgreSQL: the member's row lock).
Every transaction locks the member first (`lock_member` / `ensure_member`), as the services do.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.loyalty.errors import InsufficientPoints
from siyu.loyalty.members import ensure_member, lock_member
from siyu.loyalty.points import ledger
from siyu.models import Member, PointsEntry, PointsKind, PointsLot, PointsReason
from tests.concurrency import committed_database, run_together  # noqa: F401 - fixture `database`: real commits
from tests.conftest import NOW
from tests.factories import actor_for, make_customer, make_workspace

THREADS = 12


def _customers(database: Database, clock: FrozenClock, count: int) -> tuple[int, list[int]]:
    with database.transaction() as session:
        workspace = make_workspace(session, clock=clock)
        actor = actor_for(workspace)
        ids = [make_customer(session, actor=actor, clock=clock).customer.id for _ in range(count)]
        return workspace.id, ids


def _earn(session: Session, member: Member, clock: FrozenClock, points: int, key: str, days: int | None = 30) -> None:
    ledger.earn(
        session,
        member=member,
        points=points,
        reason=PointsReason.PURCHASE,
        description="订单消费得积分",
        idempotency_key=key,
        clock=clock,
        expires_at=None if days is None else clock.now() + timedelta(days=days),
    )


def _consistent(session: Session, member_id: int) -> tuple[int, int, int]:
    """(cached balance, sum of entries, sum of lots' remaining) of one member."""
    member = session.get(Member, member_id)
    assert member is not None
    lots = session.scalar(
        select(func.coalesce(func.sum(PointsLot.remaining), 0)).where(PointsLot.member_id == member_id)
    )
    return member.points_balance, ledger.balance_from_ledger(session, member_id), int(lots or 0)


def test_concurrent_spends_never_overdraw(database: Database) -> None:
    # given a member with 1,000 points in three lots (expiring in 7 and 30 days, and never)
    clock = FrozenClock(NOW)
    workspace_id, (customer_id,) = _customers(database, clock, 1)
    with database.transaction() as session:
        member = ensure_member(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock)
        _earn(session, member, clock, 300, "soon", 7)
        _earn(session, member, clock, 300, "later", 30)
        _earn(session, member, clock, 400, "never", None)
        member_id = member.id
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def spender(thread: int) -> Callable[[], None]:
        def run() -> None:
            for attempt in range(4):
                try:
                    with database.transaction() as session:
                        member = lock_member(session, workspace_id, member_id)
                        ledger.spend(
                            session,
                            member=member,
                            points=30,
                            description="兑换礼品",
                            idempotency_key=f"spend:{thread}:{attempt}",
                            clock=clock,
                        )
                    outcome = "spent"
                except InsufficientPoints:
                    outcome = "refused"
                with lock:
                    outcomes[outcome] += 1

        return run

    # when 12 threads each try to spend 30 points four times, all at once (1,440 asked for)
    assert run_together([spender(t) for t in range(THREADS)]) == []

    # then exactly 33 spends went through (990 points), the other 15 were refused, and 10 are left
    assert outcomes == {"spent": 33, "refused": 15}
    with database.session() as session:
        assert _consistent(session, member_id) == (10, 10, 10)
        # the lots were used soonest-expiry first: the two expiring lots are empty
        left = session.execute(
            select(PointsLot.expires_at.is_(None), PointsLot.remaining)
            .where(PointsLot.member_id == member_id)
            .order_by(PointsLot.id)
        ).all()
        assert [tuple(row) for row in left] == [(False, 0), (False, 0), (True, 10)]
        # every balance the ledger ever recorded was ≥ 0, and they chain entry by entry
        afters = session.execute(
            select(PointsEntry.amount, PointsEntry.balance_after)
            .where(PointsEntry.member_id == member_id)
            .order_by(PointsEntry.id)
        ).all()
    running = 0
    for amount, balance_after in afters:
        running += amount
        assert balance_after == running >= 0


def test_concurrent_earns_spends_refunds_and_cancels_keep_the_ledger_consistent(database: Database) -> None:
    # given two members with 200 points each, from one order each
    clock = FrozenClock(NOW)
    workspace_id, customers = _customers(database, clock, 2)
    members: list[int] = []
    orders: list[int] = []
    with database.transaction() as session:
        for customer_id in customers:
            member = ensure_member(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock)
            _earn(session, member, clock, 200, f"order:{customer_id}")
            members.append(member.id)
            orders.append(
                session.scalars(
                    select(PointsEntry.id).where(PointsEntry.idempotency_key == f"order:{customer_id}")
                ).one()
            )

    def worker(thread: int) -> Callable[[], None]:
        def run() -> None:
            for step in range(6):
                pair = thread * 6 + step  # 72 pairs: each member gets 9 of each of the four movements
                index = pair % 2
                member_id, key = members[index], f"t{thread}:{step}"
                try:
                    with database.transaction() as session:
                        member = lock_member(session, workspace_id, member_id)
                        match (pair // 2) % 4:
                            case 0:
                                _earn(session, member, clock, 25, key)
                            case 1:
                                spent = ledger.spend(
                                    session,
                                    member=member,
                                    points=40,
                                    description="兑换",
                                    idempotency_key=key,
                                    clock=clock,
                                )
                                if step % 2:  # every other redemption is cancelled in the same breath
                                    ledger.restore_spend(
                                        session,
                                        member=member,
                                        entry_id=spent.entry.id,
                                        description="取消兑换",
                                        idempotency_key=f"{key}:cancel",
                                        clock=clock,
                                    )
                            case 2:
                                ledger.reverse_earn(
                                    session,
                                    member=member,
                                    entry_id=orders[index],
                                    points=10,
                                    description="部分退款",
                                    idempotency_key=key,
                                    clock=clock,
                                )
                            case _:
                                ledger.adjust(
                                    session,
                                    member=member,
                                    points=-15,
                                    description="客服更正",
                                    idempotency_key=key,
                                    clock=clock,
                                    actor="ops",
                                )
                except InsufficientPoints:
                    pass

        return run

    # when 12 threads earn, spend, cancel, refund and correct on both members at once
    assert run_together([worker(t) for t in range(THREADS)]) == []

    # then each member's cache equals the ledger and the lots, and nothing was ever negative
    with database.session() as session:
        for member_id, order_entry in zip(members, orders, strict=True):
            balance, entries, lots = _consistent(session, member_id)
            assert balance == entries == lots >= 0
            assert (
                session.scalar(select(func.min(PointsEntry.balance_after)).where(PointsEntry.member_id == member_id))
                >= 0
            )
            # 9 refunds of 10 against an order of 200: all went through, 90 undone in total
            assert ledger.reversed_total(session, order_entry) == 90
            kinds = Counter(
                session.scalars(
                    select(PointsEntry.kind).where(PointsEntry.member_id == member_id, PointsEntry.amount > 0)
                )
            )
            assert kinds[PointsKind.EARN] == 1 + 9  # the order, and 9 earns of 25


def test_concurrent_first_earns_create_one_member(database: Database) -> None:
    # given a customer who is not a member yet
    clock = FrozenClock(NOW)
    workspace_id, (customer_id,) = _customers(database, clock, 1)

    def first_purchase(thread: int) -> Callable[[], None]:
        def run() -> None:
            with database.transaction() as session:
                member = ensure_member(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock)
                _earn(session, member, clock, 10 + thread, f"order:{thread}")

        return run

    # when 12 first purchases arrive at once, each earning points
    assert run_together([first_purchase(t) for t in range(THREADS)]) == []

    # then there is one member holding all of them
    with database.session() as session:
        member_ids = session.scalars(select(Member.id).where(Member.customer_id == customer_id)).all()
        assert len(member_ids) == 1
        total = sum(10 + t for t in range(THREADS))
        assert _consistent(session, member_ids[0]) == (total, total, total)
