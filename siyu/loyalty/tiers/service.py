"""Members' tiers: progress to the next tier, upgrades the moment a member qualifies, paid tiers,
changes by hand, and undoing an upgrade whose order was refunded.

A member has an *earned* tier (`earned_tier_id`: reached by spend or points, or set by hand) and
maybe a *paid* tier (`paid_tier_id` until `paid_tier_until`); the tier they have (`tier_id`) is the
higher-ranked of the two. Every change is a `TierChange` row: qualified / refund / review_downgrade /
manual rows name the earned tier before and after, paid / paid_expired rows the tier the member had
before and after. Downgrades happen only at reviews (`siyu.loyalty.tiers.review`).

Callers hold the member's row lock (`members.lock_member` / `ensure_member`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.customers.repository import get_visible
from siyu.kit.clock import Clock, as_utc
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.loyalty.errors import InvalidTier, TierNotFound
from siyu.loyalty.members import ensure_member
from siyu.loyalty.program import brand_zone, get_program
from siyu.loyalty.tiers import rules
from siyu.models import CouponOffer, LoyaltyProgram, Member, Tier, TierBasis, TierChange, TierChangeReason


@dataclass(frozen=True)
class TierProgress:
    """Where a member stands: the tier they have, what they qualify with, and what the next tier needs."""

    tier: Tier | None
    earned_tier: Tier | None
    paid_tier: Tier | None
    paid_until: datetime | None
    basis: str
    """"spend" (fen) or "points"."""
    qualifying_value: int
    window: rules.Window
    next_tier: Tier | None
    """The next earned tier above the earned one (None at the top)."""
    to_next: int | None
    """What is still missing to reach `next_tier` (fen or points); None at the top."""
    grace_until: datetime | None
    """Set when a review found the member below their earned tier: the downgrade comes after it."""


def _tier(session: Session, workspace_id: int, tier_id: int | None) -> Tier | None:
    if tier_id is None:
        return None
    tier = session.get(Tier, tier_id)  # the identity map first: tiers are read per order
    return tier if tier is not None and tier.workspace_id == workspace_id else None


def earned_tier_of(session: Session, member: Member) -> Tier | None:
    """The member's earned tier (members never touched by a tier change: the tier they were given)."""
    tier = _tier(session, member.workspace_id, member.earned_tier_id or member.tier_id)
    if tier is not None and tier.is_paid:  # a paid tier is never an earned one
        return _tier(session, member.workspace_id, _base_tier_id(session, member.workspace_id))
    return tier


def paid_tier_of(session: Session, member: Member, now: datetime) -> Tier | None:
    """The member's paid tier while it is valid."""
    if member.paid_tier_id is None or member.paid_tier_until is None or as_utc(member.paid_tier_until) <= now:
        return None
    return _tier(session, member.workspace_id, member.paid_tier_id)


def _base_tier_id(session: Session, workspace_id: int) -> int | None:
    return session.scalar(select(Tier.id).where(Tier.workspace_id == workspace_id, Tier.rank == 0))


def higher_tier(a: Tier | None, b: Tier | None) -> Tier | None:
    """The higher-ranked of two tiers (either may be None)."""
    if a is None or b is None:
        return a or b
    return a if a.rank >= b.rank else b


def refresh_effective(session: Session, member: Member, now: datetime) -> None:
    """Set `tier_id` to the higher of the earned and a valid paid tier."""
    effective = higher_tier(earned_tier_of(session, member), paid_tier_of(session, member, now))
    new_id = effective.id if effective else None
    if new_id != member.tier_id:
        member.tier_id = new_id
        member.tier_since = now
    member.updated_at = now


def change_earned_tier(
    session: Session,
    member: Member,
    *,
    to: Tier | None,
    reason: TierChangeReason,
    detail: str | None,
    source_ref: str | None,
    clock: Clock,
    actor: str | None = None,
    idempotency_key: str | None = None,
    flush: bool = True,
) -> TierChange:
    """Move the member's earned tier, record why, and refresh the tier they have (`flush=False`: the
    change is written with the session's next flush, for batches that make many)."""
    now = clock.now()
    before = earned_tier_of(session, member)
    member.earned_tier_id = to.id if to else None
    member.grace_until = None  # a grace period belongs to the tier it was given in
    refresh_effective(session, member, now)
    change = TierChange(
        workspace_id=member.workspace_id,
        member_id=member.id,
        from_tier_id=before.id if before else None,
        to_tier_id=to.id if to else None,
        reason=reason,
        detail=(detail or "")[:300] or None,
        source_ref=source_ref,
        actor=actor,
        idempotency_key=idempotency_key,
        changed_at=now,
    )
    session.add(change)
    if flush:
        session.flush()
    return change


def welcome(session: Session, member: Member, tier: Tier, clock: Clock) -> None:
    """The tier-welcome pack (coupons named in the tier's benefits), issued by the coupons area."""
    from siyu.commerce.coupons.offers import issue_tier_welcome

    issue_tier_welcome(
        session, workspace_id=member.workspace_id, customer_id=member.customer_id, tier_id=tier.id, clock=clock
    )


def tier_progress(session: Session, *, member: Member, clock: Clock) -> TierProgress:
    """The member's tier, qualifying value in the program's window, and the distance to the next tier."""
    now = clock.now()
    program = get_program(session, member.workspace_id, clock=clock)
    win = rules.window(program, now, brand_zone(session, member.workspace_id))
    value = rules.qualifying_values(session, program, [member], win)[member.id]
    earned = earned_tier_of(session, member)
    paid = paid_tier_of(session, member, now)
    ladder = rules.earned_tiers(session, member.workspace_id)
    floor_rank = earned.rank if earned else -1
    next_tier = next((t for t in ladder if t.rank > floor_rank), None)
    return TierProgress(
        tier=higher_tier(earned, paid),
        earned_tier=earned,
        paid_tier=paid,
        paid_until=member.paid_tier_until if paid else None,
        basis=str(program.tier_basis),
        qualifying_value=value,
        window=win,
        next_tier=next_tier,
        to_next=max(next_tier.threshold - value, 0) if next_tier else None,
        grace_until=member.grace_until,
    )


def evaluate_tier(
    session: Session, *, member: Member, clock: Clock, source_ref: str | None = None
) -> TierChange | None:
    """Upgrade the member at once if their qualifying value reaches a higher earned tier (never
    downgrade: that waits for a review); a member in grace who qualifies again leaves grace.
    Returns the change recorded, if any. Call after anything that raises the qualifying value."""
    now = clock.now()
    ladder = rules.earned_tiers(session, member.workspace_id)
    earned = earned_tier_of(session, member)
    if not ladder or (earned is not None and member.grace_until is None and all(t.rank <= earned.rank for t in ladder)):
        return None  # nothing to reach: skip the qualifying query
    program = get_program(session, member.workspace_id, clock=clock)
    win = rules.window(program, now, brand_zone(session, member.workspace_id))
    value = rules.qualifying_values(session, program, [member], win)[member.id]
    return upgrade_if_met(
        session, member=member, program=program, ladder=ladder, win=win, value=value, clock=clock, source_ref=source_ref
    )


def upgrade_if_met(
    session: Session,
    *,
    member: Member,
    program: LoyaltyProgram,
    ladder: Sequence[Tier],
    win: rules.Window,
    value: int,
    clock: Clock,
    source_ref: str | None,
    welcomes: Callable[[Tier], bool] | None = None,
    flush: bool = True,
) -> TierChange | None:
    """`evaluate_tier` with what it reads given: the earned tiers (`rules.earned_tiers`), the window
    and the member's qualifying value in it. Batches compute those once for many members, pass
    `welcomes` (`welcome_check`) to skip looking for a welcome pack a tier does not have, and
    `flush=False` to write the changes with the session's next flush."""
    earned = earned_tier_of(session, member)
    met = rules.tier_met(ladder, value)
    if met is None:
        return None
    if earned is not None and met.rank <= earned.rank:
        if member.grace_until is not None and met.rank == earned.rank:
            member.grace_until = None
        return None
    detail = (
        f"{win.label}{basis_label(program)} {rules.describe(program, value)} ≥ {rules.describe(program, met.threshold)}"
    )
    change = change_earned_tier(
        session,
        member,
        to=met,
        reason=TierChangeReason.QUALIFIED,
        detail=detail,
        source_ref=source_ref,
        clock=clock,
        flush=flush,
    )
    if welcomes is None or welcomes(met):
        welcome(session, member, met, clock)
    return change


def welcome_check(session: Session, workspace_id: int) -> Callable[[Tier], bool]:
    """Whether reaching a tier can issue a welcome pack (`welcome`): an active tier-welcome offer
    template for it, or templates named in its benefits. Read once, for a batch of upgrades."""
    from siyu.commerce.coupons.offers import offer_templates

    offered = {
        t.offer_settings.get("tier_id") for t in offer_templates(session, workspace_id, CouponOffer.TIER_WELCOME)
    }
    return lambda tier: tier.id in offered or bool((tier.benefits or {}).get("welcome_coupon_template_ids"))


def basis_label(program: LoyaltyProgram) -> str:
    """What the program qualifies on, as the detail of a tier change reads it."""
    return "获得积分" if program.tier_basis == TierBasis.POINTS else "消费"


def undo_order_upgrade(
    session: Session, *, member: Member, order_id: int, refund_id: int, clock: Clock
) -> TierChange | None:
    """After a refund: if the order's upgrade is still the member's earned tier and the qualifying value
    no longer reaches it, go back to the highest tier met now, but never below the tier the member
    had before that order (a downgrade below it waits for a review)."""
    upgrade = session.scalar(
        select(TierChange)
        .where(
            TierChange.member_id == member.id,
            TierChange.source_ref == f"order:{order_id}",
            TierChange.reason == TierChangeReason.QUALIFIED,
        )
        .order_by(TierChange.id.desc())
        .limit(1)
    )
    earned = earned_tier_of(session, member)
    if upgrade is None or earned is None or earned.id != upgrade.to_tier_id:
        return None
    now = clock.now()
    program = get_program(session, member.workspace_id, clock=clock)
    win = rules.window(program, now, brand_zone(session, member.workspace_id))
    value = rules.qualifying_values(session, program, [member], win)[member.id]
    if value >= earned.threshold:
        return None
    before = _tier(session, member.workspace_id, upgrade.from_tier_id)
    met = rules.tier_met(rules.earned_tiers(session, member.workspace_id), value)
    target = higher_tier(met, before)
    if target is not None and target.rank >= earned.rank:
        return None
    shown = rules.describe(program, value), rules.describe(program, earned.threshold)
    detail = f"退款后{win.label}{basis_label(program)} {shown[0]} < {shown[1]}"
    return change_earned_tier(
        session,
        member,
        to=target,
        reason=TierChangeReason.REFUND,
        detail=detail,
        source_ref=f"refund:{refund_id}",
        clock=clock,
    )


def buy_paid_tier(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int,
    tier_id: int,
    idempotency_key: str,
    clock: Clock,
    actor_label: str | None = None,
) -> Member:
    """Record a paid tier bought (付费会员卡): it lasts `validity_days` from now, or from the end of the
    same card still valid (a renewal). Idempotent on the key: a retry changes nothing. Payment is the
    order's business; this only grants the tier."""
    if not idempotency_key or len(idempotency_key) > 190:
        raise InvalidTier("idempotency_key must be 1 to 190 characters", details={"field": "idempotency_key"})
    tier = _tier(session, workspace_id, tier_id)
    if tier is None:
        raise TierNotFound(f"tier {tier_id} not found", details={"tier_id": tier_id})
    if not tier.is_paid or not tier.validity_days:
        raise InvalidTier(f"tier {tier.name!r} is not a paid tier", details={"field": "tier_id"})
    member = ensure_member(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock)
    key = f"paid:{idempotency_key}"
    if session.scalar(
        select(TierChange.id).where(TierChange.workspace_id == workspace_id, TierChange.idempotency_key == key)
    ):
        return member
    now = clock.now()
    before = _tier(session, workspace_id, member.tier_id)
    current = paid_tier_of(session, member, now)
    start = as_utc(member.paid_tier_until) if current is not None and current.id == tier.id else now  # type: ignore[arg-type]
    if member.earned_tier_id is None:
        earned = earned_tier_of(session, member)
        member.earned_tier_id = earned.id if earned else None
    member.paid_tier_id = tier.id
    member.paid_tier_until = start + timedelta(days=tier.validity_days)
    refresh_effective(session, member, now)
    after = _tier(session, workspace_id, member.tier_id)
    renewed = start != now
    until = member.paid_tier_until.astimezone(brand_zone(session, workspace_id)).date().isoformat()
    session.add(
        TierChange(
            workspace_id=workspace_id,
            member_id=member.id,
            from_tier_id=before.id if before else None,
            to_tier_id=after.id if after else None,
            reason=TierChangeReason.PAID,
            detail=f"{'续费' if renewed else '购买'} {tier.name}，有效至 {until}",
            source_ref=f"tier:{tier.id}",
            actor=actor_label,
            idempotency_key=key,
            changed_at=now,
        )
    )
    session.flush()
    if not renewed:
        welcome(session, member, tier, clock)
    return member


def expire_paid_tiers(session: Session, *, workspace_id: int, clock: Clock, limit: int = 1000) -> int:
    """End paid tiers whose validity has passed (members in id order, locked); returns how many ended."""
    now = clock.now()
    members = session.scalars(
        select(Member)
        .where(Member.workspace_id == workspace_id, Member.paid_tier_id.is_not(None), Member.paid_tier_until <= now)
        .order_by(Member.id)
        .limit(limit)
        .with_for_update()
    ).all()
    for member in members:
        before = _tier(session, workspace_id, member.tier_id)
        paid = _tier(session, workspace_id, member.paid_tier_id)
        if member.earned_tier_id is None:
            earned = earned_tier_of(session, member)
            member.earned_tier_id = earned.id if earned else None
        member.paid_tier_id = None
        member.paid_tier_until = None
        refresh_effective(session, member, now)
        after = _tier(session, workspace_id, member.tier_id)
        session.add(
            TierChange(
                workspace_id=workspace_id,
                member_id=member.id,
                from_tier_id=before.id if before else None,
                to_tier_id=after.id if after else None,
                reason=TierChangeReason.PAID_EXPIRED,
                detail=f"{paid.name if paid else '付费等级'} 已到期",
                source_ref=f"tier:{paid.id}" if paid else None,
                actor=None,
                changed_at=now,
            )
        )
    session.flush()
    return len(members)


def set_tier(
    session: Session,
    *,
    actor: Actor,
    customer_id: int,
    tier_id: int,
    reason: str,
    clock: Clock,
    idempotency_key: str | None = None,
) -> TierChange:
    """Put a member in an earned tier by hand (with the reason), audited. Reviews may later move them
    down again if they do not qualify. Idempotent when a key is given."""
    actor.require(Scope.LOYALTY_ADJUST)
    if not reason or not reason.strip():
        raise InvalidTier("a reason is required to change a tier by hand", details={"field": "reason"})
    customer = get_visible(session, actor, customer_id)
    tier = _tier(session, actor.workspace_id, tier_id)
    if tier is None:
        raise TierNotFound(f"tier {tier_id} not found", details={"tier_id": tier_id})
    if tier.is_paid:
        raise InvalidTier("a paid tier is bought, not set by hand: use paid-tier", details={"field": "tier_id"})
    key = f"manual:{idempotency_key}" if idempotency_key else None
    if key and len(key) > 200:
        raise InvalidTier("idempotency_key must be at most 190 characters", details={"field": "idempotency_key"})
    member = ensure_member(session, workspace_id=actor.workspace_id, customer_id=customer.id, clock=clock)
    if key and (
        done := session.scalar(
            select(TierChange).where(TierChange.workspace_id == actor.workspace_id, TierChange.idempotency_key == key)
        )
    ):
        return done
    before = earned_tier_of(session, member)
    change = change_earned_tier(
        session,
        member,
        to=tier,
        reason=TierChangeReason.MANUAL,
        detail=reason.strip(),
        source_ref=None,
        clock=clock,
        actor=actor.label,
        idempotency_key=key,
    )
    record(
        session,
        actor,
        action="member.tier_set",
        entity_type="member",
        entity_id=member.id,
        clock=clock,
        before={"tier_id": before.id if before else None},
        after={"tier_id": tier.id, "reason": reason.strip()},
    )
    return change


def tier_changes(session: Session, *, member: Member, cursor: str | None = None, limit: int = 50) -> Page[TierChange]:
    """The member's tier history, newest first."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(TierChange).where(TierChange.workspace_id == member.workspace_id, TierChange.member_id == member.id)
    if cursor:
        query = query.where(TierChange.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(TierChange.id.desc()).limit(limit + 1)))
    return Page(items=rows[:limit], next_cursor=encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)
