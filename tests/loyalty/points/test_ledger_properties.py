"""Property tests of `siyu.loyalty.points.ledger` against a reference model.

Random sequences of earn / spend / refund (`reverse_earn`) / cancel (`restore_spend`) / adjust /
expire, with the clock moving between them, run against the real ledger on the test database and
against a small in-memory model that keeps lots and debt by the rules of the ledger's docstring.
After every step:
- `points_balance` = sum of entries = sum of lots' `remaining` = the model's balance ≥ 0;
- every lot holds exactly what the model says (so spending, expiry and refunds took from the lots
  that expire soonest, never-expiring last, ties by lot id);
- the debt and `points_earned_total` are the model's; every entry's `balance_after` continues the
  previous one; every entry that did not create a lot moved exactly its amount through allocations;
- a refund undoes exactly its points (taken back, plus shortfall, plus what had expired from its own
  lot), a cancel gives back exactly what its spend took, to the same lots;
- a retry with the same key returns the first entry and changes nothing; the same key with other
  content is refused and changes nothing;
- refused steps (not enough points, too much to reverse) leave nothing behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.clock import FrozenClock
from siyu.kit.errors import DomainError
from siyu.loyalty.errors import IdempotencyKeyReused, InsufficientPoints, InvalidPoints
from siyu.loyalty.members import ensure_member, lock_member
from siyu.loyalty.points import ledger
from siyu.loyalty.points.ledger import PROGRAM_EXPIRY, Posting
from siyu.loyalty.program import get_program
from siyu.models import ExpiryPolicy, Member, PointsAllocation, PointsEntry, PointsKind, PointsLot, PointsReason
from tests.conftest import NOW
from tests.factories import actor_for, make_customer, make_workspace

PROGRAM_DAYS = 30
"""Points earned with the program's default expiry last this many days (policy `days`)."""

PROPERTY_SETTINGS = settings(
    # SIYU_LEDGER_EXAMPLES=1000 for a longer hunt; the default keeps the file under half a minute.
    max_examples=int(os.environ.get("SIYU_LEDGER_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- the reference model ------------------------------------------------------------------------


@dataclass
class ModelLot:
    id: int
    expires_at: datetime | None
    remaining: int


@dataclass
class Model:
    """What the ledger must hold, computed from the rules alone."""

    balance: int = 0
    debt: int = 0
    earned_total: int = 0
    lots: dict[int, ModelLot] = field(default_factory=dict)
    reversed: dict[int, int] = field(default_factory=dict)
    """Earn entry id → points its reversals undid so far."""
    taken: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    """Spend entry id → (lot id, points) it took, in order."""
    restored: set[int] = field(default_factory=set)
    expired: dict[int, int] = field(default_factory=dict)
    """Lot id → points expiry took from it (again after a restore, too)."""
    forgiven: dict[int, int] = field(default_factory=dict)
    """Earn entry id → expired points of its own lot its reversals counted as already taken back."""

    def due(self, now: datetime) -> list[tuple[int, int]]:
        """(lot id, points) that expire at `now`, in the order the ledger expires them."""
        lots = [lot for lot in self.lots.values() if lot.remaining > 0 and lot.expires_at and lot.expires_at <= now]
        return [(lot.id, lot.remaining) for lot in sorted(lots, key=lambda lot: (lot.expires_at, lot.id))]

    def expire_due(self, now: datetime) -> None:
        for lot_id, points in self.due(now):
            self.balance -= points
            self.lots[lot_id].remaining = 0
            self.expired[lot_id] = self.expired.get(lot_id, 0) + points

    def spendable(self, now: datetime) -> list[ModelLot]:
        lots = [
            lot for lot in self.lots.values() if lot.remaining > 0 and (lot.expires_at is None or lot.expires_at > now)
        ]
        return sorted(lots, key=lambda lot: (lot.expires_at is None, lot.expires_at or now, lot.id))

    @staticmethod
    def take(lots: list[ModelLot], points: int) -> list[tuple[int, int]]:
        parts: list[tuple[int, int]] = []
        for lot in lots:
            part = min(lot.remaining, points - sum(p for _, p in parts))
            if part > 0:
                lot.remaining -= part
                parts.append((lot.id, part))
        return parts

    def earn(self, *, lot_id: int, points: int, expires_at: datetime | None, counts: bool, now: datetime) -> None:
        self.balance += points
        lot = self.lots[lot_id] = ModelLot(lot_id, expires_at, points)
        if counts:
            self.earned_total += points
        if self.debt > 0 and (expires_at is None or expires_at > now):
            event("earn settles debt")
            settle = min(self.debt, points)
            self.debt -= settle
            lot.remaining -= settle
            self.balance -= settle

    def spend(self, *, entry_id: int, points: int, now: datetime) -> None:
        self.expire_due(now)
        assert self.balance >= points
        self.taken[entry_id] = self.take(self.spendable(now), points)
        self.balance -= points

    def reverse(self, *, earn_entry_id: int, own_lot_id: int, points: int, counts: bool, now: datetime) -> None:
        self.expire_due(now)
        own = self.lots[own_lot_id]
        # points that expired from the order's own lot were never used: they count as taken back
        forgiven = min(points, max(self.expired.get(own_lot_id, 0) - self.forgiven.get(earn_entry_id, 0), 0))
        if forgiven:
            event("refund of expired points")
        self.forgiven[earn_entry_id] = self.forgiven.get(earn_entry_id, 0) + forgiven
        lots = ([own] if own.remaining > 0 else []) + [lot for lot in self.spendable(now) if lot.id != own_lot_id]
        taken = sum(part for _, part in self.take(lots, min(points - forgiven, self.balance)))
        self.balance -= taken
        self.debt += points - forgiven - taken
        self.reversed[earn_entry_id] = self.reversed.get(earn_entry_id, 0) + points
        if counts:
            self.earned_total -= points

    def restore(self, *, spend_entry_id: int, now: datetime) -> None:
        for lot_id, part in self.taken[spend_entry_id]:
            self.lots[lot_id].remaining += part
            self.balance += part
        self.restored.add(spend_entry_id)
        self.expire_due(now)


# --- the steps ------------------------------------------------------------------------------------

expiries = st.one_of(
    st.just(("program",)),
    st.just(("never",)),
    st.tuples(st.just("days"), st.sampled_from([1, 2, 7, 30, 45])),
)
earn_step = st.tuples(st.just("earn"), st.integers(1, 300), expiries)
steps = st.one_of(
    earn_step,
    earn_step,  # earns twice as likely: enough points for spends, refunds and cancels to bite
    st.tuples(st.just("spend"), st.integers(1, 250)),
    st.tuples(st.just("refund"), st.integers(0, 50), st.integers(1, 300)),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("adjust"), st.integers(1, 300).flatmap(lambda n: st.sampled_from([n, -n]))),
    st.tuples(st.just("advance"), st.sampled_from([1, 12, 24, 24 * 7, 24 * 29, 24 * 31])),
    st.tuples(st.just("expire")),
    st.tuples(st.just("retry"), st.integers(0, 50)),
    st.tuples(st.just("reuse"), st.integers(0, 50)),
)


@dataclass
class Done:
    """A step the ledger accepted, kept so it can be retried or have its key reused."""

    kind: str
    entry_id: int
    call: Callable[[], Posting]
    reuse: Callable[[], Posting] | None


class Run:
    """One random sequence against the ledger and the model, on one member."""

    def __init__(self, db: Session, clock: FrozenClock, member: Member) -> None:
        self.db, self.clock, self.model = db, clock, Model()
        self.workspace_id, self.member_id = member.workspace_id, member.id
        self.done: list[Done] = []
        self.earns: list[tuple[int, int, bool]] = []  # (entry id, lot id, counts toward earned total)
        self.spends: list[int] = []
        self.keys = 0

    def member(self) -> Member:
        return lock_member(self.db, self.workspace_id, self.member_id)

    def key(self) -> str:
        self.keys += 1
        return f"step:{self.keys}"

    def attempt(self, call: Callable[[], Posting]) -> Posting | DomainError:
        """Run one ledger call in a savepoint, as a request would in its transaction."""
        savepoint = self.db.begin_nested()
        try:
            posting = call()
        except DomainError as exc:
            savepoint.rollback()
            return exc
        savepoint.commit()
        return posting

    def lot_of(self, entry_id: int) -> PointsLot:
        return self.db.scalars(select(PointsLot).where(PointsLot.entry_id == entry_id)).one()

    # each step: call the ledger, then apply the same rule to the model

    def earn(self, points: int, expiry: tuple[Any, ...]) -> None:
        now = self.clock.now()
        match expiry:
            case ("program",):
                expires_at: Any = PROGRAM_EXPIRY
            case ("never",):
                expires_at = None
            case ("days", days):
                expires_at = now + timedelta(days=days)
        key = self.key()

        def call(points: int = points) -> Posting:
            return ledger.earn(
                self.db,
                member=self.member(),
                points=points,
                reason=PointsReason.PURCHASE,
                description="订单消费得积分",
                idempotency_key=key,
                clock=self.clock,
                expires_at=expires_at,
            )

        posting = self.attempt(call)
        assert isinstance(posting, Posting) and not posting.replayed
        lot = self.lot_of(posting.entry.id)
        expected = now + timedelta(days=PROGRAM_DAYS) if expiry[0] == "program" else expires_at
        assert lot.expires_at == expected
        self.model.earn(lot_id=lot.id, points=points, expires_at=expected, counts=True, now=now)
        self.earns.append((posting.entry.id, lot.id, True))
        self.done.append(Done("earn", posting.entry.id, call, lambda: call(points + 1)))

    def spend(self, points: int) -> None:
        key = self.key()

        def call(points: int = points) -> Posting:
            return ledger.spend(
                self.db,
                member=self.member(),
                points=points,
                description="兑换礼品",
                idempotency_key=key,
                clock=self.clock,
            )

        self._spend_like(call, points, lambda: call(points + 1), "spend")

    def _spend_like(self, call: Callable[[], Posting], points: int, reuse: Callable[[], Posting], kind: str) -> None:
        outcome = self.attempt(call)
        available = self.model.balance - sum(p for _, p in self.model.due(self.clock.now()))
        if available < points:
            event("spend refused: not enough points")
            assert isinstance(outcome, InsufficientPoints), outcome
            assert outcome.details == {"field": "points", "balance": available, "required": points}
            return
        assert isinstance(outcome, Posting) and not outcome.replayed, outcome
        assert outcome.entry.amount == -points
        self.model.spend(entry_id=outcome.entry.id, points=points, now=self.clock.now())
        self.spends.append(outcome.entry.id)
        self.done.append(Done(kind, outcome.entry.id, call, reuse))

    def refund(self, pick: int, points: int) -> None:
        if not self.earns:
            return
        entry_id, lot_id, counts = self.earns[pick % len(self.earns)]
        earned = self.db.get(PointsEntry, entry_id)
        assert earned is not None
        key = self.key()

        def call(points: int = points) -> Posting:
            return ledger.reverse_earn(
                self.db,
                member=self.member(),
                entry_id=entry_id,
                points=points,
                description="退款扣回积分",
                idempotency_key=key,
                clock=self.clock,
            )

        left = earned.amount - self.model.reversed.get(entry_id, 0)
        assert ledger.reversed_total(self.db, entry_id) == self.model.reversed.get(entry_id, 0)
        outcome = self.attempt(call)
        if points > left:
            assert isinstance(outcome, InvalidPoints), outcome
            assert outcome.details == {"field": "points", "reversible": left}
            return
        assert isinstance(outcome, Posting) and not outcome.replayed, outcome
        # the reversal undid exactly `points`: what it took back plus what it could not
        assert outcome.entry.shortfall + outcome.entry.forgiven - outcome.entry.amount == points
        assert outcome.entry.reverses_entry_id == entry_id
        event("refund with shortfall" if outcome.entry.shortfall else "refund taken back in full")
        self.model.reverse(
            earn_entry_id=entry_id, own_lot_id=lot_id, points=points, counts=counts, now=self.clock.now()
        )
        self.done.append(Done("refund", outcome.entry.id, call, lambda: call(points + 1)))

    def cancel(self, pick: int) -> None:
        if not self.spends:
            return
        spend_id = self.spends[pick % len(self.spends)]
        key = self.key()

        def call() -> Posting:
            return ledger.restore_spend(
                self.db,
                member=self.member(),
                entry_id=spend_id,
                description="取消兑换退回积分",
                idempotency_key=key,
                clock=self.clock,
            )

        outcome = self.attempt(call)
        assert isinstance(outcome, Posting), outcome
        if spend_id in self.model.restored:
            # a second cancel of the same spend, under another key, finds the first
            assert outcome.replayed and outcome.entry.reverses_entry_id == spend_id
            return
        assert not outcome.replayed
        spent = self.db.get(PointsEntry, spend_id)
        assert spent is not None and outcome.entry.amount == -spent.amount
        now = self.clock.now()
        lapsed = any(
            (at := self.model.lots[lot_id].expires_at) and at <= now for lot_id, _ in self.model.taken[spend_id]
        )
        event("cancel, some points expire again at once" if lapsed else "cancel, all points back")
        self.model.restore(spend_entry_id=spend_id, now=now)
        self.done.append(Done("cancel", outcome.entry.id, call, None))

    def adjust(self, points: int) -> None:
        key = self.key()

        def call(points: int = points) -> Posting:
            return ledger.adjust(
                self.db,
                member=self.member(),
                points=points,
                description="客服补偿",
                idempotency_key=key,
                clock=self.clock,
                actor="operator@example.com",
            )

        other = points + 1 if points != -1 else -2
        if points < 0:
            self._spend_like(call, -points, lambda: call(other), "adjust")
            return
        now = self.clock.now()
        posting = self.attempt(call)
        assert isinstance(posting, Posting) and not posting.replayed
        assert posting.entry.kind == PointsKind.ADJUST
        lot = self.lot_of(posting.entry.id)
        self.model.earn(lot_id=lot.id, points=points, expires_at=lot.expires_at, counts=False, now=now)
        assert lot.expires_at == now + timedelta(days=PROGRAM_DAYS)
        self.earns.append((posting.entry.id, lot.id, False))
        self.done.append(Done("adjust", posting.entry.id, call, lambda: call(other)))

    def advance(self, hours: int) -> None:
        self.clock.advance(timedelta(hours=hours))

    def expire(self) -> None:
        due = self.model.due(self.clock.now())
        event(f"expire: {'some' if due else 'none'} due")
        entries = ledger.expire_due(self.db, member=self.member(), clock=self.clock)
        # one entry per lot that still held points, for exactly what it held
        assert [(entry.source_ref, -entry.amount) for entry in entries] == [(f"lot:{i}", p) for i, p in due]
        self.model.expire_due(self.clock.now())

    def retry(self, pick: int) -> None:
        if not self.done:
            return
        step = self.done[pick % len(self.done)]
        outcome = self.attempt(step.call)
        assert isinstance(outcome, Posting), outcome
        assert outcome.replayed and outcome.entry.id == step.entry_id
        event(f"retry of {step.kind}")

    def reuse(self, pick: int) -> None:
        reusable = [step for step in self.done if step.reuse is not None]
        if not reusable:
            return
        step = reusable[pick % len(reusable)]
        assert step.reuse is not None
        outcome = self.attempt(step.reuse)
        assert isinstance(outcome, IdempotencyKeyReused), outcome
        assert outcome.details["field"] == "idempotency_key"

    # the invariants

    def check(self) -> None:
        db, model = self.db, self.model
        member = self.member()
        lots = {lot.id: lot for lot in db.scalars(select(PointsLot).where(PointsLot.member_id == member.id))}
        assert member.points_balance == model.balance >= 0
        assert ledger.balance_from_ledger(db, member.id) == model.balance
        assert sum(lot.remaining for lot in lots.values()) == model.balance
        assert {i: lot.remaining for i, lot in lots.items()} == {i: lot.remaining for i, lot in model.lots.items()}
        assert all(lot.remaining >= 0 for lot in lots.values())
        assert (member.points_debt, member.points_earned_total) == (model.debt, model.earned_total)
        entries = db.scalars(
            select(PointsEntry).where(PointsEntry.member_id == member.id).order_by(PointsEntry.id)
        ).all()
        running = 0
        for entry in entries:
            running += entry.amount
            assert entry.balance_after == running, entry.id
        moved = dict(
            db.execute(
                select(PointsAllocation.entry_id, func.sum(PointsAllocation.amount))
                .join(PointsEntry, PointsEntry.id == PointsAllocation.entry_id)
                .where(PointsEntry.member_id == member.id)
                .group_by(PointsAllocation.entry_id)
            ).all()
        )
        with_lot = {lot.entry_id for lot in lots.values()}
        for entry in entries:
            if entry.id in with_lot:
                assert entry.id not in moved
            else:
                assert int(moved.get(entry.id, 0)) == entry.amount, entry.id
        per_lot = dict(
            db.execute(
                select(PointsAllocation.lot_id, func.sum(PointsAllocation.amount))
                .where(PointsAllocation.lot_id.in_(list(lots)))
                .group_by(PointsAllocation.lot_id)
            ).all()
        )
        for lot in lots.values():
            assert lot.amount + int(per_lot.get(lot.id, 0)) == lot.remaining, lot.id


def _member(db: Session, clock: FrozenClock) -> Member:
    workspace = make_workspace(db, clock=clock)
    customer = make_customer(db, actor=actor_for(workspace), clock=clock).customer
    program = get_program(db, workspace.id, clock=clock)
    program.expiry_policy, program.expiry_n = ExpiryPolicy.DAYS, PROGRAM_DAYS
    return ensure_member(db, workspace_id=workspace.id, customer_id=customer.id, clock=clock)


@PROPERTY_SETTINGS
@given(sequence=st.lists(steps, min_size=3, max_size=40))
def test_any_sequence_keeps_the_ledger_consistent_with_the_model(db: Session, sequence: list[tuple[Any, ...]]) -> None:
    savepoint = db.begin_nested()
    try:
        # given a member of a program whose points last 30 days, at a fixed instant
        clock = FrozenClock(NOW)
        run = Run(db, clock, _member(db, clock))
        # when any sequence of movements runs, with the clock moving between them,
        # then after every step the ledger agrees with the model and with itself
        for step in sequence:
            note(f"{clock.now().isoformat()} {step}")
            getattr(run, step[0])(*step[1:])
            run.check()
    finally:
        savepoint.rollback()
        # SQLite hands the rolled-back ids out again: start the next example with an empty identity map
        db.expunge_all()


# --- the same rules, one example each --------------------------------------------------------------


def _earn(db: Session, member: Member, clock: FrozenClock, points: int, key: str, days: int | None) -> Posting:
    return ledger.earn(
        db,
        member=member,
        points=points,
        reason=PointsReason.PURCHASE,
        description="订单消费得积分",
        idempotency_key=key,
        clock=clock,
        expires_at=None if days is None else clock.now() + timedelta(days=days),
    )


def _remaining(db: Session, *postings: Posting) -> list[int]:
    return [db.scalars(select(PointsLot.remaining).where(PointsLot.entry_id == p.entry.id)).one() for p in postings]


def test_spending_takes_from_the_soonest_expiring_lot_first(db: Session, clock: FrozenClock) -> None:
    # given lots of 100 never expiring, 100 in 30 days and 100 in 7 days, earned in that order
    member = _member(db, clock)
    never = _earn(db, member, clock, 100, "never", None)
    later = _earn(db, member, clock, 100, "later", 30)
    soon = _earn(db, member, clock, 100, "soon", 7)
    # when 150 points are spent
    ledger.spend(db, member=member, points=150, description="兑换", idempotency_key="s", clock=clock)
    # then the 7-day lot is emptied, the 30-day lot gives the rest and the never-expiring one is untouched
    assert _remaining(db, never, later, soon) == [100, 50, 0]
    assert member.points_balance == ledger.balance_from_ledger(db, member.id) == 150


def test_a_refund_of_spent_points_becomes_debt_that_the_next_earn_settles(db: Session, clock: FrozenClock) -> None:
    # given 100 points earned and 80 of them spent
    member = _member(db, clock)
    first = _earn(db, member, clock, 100, "order:1", 30)
    ledger.spend(db, member=member, points=80, description="兑换", idempotency_key="s", clock=clock)
    # when the order is refunded in full
    reversal = ledger.reverse_earn(
        db, member=member, entry_id=first.entry.id, points=100, description="退款", idempotency_key="r", clock=clock
    )
    # then the 20 left are taken back and the 80 already spent become debt
    assert (reversal.entry.amount, reversal.entry.shortfall) == (-20, 80)
    assert (member.points_balance, member.points_debt) == (0, 80)
    # when the member earns 50, then 30 more
    second = _earn(db, member, clock, 50, "order:2", 30)
    third = _earn(db, member, clock, 30, "order:3", 30)
    # then the debt is settled from them (a separate entry each) and nothing is left over
    settlements = db.scalars(
        select(PointsEntry.amount).where(
            PointsEntry.idempotency_key.in_([f"settle:{second.entry.id}", f"settle:{third.entry.id}"])
        )
    ).all()
    assert sorted(settlements) == [-50, -30]
    assert (member.points_balance, member.points_debt) == (0, 0)
    assert _remaining(db, second, third) == [0, 0]
    assert ledger.balance_from_ledger(db, member.id) == 0


def test_a_cancel_gives_back_to_the_same_lots_and_expired_ones_expire_again(db: Session, clock: FrozenClock) -> None:
    # given 60 points expiring in 1 day and 100 in 30 days, and a spend of 100
    member = _member(db, clock)
    soon = _earn(db, member, clock, 60, "soon", 1)
    later = _earn(db, member, clock, 100, "later", 30)
    spent = ledger.spend(db, member=member, points=100, description="兑换", idempotency_key="s", clock=clock)
    assert _remaining(db, soon, later) == [0, 60]
    # when two days later the redemption is cancelled
    clock.advance(timedelta(days=2))
    ledger.restore_spend(
        db, member=member, entry_id=spent.entry.id, description="取消兑换", idempotency_key="c", clock=clock
    )
    # then the 40 go back to the 30-day lot, and the 60 of the expired lot go back and expire at once
    assert _remaining(db, soon, later) == [0, 100]
    assert member.points_balance == ledger.balance_from_ledger(db, member.id) == 100
    expired = db.scalars(
        select(PointsEntry.amount).where(PointsEntry.member_id == member.id, PointsEntry.kind == PointsKind.EXPIRE)
    ).all()
    assert expired == [-60]


@pytest.mark.parametrize("points", [0, -5, True, 10**12 + 1])
def test_invalid_amounts_are_refused_and_nothing_is_written(db: Session, clock: FrozenClock, points: Any) -> None:
    # given a member with 10 points
    member = _member(db, clock)
    _earn(db, member, clock, 10, "first", None)
    # when an earn or a spend names an impossible amount
    for call in (ledger.earn, ledger.spend):
        kwargs: dict[str, Any] = {"reason": PointsReason.PURCHASE} if call is ledger.earn else {}
        with pytest.raises(InvalidPoints) as refused:
            call(db, member=member, points=points, description="x", idempotency_key="bad", clock=clock, **kwargs)
        # then the error names the field and the ledger is unchanged
        assert refused.value.details == {"field": "points"}
    assert db.scalar(select(func.count()).where(PointsEntry.member_id == member.id)) == 1
    assert member.points_balance == 10


# --- found by the property tests; reported to the lead (ledger.py is the lead's) ------------------


def test_a_refund_reversal_cannot_be_restored_as_if_it_were_a_spend(db: Session, clock: FrozenClock) -> None:
    # given an order's 100 points, refunded in full
    member = _member(db, clock)
    order = _earn(db, member, clock, 100, "order:1", 30)
    reversal = ledger.reverse_earn(
        db, member=member, entry_id=order.entry.id, points=100, description="退款", idempotency_key="r", clock=clock
    )
    # when the reversal is passed to restore_spend (a cancel of a redemption)
    with pytest.raises(InvalidPoints):
        ledger.restore_spend(
            db, member=member, entry_id=reversal.entry.id, description="取消", idempotency_key="c", clock=clock
        )
    # then the refunded points stay gone
    assert member.points_balance == 0


def test_the_settlement_of_a_debt_fits_the_key_column(db: Session, clock: FrozenClock) -> None:
    # given a member in debt: 100 earned, spent, then refunded
    member = _member(db, clock)
    order = _earn(db, member, clock, 100, "order:1", 30)
    ledger.spend(db, member=member, points=100, description="兑换", idempotency_key="s", clock=clock)
    ledger.reverse_earn(
        db, member=member, entry_id=order.entry.id, points=100, description="退款", idempotency_key="r", clock=clock
    )
    # when an earn comes with the longest key the ledger accepts (200 characters; PostgreSQL
    # refuses the 207-character settlement key with a DataError, SQLite stores it)
    _earn(db, member, clock, 50, "k" * 200, 30)
    # then every key written fits the column (String(200))
    keys = db.scalars(select(PointsEntry.idempotency_key).where(PointsEntry.member_id == member.id)).all()
    assert max(len(key) for key in keys) <= 200
