"""Member H5 pages of community lottery: open draws, entering with points, my tickets and wins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from siyu.community.lottery import entries, service
from siyu.community.lottery.errors import DrawNotOpen, EntryLimitReached
from siyu.kit.errors import DomainError
from siyu.kit.ids import MAX_ID
from siyu.loyalty.errors import InsufficientPoints
from siyu.loyalty.h5.links import MemberSession
from siyu.loyalty.h5.views.common import (
    FormDep,
    MemberDep,
    MemberRoute,
    clock_of,
    member_transaction,
    render_member,
    see_other,
    translator,
)
from siyu.loyalty.members import get_member
from siyu.models import DrawStatus, LotteryDraw, LotteryPrize

router = APIRouter(route_class=MemberRoute)


def _page(
    request: Request,
    session: Session,
    member: MemberSession,
    *,
    error: str | None = None,
    entered: int | None = None,
    status_code: int = 200,
) -> Response:
    clock = clock_of(request)
    ws, customer_id = member.workspace_id, member.customer_id
    now = clock.now()
    draws = [
        d
        for d in service.list_draws(session, workspace_id=ws, status=DrawStatus.OPEN)
        if entries.is_taking_entries(d, now)
    ]
    mine = entries.member_entries(session, workspace_id=ws, customer_id=customer_id)
    # per open draw, counted in the database (the ticket list above is capped): how many tickets
    # the member holds, and the `n` of their next points entry (the form's double-submit key)
    counts = {d.id: entries.member_entry_count(session, d.id, customer_id) for d in draws}
    next_n = {d.id: entries.next_points_n(session, d.id, customer_id) for d in draws}
    wins = entries.member_wins(session, workspace_id=ws, customer_id=customer_id)
    draw_ids = {e.draw_id for e in mine} | {w.draw_id for w in wins}
    draw_rows = session.execute(
        select(LotteryDraw.id, LotteryDraw.name, LotteryDraw.status).where(LotteryDraw.id.in_(draw_ids))
    ).all()
    names = {row.id: row.name for row in draw_rows}
    statuses = {row.id: str(row.status) for row in draw_rows}
    prize_rows = session.execute(
        select(LotteryPrize.id, LotteryPrize.name).where(LotteryPrize.id.in_({w.prize_id for w in wins}))
    ).all()
    prizes = {row.id: row.name for row in prize_rows}
    member_row = get_member(session, workspace_id=ws, customer_id=customer_id)
    context: dict[str, Any] = {
        "draws": draws,
        "prizes_by_draw": {d.id: service.prizes_of(session, d.id) for d in draws},
        "counts": counts,
        "next_n": next_n,
        "entries": mine,
        "wins": wins,
        "draw_names": names,
        "draw_statuses": statuses,
        "prize_names": prizes,
        "balance": member_row.points_balance if member_row else 0,
        "error": error,
        "entered": entered,
    }
    return render_member(request, session, member, "member/lottery.html", context, tab="home", status_code=status_code)


@router.get("/lottery")
def lottery_page(request: Request, member: MemberDep, entered: int | None = None) -> Response:
    """Open draws with their prizes, an enter button per draw, my tickets and wins."""
    with member_transaction(request, member, read_only=True) as session:
        return _page(request, session, member, entered=entered)


@router.post("/lottery/{draw_id}/enter")
def enter_draw(request: Request, draw_id: int, member: MemberDep, form: FormDep) -> Response:
    """Spend points for a ticket; the form's `n` makes a double submit one entry."""
    _ = translator(request)
    n_text = form.get("n", "")
    n = int(n_text) if n_text.isascii() and n_text.isdigit() and len(n_text) <= 4 else 0
    if not 1 <= draw_id <= MAX_ID:
        raise DrawNotOpen("unknown draw")
    try:
        with member_transaction(request, member) as session:
            entries.enter_with_points(
                session,
                workspace_id=member.workspace_id,
                draw_id=draw_id,
                customer_id=member.customer_id,
                n=n,
                clock=clock_of(request),
            )
    except DomainError as exc:
        messages = {
            InsufficientPoints: _("积分不足，无法参与抽奖"),
            EntryLimitReached: _("已达参与次数上限"),
            DrawNotOpen: _("抽奖未开放或已结束"),
        }
        message = next((text for kind, text in messages.items() if isinstance(exc, kind)), _("操作未完成"))
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        with member_transaction(request, member, read_only=True) as session:
            return _page(request, session, member, error=message, status_code=status)
    return see_other(f"/m/lottery?entered={draw_id}")
