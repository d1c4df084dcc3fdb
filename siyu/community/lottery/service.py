"""Draws and prizes: set-up, opening (seed and commitment), cancelling, reading.

A draw is edited only while it is a draft. Opening generates a 32-byte random seed and publishes
`commitment = sha256(seed hex)`; the seed stays secret until the draw is drawn (`drawing.py`).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.community.lottery.errors import DrawNotFound, DrawStateConflict, InvalidDraw
from siyu.community.lottery.fairness import PPM, commitment_of
from siyu.community.lottery.schemas import DrawIn
from siyu.kit.clock import Clock, as_utc
from siyu.loyalty.members import lock_member
from siyu.loyalty.points.ledger import restore_spend
from siyu.models import (
    ChannelAccount,
    ContentItem,
    CouponTemplate,
    DrawMethod,
    DrawStatus,
    EntrySource,
    LotteryDraw,
    LotteryEntry,
    LotteryPrize,
    LotteryWin,
    Member,
    PointsEntry,
    Redemption,
)


def get_draw(session: Session, *, workspace_id: int, draw_id: int, for_update: bool = False) -> LotteryDraw:
    """A draw of the workspace, or `DrawNotFound` (optionally locked: entries and the draw take this lock)."""
    query = select(LotteryDraw).where(LotteryDraw.id == draw_id, LotteryDraw.workspace_id == workspace_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    draw = session.scalar(query)
    if draw is None:
        raise DrawNotFound(f"draw {draw_id} not found", details={"draw_id": draw_id})
    return draw


def list_draws(session: Session, *, workspace_id: int, status: DrawStatus | None = None) -> list[LotteryDraw]:
    """Draws newest first."""
    query = select(LotteryDraw).where(LotteryDraw.workspace_id == workspace_id)
    if status is not None:
        query = query.where(LotteryDraw.status == status)
    return list(session.scalars(query.order_by(LotteryDraw.id.desc()).limit(500)))


def prizes_of(session: Session, draw_id: int) -> list[LotteryPrize]:
    """The draw's prizes in prize order."""
    return list(
        session.scalars(
            select(LotteryPrize).where(LotteryPrize.draw_id == draw_id).order_by(LotteryPrize.position, LotteryPrize.id)
        )
    )


def entry_count(session: Session, draw_id: int) -> int:
    """How many tickets the draw holds."""
    return int(session.scalar(select(func.count()).where(LotteryEntry.draw_id == draw_id)) or 0)


def _in_workspace(session: Session, model: Any, row_id: int | None, workspace_id: int, field: str) -> None:
    if row_id is None:
        return
    row = session.get(model, row_id)
    if row is None or row.workspace_id != workspace_id:
        raise InvalidDraw(f"unknown {field} {row_id}", details={"field": field})


def validate_draw(session: Session, *, workspace_id: int, data: DrawIn) -> None:
    """Cross-field and reference rules (`InvalidDraw` naming the field)."""
    if data.opens_at is not None and data.closes_at is not None and as_utc(data.closes_at) <= as_utc(data.opens_at):
        raise InvalidDraw("closes_at must be after opens_at", details={"field": "closes_at"})
    total_ppm = 0
    for index, prize in enumerate(data.prizes):
        where = f"prizes.{index}"
        if data.method == DrawMethod.FIXED:
            if prize.winners is None:
                raise InvalidDraw("a fixed draw's prize needs winners", details={"field": f"{where}.winners"})
            if prize.winners > prize.stock:
                raise InvalidDraw("winners cannot exceed stock", details={"field": f"{where}.winners"})
        else:
            if prize.probability_ppm is None:
                raise InvalidDraw(
                    "a probability draw's prize needs probability_ppm", details={"field": f"{where}.probability_ppm"}
                )
            total_ppm += prize.probability_ppm
        if prize.points == 0 and prize.coupon_template_id is None and not prize.name.strip():
            raise InvalidDraw("a prize needs a name", details={"field": f"{where}.name"})
        _in_workspace(session, CouponTemplate, prize.coupon_template_id, workspace_id, f"{where}.coupon_template_id")
    if total_ppm > PPM:
        raise InvalidDraw("probabilities add up to more than 100%", details={"field": "prizes"})
    _in_workspace(session, ChannelAccount, data.notify_channel_account_id, workspace_id, "notify_channel_account_id")
    _in_workspace(session, ContentItem, data.notify_content_id, workspace_id, "notify_content_id")


def _fill(draw: LotteryDraw, data: DrawIn) -> None:
    draw.name = data.name.strip()
    draw.description = data.description
    draw.method = data.method
    draw.entry_points = data.entry_points
    draw.max_entries_per_member = data.max_entries_per_member
    draw.one_win_per_customer = data.one_win_per_customer
    draw.opens_at = as_utc(data.opens_at) if data.opens_at else None
    draw.closes_at = as_utc(data.closes_at) if data.closes_at else None
    draw.notify_channel_account_id = data.notify_channel_account_id
    draw.notify_content_id = data.notify_content_id


def _replace_prizes(session: Session, draw: LotteryDraw, data: DrawIn) -> None:
    session.execute(delete(LotteryPrize).where(LotteryPrize.draw_id == draw.id))
    for position, prize in enumerate(data.prizes):
        session.add(
            LotteryPrize(
                workspace_id=draw.workspace_id,
                draw_id=draw.id,
                position=position,
                name=prize.name.strip(),
                stock=prize.stock,
                winners=prize.winners if draw.method == DrawMethod.FIXED else None,
                probability_ppm=prize.probability_ppm if draw.method == DrawMethod.PROBABILITY else None,
                points=prize.points,
                coupon_template_id=prize.coupon_template_id,
                awarded_count=0,
            )
        )
    session.flush()


def snapshot(session: Session, draw: LotteryDraw) -> dict[str, Any]:
    """What the audit log keeps of a draw."""
    return {
        "name": draw.name,
        "method": str(draw.method),
        "status": str(draw.status),
        "entry_points": draw.entry_points,
        "max_entries_per_member": draw.max_entries_per_member,
        "prizes": [
            {"name": p.name, "stock": p.stock, "winners": p.winners, "ppm": p.probability_ppm}
            for p in prizes_of(session, draw.id)
        ],
    }


def create_draw(session: Session, *, actor: Actor, data: DrawIn, clock: Clock) -> LotteryDraw:
    """A new draft draw with its prizes."""
    actor.require(Scope.GROWTH_WRITE)
    validate_draw(session, workspace_id=actor.workspace_id, data=data)
    now = clock.now()
    draw = LotteryDraw(workspace_id=actor.workspace_id, status=DrawStatus.DRAFT, created_at=now, updated_at=now)
    _fill(draw, data)
    session.add(draw)
    session.flush()
    _replace_prizes(session, draw, data)
    record(
        session,
        actor,
        action="lottery.created",
        entity_type="lottery_draw",
        entity_id=draw.id,
        clock=clock,
        after=snapshot(session, draw),
    )
    return draw


def update_draw(session: Session, *, actor: Actor, draw_id: int, data: DrawIn, clock: Clock) -> LotteryDraw:
    """Edit a draft draw (prizes replaced); an open or finished draw is `DrawStateConflict`."""
    actor.require(Scope.GROWTH_WRITE)
    draw = get_draw(session, workspace_id=actor.workspace_id, draw_id=draw_id, for_update=True)
    if draw.status != DrawStatus.DRAFT:
        raise DrawStateConflict("only a draft draw can be edited", details={"status": str(draw.status)})
    validate_draw(session, workspace_id=actor.workspace_id, data=data)
    before = snapshot(session, draw)
    _fill(draw, data)
    draw.updated_at = clock.now()
    _replace_prizes(session, draw, data)
    record(
        session,
        actor,
        action="lottery.updated",
        entity_type="lottery_draw",
        entity_id=draw.id,
        clock=clock,
        before=before,
        after=snapshot(session, draw),
    )
    return draw


def open_draw(session: Session, *, actor: Actor, draw_id: int, clock: Clock) -> LotteryDraw:
    """Draft → open: generate the secret seed and publish its commitment."""
    actor.require(Scope.GROWTH_WRITE)
    draw = get_draw(session, workspace_id=actor.workspace_id, draw_id=draw_id, for_update=True)
    if draw.status == DrawStatus.OPEN:
        return draw
    if draw.status != DrawStatus.DRAFT:
        raise DrawStateConflict("only a draft draw can be opened", details={"status": str(draw.status)})
    if not prizes_of(session, draw.id):
        raise InvalidDraw("a draw needs at least one prize", details={"field": "prizes"})
    seed = secrets.token_bytes(32).hex()
    draw.seed = seed
    draw.commitment = commitment_of(seed)
    draw.status = DrawStatus.OPEN
    draw.updated_at = clock.now()
    record(
        session,
        actor,
        action="lottery.opened",
        entity_type="lottery_draw",
        entity_id=draw.id,
        clock=clock,
        after={"commitment": draw.commitment},
    )
    return draw


def _refundable_spends(session: Session, draw_id: int) -> list[tuple[int, int]]:
    """(lottery entry id, points spend entry id) of the draw's tickets that cost points: a POINTS
    ticket's own spend, and the spend of the redemption behind a REDEMPTION ticket."""
    found: list[tuple[int, int]] = []
    rows = session.execute(
        select(LotteryEntry.id, LotteryEntry.source, LotteryEntry.points_entry_id, LotteryEntry.idempotency_key)
        .where(LotteryEntry.draw_id == draw_id)
        .order_by(LotteryEntry.ticket_no)
    ).all()
    redemption_ids = {
        int(key.removeprefix("redemption:")): entry_id
        for entry_id, source, _spend, key in rows
        if source == EntrySource.REDEMPTION and key.startswith("redemption:") and key[11:].isdigit()
    }
    spends_by_redemption = {
        redemption_id: spend_id
        for redemption_id, spend_id in session.execute(
            select(Redemption.id, Redemption.points_entry_id).where(
                Redemption.id.in_(redemption_ids), Redemption.points_entry_id.is_not(None)
            )
        )
    }
    for entry_id, source, spend_id, key in rows:
        if source == EntrySource.POINTS and spend_id is not None:
            found.append((entry_id, spend_id))
        elif source == EntrySource.REDEMPTION and key.startswith("redemption:") and key[11:].isdigit():
            redemption_spend = spends_by_redemption.get(int(key[11:]))
            if redemption_spend is not None:
                found.append((entry_id, redemption_spend))
    return found


def _members_of(session: Session, spend_ids: list[int]) -> dict[int, int]:
    """The member id of each points spend entry."""
    if not spend_ids:
        return {}
    rows = session.execute(select(PointsEntry.id, PointsEntry.member_id).where(PointsEntry.id.in_(spend_ids)))
    return {spend_id: member_id for spend_id, member_id in rows}


def cancel_draw(session: Session, *, actor: Actor, draw_id: int, clock: Clock) -> LotteryDraw:
    """Cancel a draft or open draw: no winners, and every ticket that cost points gives them back.

    Entries stay recorded. A points ticket's spend and the spend of the rewards-mall redemption
    behind a redemption ticket are restored to their lots (`restore_spend`, key
    `lottery-cancel:{entry id}`, once per spend). Lock order as when entering: the entrants'
    member rows (id order) first, then the draw."""
    actor.require(Scope.GROWTH_WRITE)
    draw = get_draw(session, workspace_id=actor.workspace_id, draw_id=draw_id)
    if draw.status == DrawStatus.CANCELLED:
        return draw
    if draw.status == DrawStatus.DRAWN:
        raise DrawStateConflict("a drawn draw cannot be cancelled", details={"status": str(draw.status)})
    members: dict[int, Member] = {}
    for member_id in sorted(set(_members_of(session, [s for _e, s in _refundable_spends(session, draw.id)]).values())):
        members[member_id] = lock_member(session, actor.workspace_id, member_id)
    draw = get_draw(session, workspace_id=actor.workspace_id, draw_id=draw_id, for_update=True)
    if draw.status == DrawStatus.CANCELLED:
        return draw
    if draw.status == DrawStatus.DRAWN:
        raise DrawStateConflict("a drawn draw cannot be cancelled", details={"status": str(draw.status)})
    before = str(draw.status)
    draw.status = DrawStatus.CANCELLED
    draw.updated_at = clock.now()
    refunds = _refundable_spends(session, draw.id)
    owners = _members_of(session, [spend_id for _entry_id, spend_id in refunds])
    refunded = 0
    for entry_id, spend_id in refunds:
        member_id = owners[spend_id]
        if member_id not in members:
            # entered between the member locks and the draw lock (rare): lock it now
            members[member_id] = lock_member(session, actor.workspace_id, member_id)
        posting = restore_spend(
            session,
            member=members[member_id],
            entry_id=spend_id,
            description=f"抽奖取消：{draw.name}，积分退回",
            idempotency_key=f"lottery-cancel:{entry_id}",
            clock=clock,
            source_ref=f"lottery:{draw.id}",
            actor=actor.label,
        )
        if not posting.replayed:
            refunded += posting.entry.amount
    session.flush()
    record(
        session,
        actor,
        action="lottery.cancelled",
        entity_type="lottery_draw",
        entity_id=draw.id,
        clock=clock,
        before={"status": before},
        after={"status": str(draw.status), "points_refunded": refunded},
    )
    return draw


def wins_of(session: Session, draw_id: int) -> list[LotteryWin]:
    """The draw's wins, in ticket order of the winning entries."""
    return list(
        session.scalars(
            select(LotteryWin)
            .join(LotteryEntry, LotteryEntry.id == LotteryWin.entry_id)
            .where(LotteryWin.draw_id == draw_id)
            .order_by(LotteryEntry.ticket_no)
        )
    )
