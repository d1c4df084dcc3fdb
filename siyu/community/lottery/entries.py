"""Entries (tickets): by points on the member H5 page, by a task or campaign, by a mall redemption.

Every entry takes the draw's row lock, so ticket numbers are 1, 2, 3… without gaps or twins and the
per-member maximum holds under concurrency. Lock order: the member row (points), then the draw.
The same idempotency key returns the first entry and changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.community.lottery.errors import DrawNotOpen, EntryLimitReached, InvalidDraw
from siyu.community.lottery.service import get_draw
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, NotFound
from siyu.loyalty.members import ensure_member
from siyu.loyalty.points.ledger import spend
from siyu.models import (
    Customer,
    DrawStatus,
    EntrySource,
    LotteryDraw,
    LotteryEntry,
    LotteryWin,
    Member,
    PointsReason,
    Redemption,
    Reward,
)


def _by_key(session: Session, workspace_id: int, key: str) -> LotteryEntry | None:
    return session.scalar(
        select(LotteryEntry).where(LotteryEntry.workspace_id == workspace_id, LotteryEntry.idempotency_key == key)
    )


def _replayed(entry: LotteryEntry, draw_id: int, customer_id: int) -> LotteryEntry:
    if entry.draw_id != draw_id or entry.customer_id != customer_id:
        raise Conflict(
            "idempotency key was already used for another entry",
            details={"field": "idempotency_key", "entry_id": entry.id},
        )
    return entry


def is_taking_entries(draw: LotteryDraw, now: datetime) -> bool:
    """Open, and within its dates if it has them."""
    if draw.status != DrawStatus.OPEN:
        return False
    if draw.opens_at is not None and now < draw.opens_at:
        return False
    return not (draw.closes_at is not None and now >= draw.closes_at)


def member_entry_count(session: Session, draw_id: int, customer_id: int) -> int:
    """How many tickets the customer holds in the draw."""
    return int(
        session.scalar(
            select(func.count()).where(LotteryEntry.draw_id == draw_id, LotteryEntry.customer_id == customer_id)
        )
        or 0
    )


def next_points_n(session: Session, draw_id: int, customer_id: int) -> int:
    """The `n` of the member's next points entry in the draw: their POINTS tickets there, plus one.

    Counted over every points ticket (no list cap), and only points tickets: a ticket from a
    redemption, a task or a campaign (or one withdrawn later) never shifts the numbering."""
    held = session.scalar(
        select(func.count()).where(
            LotteryEntry.draw_id == draw_id,
            LotteryEntry.customer_id == customer_id,
            LotteryEntry.source == EntrySource.POINTS,
        )
    )
    return int(held or 0) + 1


def _check_customer(session: Session, workspace_id: int, customer_id: int) -> None:
    customer = session.get(Customer, customer_id)
    if customer is None or customer.workspace_id != workspace_id or customer.erased_at is not None:
        raise NotFound(f"customer {customer_id} not found", details={"field": "customer_id"})


def _locked_open_draw(session: Session, workspace_id: int, draw_id: int, clock: Clock) -> LotteryDraw:
    draw = get_draw(session, workspace_id=workspace_id, draw_id=draw_id, for_update=True)
    if not is_taking_entries(draw, clock.now()):
        raise DrawNotOpen(f"draw {draw_id} is not taking entries", details={"draw_id": draw_id})
    return draw


def _insert(
    session: Session,
    *,
    draw: LotteryDraw,
    customer_id: int,
    source: EntrySource,
    source_ref: str | None,
    idempotency_key: str,
    clock: Clock,
    points_entry_id: int | None = None,
) -> LotteryEntry:
    """Allocate the next ticket (the caller holds the draw's lock)."""
    if member_entry_count(session, draw.id, customer_id) >= draw.max_entries_per_member:
        raise EntryLimitReached(
            f"at most {draw.max_entries_per_member} entries per member",
            details={"draw_id": draw.id, "limit": draw.max_entries_per_member},
        )
    last = session.scalar(select(func.max(LotteryEntry.ticket_no)).where(LotteryEntry.draw_id == draw.id))
    entry = LotteryEntry(
        workspace_id=draw.workspace_id,
        draw_id=draw.id,
        customer_id=customer_id,
        ticket_no=int(last or 0) + 1,
        source=source,
        source_ref=source_ref,
        points_entry_id=points_entry_id,
        idempotency_key=idempotency_key,
        created_at=clock.now(),
    )
    session.add(entry)
    session.flush()
    return entry


def enter(
    session: Session,
    *,
    workspace_id: int,
    draw_id: int,
    customer_id: int,
    source: EntrySource,
    source_ref: str | None,
    idempotency_key: str,
    clock: Clock,
) -> LotteryEntry:
    """Give a customer one ticket (a task, a campaign, a redemption): free of points, idempotent on the key.

    Refusals: `DrawNotOpen`, `EntryLimitReached`, `NotFound` (unknown or erased customer), `Conflict`
    (the key was used for another draw or customer)."""
    key = (idempotency_key or "").strip()
    if not 1 <= len(key) <= 200:
        raise InvalidDraw("idempotency_key must be 1 to 200 characters", details={"field": "idempotency_key"})
    if (done := _by_key(session, workspace_id, key)) is not None:
        return _replayed(done, draw_id, customer_id)
    _check_customer(session, workspace_id, customer_id)
    with session.begin_nested():
        draw = _locked_open_draw(session, workspace_id, draw_id, clock)
        if (done := _by_key(session, workspace_id, key)) is not None:
            return _replayed(done, draw_id, customer_id)
        return _insert(
            session,
            draw=draw,
            customer_id=customer_id,
            source=source,
            source_ref=source_ref,
            idempotency_key=key,
            clock=clock,
        )


def points_key(draw_id: int, customer_id: int, n: int) -> str:
    """The idempotency key of a member's n-th points entry (the H5 form carries n)."""
    return f"lottery:{draw_id}:{customer_id}:{n}"


def enter_with_points(
    session: Session, *, workspace_id: int, draw_id: int, customer_id: int, n: int, clock: Clock
) -> LotteryEntry:
    """Spend the draw's entry points for the member's n-th ticket (key `lottery:{draw}:{customer}:{n}`).

    A double submit of the same form (same n) returns the first entry and spends once. Refusals:
    `DrawNotOpen`, `InvalidDraw` (not enterable by points, bad n), `EntryLimitReached`,
    `InsufficientPoints` — with nothing written."""
    if n < 1 or n > 1000:
        raise InvalidDraw("n must be between 1 and 1000", details={"field": "n"})
    key = points_key(draw_id, customer_id, n)
    if (done := _by_key(session, workspace_id, key)) is not None:
        return _replayed(done, draw_id, customer_id)
    _check_customer(session, workspace_id, customer_id)
    with session.begin_nested():
        member = ensure_member(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock)
        draw = _locked_open_draw(session, workspace_id, draw_id, clock)
        if (done := _by_key(session, workspace_id, key)) is not None:
            return _replayed(done, draw_id, customer_id)
        if draw.entry_points is None:
            raise InvalidDraw("this draw cannot be entered with points", details={"field": "draw_id"})
        if member_entry_count(session, draw.id, customer_id) >= draw.max_entries_per_member:
            raise EntryLimitReached(
                f"at most {draw.max_entries_per_member} entries per member",
                details={"draw_id": draw.id, "limit": draw.max_entries_per_member},
            )
        posting = spend(
            session,
            member=member,
            points=draw.entry_points,
            description=f"抽奖：{draw.name}",
            idempotency_key=key,
            clock=clock,
            reason=PointsReason.REDEEM,
            source_ref=f"lottery:{draw.id}",
        )
        return _insert(
            session,
            draw=draw,
            customer_id=customer_id,
            source=EntrySource.POINTS,
            source_ref=f"points:{n}",
            idempotency_key=key,
            clock=clock,
            points_entry_id=posting.entry.id,
        )


def enter_for_redemption(
    session: Session, *, redemption: Redemption, reward: Reward, clock: Clock
) -> LotteryEntry | None:
    """The ticket a rewards-mall `LOTTERY_ENTRY` redemption buys (key `redemption:{id}`); None without a draw.

    Called by the rewards service right after the redemption is written, inside its savepoint, so a
    refusal (draw closed, limit reached) undoes the whole redemption and its points."""
    if reward.lottery_draw_id is None:
        return None
    customer_id = session.scalar(select(Member.customer_id).where(Member.id == redemption.member_id))
    if customer_id is None:
        return None
    return enter(
        session,
        workspace_id=redemption.workspace_id,
        draw_id=reward.lottery_draw_id,
        customer_id=customer_id,
        source=EntrySource.REDEMPTION,
        source_ref=f"redemption:{redemption.id}",
        idempotency_key=f"redemption:{redemption.id}",
        clock=clock,
    )


def member_entries(session: Session, *, workspace_id: int, customer_id: int) -> list[LotteryEntry]:
    """The member's tickets, newest first."""
    return list(
        session.scalars(
            select(LotteryEntry)
            .where(LotteryEntry.workspace_id == workspace_id, LotteryEntry.customer_id == customer_id)
            .order_by(LotteryEntry.id.desc())
            .limit(200)
        )
    )


def member_wins(session: Session, *, workspace_id: int, customer_id: int) -> list[LotteryWin]:
    """The member's wins, newest first."""
    return list(
        session.scalars(
            select(LotteryWin)
            .where(LotteryWin.workspace_id == workspace_id, LotteryWin.customer_id == customer_id)
            .order_by(LotteryWin.id.desc())
            .limit(200)
        )
    )


def draw_entries(session: Session, *, draw_id: int) -> list[LotteryEntry]:
    """The draw's tickets in ticket order."""
    return list(
        session.scalars(select(LotteryEntry).where(LotteryEntry.draw_id == draw_id).order_by(LotteryEntry.ticket_no))
    )


def withdraw_for_redemption(session: Session, *, redemption: Redemption, reward: Reward) -> None:
    """Take back the ticket of a cancelled rewards-mall `LOTTERY_ENTRY` redemption.

    Called by the rewards service while it cancels the redemption (member and reward already locked;
    the draw's lock comes after them, as when entering). Once the draw is drawn the ticket is part of a
    published, verifiable entry list, so the cancellation is refused (`DrawNotOpen`)."""
    if reward.lottery_draw_id is None:
        return
    draw = get_draw(session, workspace_id=redemption.workspace_id, draw_id=reward.lottery_draw_id, for_update=True)
    entry = session.scalar(
        select(LotteryEntry).where(
            LotteryEntry.draw_id == draw.id, LotteryEntry.idempotency_key == f"redemption:{redemption.id}"
        )
    )
    if entry is None:
        return
    if draw.status != DrawStatus.OPEN:
        raise DrawNotOpen(
            "the draw this redemption entered is no longer open; its ticket cannot be taken back",
            details={"draw_id": draw.id, "status": str(draw.status)},
        )
    session.delete(entry)
    session.flush()
