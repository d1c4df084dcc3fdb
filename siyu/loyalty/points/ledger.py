"""The points ledger: every movement is one append-only `PointsEntry`, and lots say which points expire when.

Invariants, kept by every function here under the member's row lock (`members.lock_member`):
- `member.points_balance` = sum of the member's entries = sum of their lots' `remaining` ≥ 0;
- spending and expiry take from lots soonest-expiry first (never-expiring lots last);
- a retry with the same idempotency key returns the first entry and changes nothing; the same key
  with different content is refused (`IdempotencyKeyReused`).

Callers pass a member returned by `lock_member` / `ensure_member` in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, func, insert, or_, select
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.loyalty.errors import IdempotencyKeyReused, InsufficientPoints, InvalidPoints
from siyu.loyalty.program import brand_zone, get_program, lot_expiry
from siyu.models import Member, PointsAllocation, PointsEntry, PointsKind, PointsLot, PointsReason

MAX_POINTS = 10**12
"""No single movement is larger: it is a typo, not a purchase."""


class _Default:
    pass


PROGRAM_EXPIRY = _Default()
"""`earn(expires_at=PROGRAM_EXPIRY)`: expire per the program's policy (the default)."""


@dataclass(frozen=True)
class Posting:
    """What a ledger call did: the entry it wrote, or the one a retry found (`replayed`)."""

    entry: PointsEntry
    replayed: bool = False


def _check_points(points: int, field: str = "points") -> None:
    if isinstance(points, bool) or not isinstance(points, int) or points <= 0 or points > MAX_POINTS:
        raise InvalidPoints(f"{field} must be a whole number of points above 0", details={"field": field})


def _replay(session: Session, member: Member, key: str, *, kind: PointsKind, signed: int | None) -> Posting | None:
    """The entry an earlier call with `key` wrote, if any; refuses a key reused for something else.

    `signed` is the amount the call would write (None: not comparable, e.g. a reversal with shortfall)."""
    if not key or len(key) > 200:
        raise InvalidPoints("idempotency_key must be 1 to 200 characters", details={"field": "idempotency_key"})
    entry = session.scalar(
        select(PointsEntry).where(PointsEntry.workspace_id == member.workspace_id, PointsEntry.idempotency_key == key)
    )
    if entry is None:
        return None
    if entry.member_id != member.id or entry.kind != kind or (signed is not None and entry.amount != signed):
        raise IdempotencyKeyReused(
            f"idempotency key {key!r} was already used for another points movement",
            details={"field": "idempotency_key", "entry_id": entry.id},
        )
    return Posting(entry=entry, replayed=True)


def _write(
    session: Session,
    member: Member,
    *,
    amount: int,
    kind: PointsKind,
    reason: PointsReason,
    description: str,
    key: str,
    clock: Clock,
    source_ref: str | None,
    actor: str | None,
    reverses_entry_id: int | None = None,
    shortfall: int = 0,
) -> PointsEntry:
    member.points_balance += amount
    assert member.points_balance >= 0, "points balance would go negative"
    member.updated_at = clock.now()
    entry = PointsEntry(
        workspace_id=member.workspace_id,
        member_id=member.id,
        amount=amount,
        kind=kind,
        reason=reason,
        description=description[:200],
        source_ref=source_ref,
        idempotency_key=key,
        reverses_entry_id=reverses_entry_id,
        shortfall=shortfall,
        balance_after=member.points_balance,
        actor=actor,
        occurred_at=clock.now(),
    )
    session.add(entry)
    session.flush()
    return entry


def _spendable_lots(session: Session, member: Member, now: datetime) -> list[PointsLot]:
    """The member's lots with points left and not expired, soonest expiry first, never-expiring last."""
    return list(
        session.scalars(
            select(PointsLot)
            .where(
                PointsLot.member_id == member.id,
                PointsLot.remaining > 0,
                or_(PointsLot.expires_at.is_(None), PointsLot.expires_at > now),
            )
            .order_by(PointsLot.expires_at.is_(None), PointsLot.expires_at, PointsLot.id)
        )
    )


def _take(session: Session, entry: PointsEntry, lots: list[PointsLot], points: int) -> int:
    """Take up to `points` from `lots` in order, recording allocations; returns what was taken."""
    taken = 0
    for lot in lots:
        if taken == points:
            break
        part = min(lot.remaining, points - taken)
        if part <= 0:
            continue
        lot.remaining -= part
        taken += part
        session.add(PointsAllocation(workspace_id=entry.workspace_id, entry_id=entry.id, lot_id=lot.id, amount=-part))
    session.flush()
    return taken


def earn(
    session: Session,
    *,
    member: Member,
    points: int,
    reason: PointsReason,
    description: str,
    idempotency_key: str,
    clock: Clock,
    source_ref: str | None = None,
    actor: str | None = None,
    expires_at: datetime | _Default | None = PROGRAM_EXPIRY,
    kind: PointsKind = PointsKind.EARN,
    key_unused: bool = False,
) -> Posting:
    """Add points as a new lot (expiring per the program unless `expires_at` says otherwise).

    Points a refund could not take back (`points_debt`) are settled from this lot at once, as a
    separate reversal entry keyed `settle:<entry id>`. `key_unused=True`: the caller has just
    looked the key up (under the member's lock) and no entry holds it, so the replay lookup is
    skipped (a batch checks all its keys with one query); the unique key still guards the write."""
    _check_points(points)
    if key_unused:
        if not idempotency_key or len(idempotency_key) > 200:
            raise InvalidPoints("idempotency_key must be 1 to 200 characters", details={"field": "idempotency_key"})
    elif (done := _replay(session, member, idempotency_key, kind=kind, signed=points)) is not None:
        return done
    now = clock.now()
    if isinstance(expires_at, _Default):
        program = get_program(session, member.workspace_id, clock=clock)
        expires_at = lot_expiry(program.expiry_policy, program.expiry_n, now, brand_zone(session, member.workspace_id))
    entry = _write(
        session,
        member,
        amount=points,
        kind=kind,
        reason=reason,
        description=description,
        key=idempotency_key,
        clock=clock,
        source_ref=source_ref,
        actor=actor,
    )
    lot = PointsLot(
        workspace_id=member.workspace_id,
        member_id=member.id,
        entry_id=entry.id,
        amount=points,
        remaining=points,
        earned_at=now,
        expires_at=expires_at,
    )
    session.add(lot)
    session.flush()
    if kind == PointsKind.EARN:
        member.points_earned_total += points
    if member.points_debt > 0 and (expires_at is None or expires_at > now):
        settle = min(member.points_debt, points)
        member.points_debt -= settle
        settlement = _write(
            session,
            member,
            amount=-settle,
            kind=PointsKind.REVERSE,
            reason=PointsReason.REFUND,
            description="抵扣此前退款应退回的积分",
            key=f"settle:{entry.id}",
            clock=clock,
            source_ref=source_ref,
            actor=actor,
        )
        _take(session, settlement, [lot], settle)
    return Posting(entry=entry)


@dataclass(frozen=True)
class Earning:
    """One `earn` of an `earn_many` batch: a purchase's points, say."""

    member: Member
    points: int
    reason: PointsReason
    description: str
    idempotency_key: str
    expires_at: datetime | None
    source_ref: str | None = None


def earn_many(session: Session, *, earnings: Sequence[Earning], clock: Clock) -> None:
    """`earn` (kind earn, `key_unused=True`) for many movements, in the order given, with two
    multi-row INSERTs (entries, then their lots) instead of two flushes per movement. The caller
    has looked the keys up under the members' locks and none is used. Movements of a member with
    points debt go through `earn` one by one (it settles the debt); each member's entries keep the
    order given either way."""
    entries: list[dict[str, object]] = []
    lots: list[dict[str, object]] = []
    for earning in earnings:
        _check_points(earning.points)
        key = earning.idempotency_key
        if not key or len(key) > 200:
            raise InvalidPoints("idempotency_key must be 1 to 200 characters", details={"field": "idempotency_key"})
        member = earning.member
        if member.points_debt > 0:
            earn(
                session,
                member=member,
                points=earning.points,
                reason=earning.reason,
                description=earning.description,
                idempotency_key=key,
                clock=clock,
                source_ref=earning.source_ref,
                expires_at=earning.expires_at,
                key_unused=True,
            )
            continue
        now = clock.now()
        member.points_balance += earning.points
        member.points_earned_total += earning.points
        member.updated_at = now
        entries.append(
            {
                "workspace_id": member.workspace_id,
                "member_id": member.id,
                "amount": earning.points,
                "kind": PointsKind.EARN,
                "reason": earning.reason,
                "description": earning.description[:200],
                "source_ref": earning.source_ref,
                "idempotency_key": key,
                "reverses_entry_id": None,
                "shortfall": 0,
                "forgiven": 0,
                "balance_after": member.points_balance,
                "actor": None,
                "occurred_at": now,
            }
        )
        lots.append(
            {
                "workspace_id": member.workspace_id,
                "member_id": member.id,
                "amount": earning.points,
                "remaining": earning.points,
                "earned_at": now,
                "expires_at": earning.expires_at,
            }
        )
    if not entries:
        return
    table = cast(Table, PointsEntry.__table__)
    # RETURNING the key (unique per workspace) rather than in parameter order: batched either way.
    written = session.execute(insert(table).returning(table.c.idempotency_key, table.c.id), entries)
    ids = {key: entry_id for key, entry_id in written}
    for lot, entry in zip(lots, entries, strict=True):
        lot["entry_id"] = ids[entry["idempotency_key"]]
    session.execute(insert(cast(Table, PointsLot.__table__)), lots)


def spend(
    session: Session,
    *,
    member: Member,
    points: int,
    description: str,
    idempotency_key: str,
    clock: Clock,
    reason: PointsReason = PointsReason.REDEEM,
    source_ref: str | None = None,
    actor: str | None = None,
    kind: PointsKind = PointsKind.SPEND,
) -> Posting:
    """Take points from the lots that expire soonest; refuses (`InsufficientPoints`) rather than overdraw."""
    _check_points(points)
    if (done := _replay(session, member, idempotency_key, kind=kind, signed=-points)) is not None:
        return done
    expire_due(session, member=member, clock=clock)
    if member.points_balance < points:
        raise InsufficientPoints(
            f"not enough points: {member.points_balance} available, {points} needed",
            details={"field": "points", "balance": member.points_balance, "required": points},
        )
    entry = _write(
        session,
        member,
        amount=-points,
        kind=kind,
        reason=reason,
        description=description,
        key=idempotency_key,
        clock=clock,
        source_ref=source_ref,
        actor=actor,
    )
    taken = _take(session, entry, _spendable_lots(session, member, clock.now()), points)
    assert taken == points, "lots disagree with the cached balance"
    return Posting(entry=entry)


def reversed_total(session: Session, entry_id: int) -> int:
    """How much of an earn entry reversals have undone so far (taken back plus shortfall)."""
    total = session.scalar(
        select(func.coalesce(func.sum(PointsEntry.shortfall + PointsEntry.forgiven - PointsEntry.amount), 0)).where(
            PointsEntry.reverses_entry_id == entry_id, PointsEntry.kind == PointsKind.REVERSE
        )
    )
    return int(total or 0)


def reverse_earn(
    session: Session,
    *,
    member: Member,
    entry_id: int,
    points: int,
    description: str,
    idempotency_key: str,
    clock: Clock,
    reason: PointsReason = PointsReason.REFUND,
    source_ref: str | None = None,
    actor: str | None = None,
) -> Posting:
    """Take back `points` of what an earn entry gave (a refund): from that entry's own lot first, then
    soonest-expiry first; what was already spent is recorded as `shortfall` and becomes debt, so the
    balance never goes negative and the next earn settles it."""
    _check_points(points)
    if (done := _replay(session, member, idempotency_key, kind=PointsKind.REVERSE, signed=None)) is not None:
        undone = done.entry.shortfall + done.entry.forgiven - done.entry.amount
        if done.entry.reverses_entry_id != entry_id or undone != points:
            raise IdempotencyKeyReused(
                f"idempotency key {idempotency_key!r} was already used for another reversal",
                details={"field": "idempotency_key", "entry_id": done.entry.id},
            )
        return done
    earned = session.get(PointsEntry, entry_id)
    if earned is None or earned.member_id != member.id or earned.amount <= 0:
        raise InvalidPoints(f"entry {entry_id} is not an earn entry of this member", details={"field": "entry_id"})
    left = earned.amount - reversed_total(session, entry_id)
    if points > left:
        raise InvalidPoints(
            f"cannot reverse {points} points: only {left} of entry {entry_id} are left to reverse",
            details={"field": "points", "reversible": left},
        )
    expire_due(session, member=member, clock=clock)
    own = session.scalars(select(PointsLot).where(PointsLot.entry_id == entry_id)).all()
    # What expired from the entry's own lot is counted as taken back first (the member never had the
    # use of it), minus what earlier reversals of this entry already counted that way.
    forgiven = min(points, max(_expired_from(session, [lot.id for lot in own]) - _forgiven(session, entry_id), 0))
    lots = [lot for lot in own if lot.remaining > 0] + [
        lot for lot in _spendable_lots(session, member, clock.now()) if lot.entry_id != entry_id
    ]
    available = min(points - forgiven, member.points_balance)
    entry = _write(
        session,
        member,
        amount=0,
        kind=PointsKind.REVERSE,
        reason=reason,
        description=description,
        key=idempotency_key,
        clock=clock,
        source_ref=source_ref,
        actor=actor,
        reverses_entry_id=entry_id,
    )
    taken = _take(session, entry, lots, available)
    shortfall = points - forgiven - taken
    entry.amount = -taken
    entry.shortfall = shortfall
    entry.forgiven = forgiven
    member.points_balance -= taken
    entry.balance_after = member.points_balance
    member.points_debt += shortfall
    if earned.kind == PointsKind.EARN:
        member.points_earned_total -= points
    session.flush()
    return Posting(entry=entry)


def _expired_from(session: Session, lot_ids: list[int]) -> int:
    """Points that expiry entries took from these lots (net of any given back to them since)."""
    if not lot_ids:
        return 0
    taken = session.scalar(
        select(func.coalesce(func.sum(-PointsAllocation.amount), 0))
        .join(PointsEntry, PointsEntry.id == PointsAllocation.entry_id)
        .where(PointsAllocation.lot_id.in_(lot_ids), PointsEntry.kind == PointsKind.EXPIRE)
    )
    return int(taken or 0)


def _forgiven(session: Session, entry_id: int) -> int:
    return int(
        session.scalar(
            select(func.coalesce(func.sum(PointsEntry.forgiven), 0)).where(
                PointsEntry.reverses_entry_id == entry_id, PointsEntry.kind == PointsKind.REVERSE
            )
        )
        or 0
    )


def restore_spend(
    session: Session,
    *,
    member: Member,
    entry_id: int,
    description: str,
    idempotency_key: str,
    clock: Clock,
    reason: PointsReason = PointsReason.CANCEL,
    source_ref: str | None = None,
    actor: str | None = None,
) -> Posting:
    """Give back everything a spend entry took, to exactly the lots it came from (a cancelled
    redemption). Points whose lot has expired meanwhile expire again at once. Done once per spend."""
    spent = session.get(PointsEntry, entry_id)
    if (
        spent is None
        or spent.member_id != member.id
        or spent.amount >= 0
        or spent.kind not in (PointsKind.SPEND, PointsKind.ADJUST)
    ):
        raise InvalidPoints(f"entry {entry_id} is not a spend of this member", details={"field": "entry_id"})
    if (done := _replay(session, member, idempotency_key, kind=PointsKind.REVERSE, signed=-spent.amount)) is not None:
        return done
    earlier = session.scalar(
        select(PointsEntry).where(PointsEntry.reverses_entry_id == entry_id, PointsEntry.kind == PointsKind.REVERSE)
    )
    if earlier is not None:
        return Posting(entry=earlier, replayed=True)
    entry = _write(
        session,
        member,
        amount=-spent.amount,
        kind=PointsKind.REVERSE,
        reason=reason,
        description=description,
        key=idempotency_key,
        clock=clock,
        source_ref=source_ref,
        actor=actor,
        reverses_entry_id=entry_id,
    )
    allocations = session.scalars(select(PointsAllocation).where(PointsAllocation.entry_id == entry_id)).all()
    for allocation in allocations:
        lot = session.get(PointsLot, allocation.lot_id)
        assert lot is not None
        lot.remaining += -allocation.amount
        session.add(
            PointsAllocation(
                workspace_id=member.workspace_id, entry_id=entry.id, lot_id=lot.id, amount=-allocation.amount
            )
        )
    session.flush()
    expire_due(session, member=member, clock=clock)
    return Posting(entry=entry)


def adjust(
    session: Session,
    *,
    member: Member,
    points: int,
    description: str,
    idempotency_key: str,
    clock: Clock,
    actor: str | None,
    source_ref: str | None = None,
) -> Posting:
    """An operator's correction, up or down, with the reason the member will read. A negative
    adjustment takes from lots like a spend and cannot overdraw."""
    if not description.strip():
        raise InvalidPoints("a reason is required for a manual adjustment", details={"field": "reason"})
    if isinstance(points, bool) or not isinstance(points, int) or points == 0:
        raise InvalidPoints("points must be a non-zero whole number", details={"field": "points"})
    if points > 0:
        return earn(
            session,
            member=member,
            points=points,
            reason=PointsReason.ADJUST,
            description=description,
            idempotency_key=idempotency_key,
            clock=clock,
            source_ref=source_ref,
            actor=actor,
            kind=PointsKind.ADJUST,
        )
    return spend(
        session,
        member=member,
        points=-points,
        reason=PointsReason.ADJUST,
        description=description,
        idempotency_key=idempotency_key,
        clock=clock,
        source_ref=source_ref,
        actor=actor,
        kind=PointsKind.ADJUST,
    )


def expire_due(session: Session, *, member: Member, clock: Clock) -> list[PointsEntry]:
    """Expire what is left of the member's lots whose expiry has passed: one entry per lot."""
    now = clock.now()
    due = session.scalars(
        select(PointsLot)
        .where(PointsLot.member_id == member.id, PointsLot.remaining > 0, PointsLot.expires_at <= now)
        .order_by(PointsLot.expires_at, PointsLot.id)
    ).all()
    entries: list[PointsEntry] = []
    for lot in due:
        points = lot.remaining
        entry = _write(
            session,
            member,
            amount=-points,
            kind=PointsKind.EXPIRE,
            reason=PointsReason.EXPIRE,
            description="积分到期",
            key=f"expire:lot:{lot.id}:{_movements(session, lot.id)}",
            clock=clock,
            source_ref=f"lot:{lot.id}",
            actor=None,
        )
        _take(session, entry, [lot], points)
        entries.append(entry)
    return entries


def _movements(session: Session, lot_id: int) -> int:
    """How many allocations touched a lot: a lot restored after expiry can expire again, under a new key."""
    return int(session.scalar(select(func.count()).where(PointsAllocation.lot_id == lot_id)) or 0)


def balance_from_ledger(session: Session, member_id: int) -> int:
    """The sum of the member's entries: what `points_balance` must equal."""
    return int(
        session.scalar(select(func.coalesce(func.sum(PointsEntry.amount), 0)).where(PointsEntry.member_id == member_id))
        or 0
    )


def expiring_soon(session: Session, *, member: Member, clock: Clock, days: int) -> list[tuple[datetime, int]]:
    """Points that will expire within `days`, per expiry instant, soonest first."""
    now = clock.now()
    rows = session.execute(
        select(PointsLot.expires_at, func.sum(PointsLot.remaining))
        .where(
            PointsLot.member_id == member.id,
            PointsLot.remaining > 0,
            PointsLot.expires_at > now,
            PointsLot.expires_at <= now + timedelta(days=days),
        )
        .group_by(PointsLot.expires_at)
        .order_by(PointsLot.expires_at)
    ).all()
    return [(at, int(total)) for at, total in rows if at is not None]
