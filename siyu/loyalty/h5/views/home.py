"""The member's home: tier card with progress to the next tier, balance, expiring points, quick links."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from siyu.community.koc.service import approved_koc
from siyu.kit.clock import Clock
from siyu.loyalty.h5 import reading
from siyu.loyalty.h5.views.common import (
    MemberDep,
    MemberRoute,
    clock_of,
    member_transaction,
    render_member,
    translator,
    yuan,
)
from siyu.models import LoyaltyProgram, Member, Tier, TierBasis, TierWindow

router = APIRouter(route_class=MemberRoute)


@dataclass(frozen=True)
class TierCard:
    """The tier card as the member reads it."""

    name: str | None
    color: str | None
    basis: str
    """"spend" (fen) or "points"."""
    qualifying_value: int
    window_label: str
    next_name: str | None
    to_next: int | None
    percent: int
    """Progress to the next tier, 0..100 (100 at the top)."""
    paid_name: str | None
    paid_until: datetime | None
    grace_until: datetime | None
    benefits: list[str]


def benefit_lines(tier: Tier | None, _: Any) -> list[str]:
    """What the tier gives, in the member's words."""
    if tier is None:
        return []
    lines: list[str] = []
    if tier.points_multiplier_pct and tier.points_multiplier_pct != 100:
        lines.append(_("消费积分 {times} 倍").format(times=f"{tier.points_multiplier_pct / 100:g}"))
    benefits = dict(tier.benefits or {})
    price_pct = benefits.get("member_price_pct")
    if isinstance(price_pct, int) and 0 < price_pct < 100:
        lines.append(_("会员价 {discount} 折").format(discount=f"{price_pct / 10:g}"))
    if benefits.get("free_shipping"):
        lines.append(_("包邮"))
    if benefits.get("birthday_coupon_template_id"):
        lines.append(_("生日礼券"))
    if benefits.get("welcome_coupon_template_ids"):
        lines.append(_("升级礼包"))
    if benefits.get("priority_service"):
        lines.append(_("专属客服"))
    return lines


def _percent(value: int, target: int | None) -> int:
    if target is None or target <= 0:
        return 100
    return max(0, min(100, value * 100 // target))


def tier_card(session: Session, member: Member | None, *, workspace_id: int, clock: Clock, _: Any) -> TierCard:
    """The member's tier and progress (C1's rules); a customer without a member row yet stands in
    the base tier with nothing qualifying, so the next tier needs its whole threshold."""
    if member is not None:
        from siyu.loyalty.tiers.service import tier_progress

        progress = tier_progress(session, member=member, clock=clock)
        tier = progress.tier
        return TierCard(
            name=tier.name if tier else None,
            color=tier.color if tier else None,
            basis=progress.basis,
            qualifying_value=progress.qualifying_value,
            window_label=progress.window.label,
            next_name=progress.next_tier.name if progress.next_tier else None,
            to_next=progress.to_next,
            percent=_percent(progress.qualifying_value, progress.next_tier.threshold if progress.next_tier else None),
            paid_name=progress.paid_tier.name if progress.paid_tier else None,
            paid_until=progress.paid_until,
            grace_until=progress.grace_until,
            benefits=benefit_lines(tier, _),
        )
    from siyu.loyalty.tiers import rules

    # Read, never create, the program: a GET writes nothing (defaults match `get_program`'s).
    program = session.scalar(select(LoyaltyProgram).where(LoyaltyProgram.workspace_id == workspace_id))
    if program is None:
        program = LoyaltyProgram(
            workspace_id=workspace_id,
            tier_basis=TierBasis.SPEND,
            tier_window=TierWindow.ROLLING,
            tier_window_days=365,
        )
    window = rules.window(program, clock.now(), reading.zone_of(session, workspace_id))
    base = reading.base_tier(session, workspace_id)
    next_tier = session.scalar(
        select(Tier)
        .where(Tier.workspace_id == workspace_id, Tier.is_paid.is_(False), Tier.rank > 0)
        .order_by(Tier.rank)
        .limit(1)
    )
    return TierCard(
        name=base.name if base else None,
        color=base.color if base else None,
        basis=str(program.tier_basis),
        qualifying_value=0,
        window_label=window.label,
        next_name=next_tier.name if next_tier else None,
        to_next=next_tier.threshold if next_tier else None,
        percent=0 if next_tier else 100,
        paid_name=None,
        paid_until=None,
        grace_until=None,
        benefits=benefit_lines(base, _),
    )


def amount_text(basis: str, value: int, _: Any) -> str:
    """Fen as ¥, points as 积分."""
    if basis == "spend":
        return _("¥{amount}").format(amount=yuan(value))
    return _("{points} 积分").format(points=f"{value:,}")


@router.get("/")
def home(request: Request, member: MemberDep) -> Response:
    """Tier card, balance, points expiring soon, check-in status and quick links."""
    clock = clock_of(request)
    with member_transaction(request, member, read_only=True) as session:
        _ = translator(request)
        row = reading.member_of(session, workspace_id=member.workspace_id, customer_id=member.customer_id)
        card = tier_card(session, row, workspace_id=member.workspace_id, clock=clock, _=_)
        days = reading.notice_days(session, member.workspace_id)
        today = reading.local_day(session, member.workspace_id, clock)
        return render_member(
            request,
            session,
            member,
            "member/home.html",
            {
                "card": card,
                "amount_text": lambda value: amount_text(card.basis, value, _),
                "balance": reading.available_points(session, row, clock=clock),
                "expiring": reading.expiring_points(session, row, days=days, clock=clock),
                "notice_days": days,
                "checked_in_today": row is not None and row.last_checkin_on == today,
                "streak": row.checkin_streak if row is not None else 0,
                "unused_coupons": reading.unused_coupon_count(
                    session, workspace_id=member.workspace_id, customer_id=member.customer_id, clock=clock
                ),
                "is_koc": approved_koc(session, workspace_id=member.workspace_id, customer_id=member.customer_id)
                is not None,
            },
            tab="home",
        )
