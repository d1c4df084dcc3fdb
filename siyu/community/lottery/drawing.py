"""Drawing: freeze the entries, pick winners from the seed, award prizes, tell the winners, reveal.

The draw takes its row lock (entries take the same lock, so none slips in), writes the digest of
the entry list, computes the winners with `fairness.pick_winners`, and counts each win against
its prize with a conditional UPDATE (`awarded_count < stock`; a CHECK constraint backs it up).
Prizes are given with keys `lottery-win:{win_id}`; a prize or a notification that fails is
recorded on the win (`award_error`, `notify_error`) and the draw still completes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.commerce.coupons.issuing import issue_coupon
from siyu.community.lottery import fairness
from siyu.community.lottery.entries import draw_entries
from siyu.community.lottery.errors import DrawStateConflict
from siyu.community.lottery.service import get_draw, prizes_of, wins_of
from siyu.kit.clock import Clock, as_utc
from siyu.kit.errors import DomainError
from siyu.loyalty.points.service import award_points
from siyu.messaging.transactional import send_transactional
from siyu.models import DrawStatus, LotteryDraw, LotteryPrize, LotteryWin, PointsReason

logger = logging.getLogger(__name__)


def tickets_of(session: Session, draw_id: int) -> list[fairness.Ticket]:
    """The draw's frozen entry list as the fairness code sees it."""
    return [
        fairness.Ticket(ticket_no=e.ticket_no, customer_id=e.customer_id)
        for e in draw_entries(session, draw_id=draw_id)
    ]


def specs_of(prizes: list[LotteryPrize]) -> list[fairness.PrizeSpec]:
    """Prizes as the fairness code sees them."""
    return [
        fairness.PrizeSpec(prize_id=p.id, stock=p.stock, winners=p.winners, probability_ppm=p.probability_ppm)
        for p in prizes
    ]


def run_draw(session: Session, *, actor: Actor, draw_id: int, clock: Clock) -> LotteryDraw:
    """Draw an open draw (growth:write, or the system at closes_at); drawing twice returns the drawn draw.
    A draw with a `closes_at` cannot be drawn before it (409): its entries are open until then."""
    actor.require(Scope.GROWTH_WRITE)
    draw = get_draw(session, workspace_id=actor.workspace_id, draw_id=draw_id, for_update=True)
    if draw.status == DrawStatus.DRAWN:
        return draw
    if draw.status != DrawStatus.OPEN or draw.seed is None:
        raise DrawStateConflict("only an open draw can be drawn", details={"status": str(draw.status)})
    if draw.closes_at is not None and clock.now() < as_utc(draw.closes_at):
        # a draw with a published draw time is drawn then, not earlier by hand
        raise DrawStateConflict(
            "the draw is drawn at its closes_at, not before",
            details={"closes_at": as_utc(draw.closes_at).isoformat()},
        )
    entries = draw_entries(session, draw_id=draw.id)
    by_ticket = {e.ticket_no: e for e in entries}
    tickets = [fairness.Ticket(ticket_no=e.ticket_no, customer_id=e.customer_id) for e in entries]
    prizes = prizes_of(session, draw.id)
    digest = fairness.entries_digest(tickets)
    picks = fairness.pick_winners(
        method=str(draw.method),
        draw_id=draw.id,
        seed_hex=draw.seed,
        digest=digest,
        tickets=tickets,
        prizes=specs_of(prizes),
        one_win_per_customer=draw.one_win_per_customer,
    )
    now = clock.now()
    wins: list[LotteryWin] = []
    for pick in picks:
        counted = session.execute(
            update(LotteryPrize)
            .where(LotteryPrize.id == pick.prize_id, LotteryPrize.awarded_count < LotteryPrize.stock)
            .values(awarded_count=LotteryPrize.awarded_count + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(counted, "rowcount", 1) != 1:  # pragma: no cover - pick_winners never exceeds stock
            raise DrawStateConflict("prize out of stock", details={"prize_id": pick.prize_id})
        entry = by_ticket[pick.ticket_no]
        win = LotteryWin(
            workspace_id=draw.workspace_id,
            draw_id=draw.id,
            prize_id=pick.prize_id,
            entry_id=entry.id,
            customer_id=entry.customer_id,
            created_at=now,
        )
        session.add(win)
        wins.append(win)
    draw.entries_digest = digest
    draw.status = DrawStatus.DRAWN
    draw.drawn_at = now
    draw.updated_at = now
    session.flush()
    for prize in prizes:
        session.refresh(prize)
    prize_by_id = {p.id: p for p in prizes}
    for win in wins:
        _award(session, draw, prize_by_id[win.prize_id], win, clock)
        _notify(session, draw, prize_by_id[win.prize_id], win, clock)
    record(
        session,
        actor,
        action="lottery.drawn",
        entity_type="lottery_draw",
        entity_id=draw.id,
        clock=clock,
        after={
            "commitment": draw.commitment,
            "seed": draw.seed,
            "entries_digest": draw.entries_digest,
            "entries": len(entries),
            "winners": [{"ticket": p.ticket_no, "prize_id": p.prize_id} for p in picks],
        },
    )
    session.flush()
    return draw


def _award(session: Session, draw: LotteryDraw, prize: LotteryPrize, win: LotteryWin, clock: Clock) -> None:
    key = f"lottery-win:{win.id}"
    try:
        with session.begin_nested():
            if prize.points > 0:
                entry = award_points(
                    session,
                    workspace_id=draw.workspace_id,
                    customer_id=win.customer_id,
                    points=prize.points,
                    reason=PointsReason.TASK,
                    description=f"抽奖中奖：{prize.name}",
                    idempotency_key=key,
                    clock=clock,
                    source_ref=f"lottery:{draw.id}",
                )
                win.points_entry_id = entry.id
            if prize.coupon_template_id is not None:
                coupon = issue_coupon(
                    session,
                    workspace_id=draw.workspace_id,
                    template_id=prize.coupon_template_id,
                    customer_id=win.customer_id,
                    source="lottery",
                    idempotency_key=key,
                    clock=clock,
                )
                win.coupon_id = coupon.id
            session.flush()
    except DomainError as exc:
        win.points_entry_id = None
        win.coupon_id = None
        win.award_error = exc.message[:300]
        logger.warning("lottery prize not awarded", extra={"win_id": win.id, "error": exc.message})


def _notify(session: Session, draw: LotteryDraw, prize: LotteryPrize, win: LotteryWin, clock: Clock) -> None:
    if draw.notify_channel_account_id is None or draw.notify_content_id is None:
        return
    try:
        with session.begin_nested():
            delivery = send_transactional(
                session,
                actor=Actor.system(draw.workspace_id, "lottery"),
                customer_id=win.customer_id,
                content_id=draw.notify_content_id,
                channel_account_ids=[draw.notify_channel_account_id],
                idempotency_key=f"lottery-win:{win.id}",
                variables={},
                clock=clock,
            )
            win.delivery_id = delivery.id
            session.flush()
    except Exception as exc:
        win.delivery_id = None
        win.notify_error = (getattr(exc, "message", None) or str(exc) or type(exc).__name__)[:300]
        logger.warning("lottery winner not notified", extra={"win_id": win.id})


def due_draw_ids(session: Session, *, workspace_id: int, clock: Clock) -> list[int]:
    """Open draws whose closes_at has passed."""
    return list(
        session.scalars(
            select(LotteryDraw.id).where(
                LotteryDraw.workspace_id == workspace_id,
                LotteryDraw.status == DrawStatus.OPEN,
                LotteryDraw.closes_at.is_not(None),
                LotteryDraw.closes_at <= clock.now(),
            )
        )
    )


@dataclass(frozen=True)
class PublicDraw:
    """What the public verify page shows and `verify_draw` needs."""

    draw: LotteryDraw
    prizes: list[LotteryPrize]
    tickets: list[fairness.Ticket]
    picks: list[fairness.Pick]
    is_verified: bool | None
    """None until drawn."""


def public_draw(session: Session, *, draw_id: int) -> PublicDraw | None:
    """The published data of a draw (any workspace: the page is public); None for unknown or draft draws."""
    draw = session.get(LotteryDraw, draw_id)
    if draw is None or draw.status == DrawStatus.DRAFT:
        return None
    prizes = prizes_of(session, draw.id)
    if draw.status != DrawStatus.DRAWN:
        return PublicDraw(draw=draw, prizes=prizes, tickets=[], picks=[], is_verified=None)
    tickets = tickets_of(session, draw.id)
    entry_ticket = {e.id: e.ticket_no for e in draw_entries(session, draw_id=draw.id)}
    picks = [fairness.Pick(prize_id=w.prize_id, ticket_no=entry_ticket[w.entry_id]) for w in wins_of(session, draw.id)]
    ok = fairness.verify_draw(
        method=str(draw.method),
        draw_id=draw.id,
        commitment=draw.commitment or "",
        seed_hex=draw.seed or "",
        digest=draw.entries_digest or "",
        tickets=tickets,
        prizes=specs_of(prizes),
        one_win_per_customer=draw.one_win_per_customer,
        winners=picks,
    )
    return PublicDraw(draw=draw, prizes=prizes, tickets=tickets, picks=picks, is_verified=ok)
