"""JSON API of community lottery: draws and prizes, opening, entries (tasks, campaigns), drawing, winners."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from siyu.auth.permissions import Scope
from siyu.community.lottery import drawing, entries, service
from siyu.community.lottery.errors import InvalidDraw
from siyu.community.lottery.schemas import DrawIn, EntryIn
from siyu.customers.repository import get_visible
from siyu.models import DrawStatus, EntrySource, LotteryDraw, LotteryEntry, LotteryPrize, LotteryWin
from siyu.web.deps import Ctx, IdPath, require

router = APIRouter(prefix="/api/v1", tags=["lottery"])
Reader = Annotated[Ctx, Depends(require(Scope.GROWTH_READ))]
Writer = Annotated[Ctx, Depends(require(Scope.GROWTH_WRITE))]


class PrizeRead(BaseModel):
    id: int
    position: int
    name: str
    stock: int
    winners: int | None
    probability_ppm: int | None
    points: int
    coupon_template_id: int | None
    awarded_count: int


class DrawRead(BaseModel):
    id: int
    name: str
    description: str
    method: str
    status: str
    entry_points: int | None
    max_entries_per_member: int
    one_win_per_customer: bool
    opens_at: datetime | None
    closes_at: datetime | None
    commitment: str | None
    seed: str | None
    """Revealed only once drawn."""
    entries_digest: str | None
    drawn_at: datetime | None
    notify_channel_account_id: int | None
    notify_content_id: int | None
    entries: int
    prizes: list[PrizeRead]
    verify_url: str
    created_at: datetime
    updated_at: datetime


class EntryRead(BaseModel):
    id: int
    draw_id: int
    customer_id: int
    ticket_no: int
    source: str
    source_ref: str | None
    created_at: datetime


class WinRead(BaseModel):
    id: int
    draw_id: int
    prize_id: int
    entry_id: int
    customer_id: int
    points_entry_id: int | None
    coupon_id: int | None
    delivery_id: int | None
    award_error: str | None
    notify_error: str | None


def prize_read(p: LotteryPrize) -> PrizeRead:
    return PrizeRead(
        id=p.id,
        position=p.position,
        name=p.name,
        stock=p.stock,
        winners=p.winners,
        probability_ppm=p.probability_ppm,
        points=p.points,
        coupon_template_id=p.coupon_template_id,
        awarded_count=p.awarded_count,
    )


def draw_read(ctx: Ctx, draw: LotteryDraw) -> DrawRead:
    return DrawRead(
        id=draw.id,
        name=draw.name,
        description=draw.description,
        method=str(draw.method),
        status=str(draw.status),
        entry_points=draw.entry_points,
        max_entries_per_member=draw.max_entries_per_member,
        one_win_per_customer=draw.one_win_per_customer,
        opens_at=draw.opens_at,
        closes_at=draw.closes_at,
        commitment=draw.commitment,
        seed=draw.seed if draw.status == DrawStatus.DRAWN else None,
        entries_digest=draw.entries_digest,
        drawn_at=draw.drawn_at,
        notify_channel_account_id=draw.notify_channel_account_id,
        notify_content_id=draw.notify_content_id,
        entries=service.entry_count(ctx.session, draw.id),
        prizes=[prize_read(p) for p in service.prizes_of(ctx.session, draw.id)],
        verify_url=f"/lottery/{draw.id}/verify",
        created_at=draw.created_at,
        updated_at=draw.updated_at,
    )


def entry_read(e: LotteryEntry) -> EntryRead:
    return EntryRead(
        id=e.id,
        draw_id=e.draw_id,
        customer_id=e.customer_id,
        ticket_no=e.ticket_no,
        source=str(e.source),
        source_ref=e.source_ref,
        created_at=e.created_at,
    )


def win_read(w: LotteryWin) -> WinRead:
    return WinRead(
        id=w.id,
        draw_id=w.draw_id,
        prize_id=w.prize_id,
        entry_id=w.entry_id,
        customer_id=w.customer_id,
        points_entry_id=w.points_entry_id,
        coupon_id=w.coupon_id,
        delivery_id=w.delivery_id,
        award_error=w.award_error,
        notify_error=w.notify_error,
    )


@router.get("/lottery/draws")
def list_draws(ctx: Reader, status: Annotated[DrawStatus | None, Query()] = None) -> list[DrawRead]:
    """Draws newest first (optionally one status)."""
    return [
        draw_read(ctx, d) for d in service.list_draws(ctx.session, workspace_id=ctx.actor.workspace_id, status=status)
    ]


@router.post("/lottery/draws", status_code=201)
def create_draw(ctx: Writer, body: DrawIn) -> DrawRead:
    """Create a draft draw with its prizes."""
    return draw_read(ctx, service.create_draw(ctx.session, actor=ctx.actor, data=body, clock=ctx.clock))


@router.get("/lottery/draws/{draw_id}")
def get_draw(ctx: Reader, draw_id: IdPath) -> DrawRead:
    """One draw (the seed only once drawn)."""
    return draw_read(ctx, service.get_draw(ctx.session, workspace_id=ctx.actor.workspace_id, draw_id=draw_id))


@router.put("/lottery/draws/{draw_id}")
def update_draw(ctx: Writer, draw_id: IdPath, body: DrawIn) -> DrawRead:
    """Replace a draft draw's settings and prizes (409 once open)."""
    return draw_read(
        ctx, service.update_draw(ctx.session, actor=ctx.actor, draw_id=draw_id, data=body, clock=ctx.clock)
    )


@router.post("/lottery/draws/{draw_id}/open")
def open_draw(ctx: Writer, draw_id: IdPath) -> DrawRead:
    """Open for entries and publish the commitment."""
    return draw_read(ctx, service.open_draw(ctx.session, actor=ctx.actor, draw_id=draw_id, clock=ctx.clock))


@router.post("/lottery/draws/{draw_id}/cancel")
def cancel_draw(ctx: Writer, draw_id: IdPath) -> DrawRead:
    """Cancel a draft or open draw."""
    return draw_read(ctx, service.cancel_draw(ctx.session, actor=ctx.actor, draw_id=draw_id, clock=ctx.clock))


@router.post("/lottery/draws/{draw_id}/draw")
def run_draw(ctx: Writer, draw_id: IdPath) -> DrawRead:
    """Draw now: freeze entries, pick and award winners, reveal the seed."""
    return draw_read(ctx, drawing.run_draw(ctx.session, actor=ctx.actor, draw_id=draw_id, clock=ctx.clock))


@router.get("/lottery/draws/{draw_id}/entries")
def list_entries(ctx: Reader, draw_id: IdPath) -> list[EntryRead]:
    """The draw's tickets in ticket order."""
    service.get_draw(ctx.session, workspace_id=ctx.actor.workspace_id, draw_id=draw_id)
    return [entry_read(e) for e in entries.draw_entries(ctx.session, draw_id=draw_id)]


API_KEY_PREFIX = "api:"


@router.post("/lottery/draws/{draw_id}/entries", status_code=201)
def create_entry(ctx: Writer, draw_id: IdPath, body: EntryIn) -> EntryRead:
    """Grant a ticket for a task or campaign (free of points; idempotent on the key)."""
    get_visible(ctx.session, ctx.actor, body.customer_id)  # staff may grant only to their own customers
    source = body.source if body.source in (EntrySource.TASK, EntrySource.CAMPAIGN) else EntrySource.TASK
    if not body.idempotency_key.strip():
        raise InvalidDraw("idempotency_key must not be blank", details={"field": "idempotency_key"})
    entry = entries.enter(
        ctx.session,
        workspace_id=ctx.actor.workspace_id,
        draw_id=draw_id,
        customer_id=body.customer_id,
        source=source,
        source_ref=body.source_ref,
        # the caller's keys live under `api:`, apart from the keys the system writes itself
        # (`redemption:{id}`, `lottery:{draw}:{customer}:{n}`), so they can never collide
        idempotency_key=f"{API_KEY_PREFIX}{body.idempotency_key.strip()}",
        clock=ctx.clock,
    )
    return entry_read(entry)


@router.get("/lottery/draws/{draw_id}/wins")
def list_wins(ctx: Reader, draw_id: IdPath) -> list[WinRead]:
    """The draw's winners."""
    service.get_draw(ctx.session, workspace_id=ctx.actor.workspace_id, draw_id=draw_id)
    return [win_read(w) for w in service.wins_of(ctx.session, draw_id)]
