"""The rewards mall as a member sees it, and redeeming points for a reward.

A redemption is one transaction (inside a savepoint, so a refusal leaves nothing): lock the member,
then — for a coupon reward — the coupon template, then the reward (the brief's lock order:
customers → members → coupon templates → rewards); check visibility, stock and the per-member
limit; insert the redemption (the unique `(reward, member, slot)` key is the per-member cap; a
cancelled redemption's slot becomes `-id`, freeing it); spend the points through the ledger (key
`redemption:{idempotency_key}`); take one from the stock; issue the coupon. A retry with the same
idempotency key returns the first redemption and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.commerce.coupons.issuing import issue_coupon, lock_template
from siyu.customers.service.timeline import system_event
from siyu.kit.clock import Clock
from siyu.kit.phone import InvalidPhone, normalize_phone
from siyu.loyalty.errors import (
    IdempotencyKeyReused,
    InvalidAddress,
    InvalidReward,
    MemberNotFound,
    OutOfStock,
    RedemptionLimitReached,
    RewardNotFound,
    RewardNotVisible,
)
from siyu.loyalty.members import ensure_member, get_member
from siyu.loyalty.points.ledger import spend
from siyu.loyalty.rewards.catalog import get_reward
from siyu.loyalty.rewards.fulfilment import (
    cancel_redemption,
    deliver_redemption,
    get_redemption,
    list_redemptions,
    ship_redemption,
)
from siyu.models import (
    CouponTemplate,
    CouponTemplateStatus,
    Customer,
    Member,
    PointsLot,
    Redemption,
    RedemptionStatus,
    Reward,
    RewardKind,
    Segment,
    Tier,
)
from siyu.segments.query import execute as run_segment_query
from siyu.segments.service.members import member_ids

__all__ = [
    "RewardView",
    "audience_allows",
    "cancel_redemption",
    "clean_address",
    "deliver_redemption",
    "find_by_key",
    "get_redemption",
    "grant_reward",
    "list_redemptions",
    "mall",
    "member_redemptions",
    "redeem",
    "ship_redemption",
    "spendable_points",
]


@dataclass(frozen=True)
class RewardView:
    """A reward in one member's mall: whether they can redeem it now and, if not, why."""

    reward: Reward
    can_redeem: bool
    reason: str | None
    """None, or why not: "out_of_stock", "limit_reached" (the per-member limit), "insufficient_points"."""
    redeemed: int
    """The member's redemptions of it that were not cancelled."""
    balance: int
    """The member's spendable points (expired lots not counted)."""


def _customer_exists(session: Session, workspace_id: int, customer_id: int) -> None:
    found = session.scalar(
        select(Customer.id).where(
            Customer.workspace_id == workspace_id, Customer.id == customer_id, Customer.merged_into_id.is_(None)
        )
    )
    if found is None:
        raise MemberNotFound(f"customer {customer_id} not found", details={"customer_id": customer_id})


def spendable_points(session: Session, member: Member | None, clock: Clock) -> int:
    """What the member could spend now: their lots' remaining points that have not expired (the
    cached balance may still hold lots the daily job has not expired yet)."""
    if member is None:
        return 0
    total = session.scalar(
        select(func.coalesce(func.sum(PointsLot.remaining), 0)).where(
            PointsLot.member_id == member.id,
            PointsLot.remaining > 0,
            or_(PointsLot.expires_at.is_(None), PointsLot.expires_at > clock.now()),
        )
    )
    return int(total or 0)


def _in_segment(session: Session, segment_id: int, customer_id: int, clock: Clock) -> bool:
    segment = session.get(Segment, segment_id)
    if segment is None or segment.archived_at is not None:
        return False
    statement = member_ids(session, segment, now=clock.now(), extra=Customer.id == customer_id).limit(1)
    return run_segment_query(session, statement).first() is not None


def _base_tier_id(session: Session, workspace_id: int) -> int | None:
    return session.scalar(select(Tier.id).where(Tier.workspace_id == workspace_id, Tier.rank == 0))


def audience_allows(
    session: Session,
    *,
    workspace_id: int,
    tier_ids: Sequence[int | str] | None,
    segment_id: int | None,
    customer_id: int,
    member: Member | None,
    clock: Clock,
) -> bool:
    """The mall's audience rule, for anything that shows to some members only (rewards, resources,
    referral programs): the member's tier among `tier_ids` (empty: every tier; a customer without a
    member row counts as the base tier) and, if `segment_id` is set, the customer in that segment
    (an archived or missing segment lets no one in). `member` is only read when `tier_ids` is set."""
    if tier_ids:
        tier_id = member.tier_id if member is not None else _base_tier_id(session, workspace_id)
        if tier_id not in {int(t) for t in tier_ids}:
            return False
    return segment_id is None or _in_segment(session, segment_id, customer_id, clock)


def is_visible(session: Session, *, reward: Reward, member: Member | None, customer_id: int, clock: Clock) -> bool:
    """Does the member see the reward: `audience_allows` with its `visible_tier_ids` and `visible_segment_id`."""
    return audience_allows(
        session,
        workspace_id=reward.workspace_id,
        tier_ids=reward.visible_tier_ids,
        segment_id=reward.visible_segment_id,
        customer_id=customer_id,
        member=member,
        clock=clock,
    )


def _redeemed_counts(session: Session, member: Member | None) -> dict[int, int]:
    if member is None:
        return {}
    rows = session.execute(
        select(Redemption.reward_id, func.count())
        .where(Redemption.member_id == member.id, Redemption.status != RedemptionStatus.CANCELLED)
        .group_by(Redemption.reward_id)
    ).all()
    return {reward_id: int(count) for reward_id, count in rows}


def _exhausted_templates(session: Session, workspace_id: int, template_ids: list[int | None]) -> set[int]:
    """Coupon templates that can issue no more: archived, or their total stock issued."""
    wanted = {t for t in template_ids if t is not None}
    if not wanted:
        return set()
    rows = session.execute(
        select(CouponTemplate.id, CouponTemplate.status, CouponTemplate.total_stock, CouponTemplate.issued_count).where(
            CouponTemplate.workspace_id == workspace_id, CouponTemplate.id.in_(wanted)
        )
    ).all()
    return {
        template_id
        for template_id, status, total, issued in rows
        if status != CouponTemplateStatus.ACTIVE or (total is not None and issued >= total)
    }


def mall(session: Session, *, workspace_id: int, customer_id: int, clock: Clock) -> list[RewardView]:
    """The active rewards the member sees, in display order, each with can-redeem and why not.
    Reads only (no member row is created)."""
    _customer_exists(session, workspace_id, customer_id)
    member = get_member(session, workspace_id, customer_id)
    rewards = session.scalars(
        select(Reward)
        .where(Reward.workspace_id == workspace_id, Reward.is_active.is_(True))
        .order_by(Reward.sort_order, Reward.id)
    ).all()
    balance = spendable_points(session, member, clock)
    counts = _redeemed_counts(session, member)
    exhausted = _exhausted_templates(session, workspace_id, [r.coupon_template_id for r in rewards])
    views = []
    for reward in rewards:
        if not is_visible(session, reward=reward, member=member, customer_id=customer_id, clock=clock):
            continue
        mine = counts.get(reward.id, 0)
        reason = None
        if (reward.stock is not None and reward.stock <= 0) or reward.coupon_template_id in exhausted:
            reason = "out_of_stock"
        elif reward.per_member_limit is not None and mine >= reward.per_member_limit:
            reason = "limit_reached"
        elif balance < reward.points_price:
            reason = "insufficient_points"
        views.append(
            RewardView(reward=reward, can_redeem=reason is None, reason=reason, redeemed=mine, balance=balance)
        )
    return views


def clean_address(address: dict[str, Any] | None) -> dict[str, str]:
    """A gift's delivery address: a name, a valid phone number (stored E.164) and the address."""
    raw = dict(address or {})
    name = str(raw.get("name") or "").strip()
    if not name or len(name) > 50:
        raise InvalidAddress(
            "the recipient's name is required (at most 50 characters)", details={"field": "address.name"}
        )
    try:
        phone = normalize_phone(str(raw.get("phone") or ""))
    except InvalidPhone as exc:
        raise InvalidAddress("a valid phone number is required", details={"field": "address.phone"}) from exc
    street = str(raw.get("address") or "").strip()
    if not 5 <= len(street) <= 300:
        raise InvalidAddress("the address is required (5 to 300 characters)", details={"field": "address.address"})
    return {"name": name, "phone": phone, "address": street}


def find_by_key(session: Session, workspace_id: int, key: str) -> Redemption | None:
    """The redemption made with an idempotency key, if any."""
    return session.scalar(
        select(Redemption).where(Redemption.workspace_id == workspace_id, Redemption.idempotency_key == key)
    )


def _insert(
    session: Session, *, reward: Reward, member: Member, key: str, address: dict[str, str] | None, clock: Clock
) -> Redemption:
    """Insert the redemption in a free slot; the unique (reward, member, slot) key is the cap.
    The slots in use are read only to pick candidates (cancelled redemptions hold negative ones)."""
    used = set(
        session.scalars(
            select(Redemption.slot).where(
                Redemption.reward_id == reward.id, Redemption.member_id == member.id, Redemption.slot > 0
            )
        )
    )
    if reward.per_member_limit is not None:
        candidates = [slot for slot in range(1, reward.per_member_limit + 1) if slot not in used]
    else:
        candidates = [max(used, default=0) + 1]
    for slot in candidates:
        redemption = Redemption(
            workspace_id=member.workspace_id,
            reward_id=reward.id,
            member_id=member.id,
            slot=slot,
            points=reward.points_price,
            idempotency_key=key,
            status=RedemptionStatus.AWAITING_SHIPMENT if reward.kind == RewardKind.GIFT else RedemptionStatus.COMPLETED,
            address=address,
            created_at=clock.now(),
        )
        try:
            with session.begin_nested():
                session.add(redemption)
                session.flush()
        except IntegrityError:
            continue
        return redemption
    raise RedemptionLimitReached(
        f"already redeemed {reward.name!r} {reward.per_member_limit} time(s), the most a member may",
        details={"reward_id": reward.id, "limit": reward.per_member_limit},
    )


def redeem(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int,
    reward_id: int,
    idempotency_key: str,
    address: dict[str, Any] | None,
    clock: Clock,
) -> Redemption:
    """Spend the member's points on a reward, reserving points and stock in this transaction.

    Refusals, with nothing written: `RewardNotFound` (unknown or inactive), `RewardNotVisible`,
    `InvalidAddress` (gifts), `OutOfStock`, `RedemptionLimitReached`, `InsufficientPoints`, and
    the coupon template's own refusals for coupon rewards. The same key for another reward or
    member is `IdempotencyKeyReused`."""
    key = (idempotency_key or "").strip()
    if not 1 <= len(key) <= 150:
        raise InvalidReward("idempotency_key must be 1 to 150 characters", details={"field": "idempotency_key"})
    with session.begin_nested():
        member = ensure_member(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock)
        if (done := find_by_key(session, workspace_id, key)) is not None:
            if done.member_id != member.id or done.reward_id != reward_id:
                raise IdempotencyKeyReused(
                    f"idempotency key {key!r} was already used for another redemption",
                    details={"field": "idempotency_key", "redemption_id": done.id},
                )
            return done
        reward = get_reward(session, workspace_id=workspace_id, reward_id=reward_id)
        if not reward.is_active:
            raise RewardNotFound(f"reward {reward_id} is not in the mall", details={"reward_id": reward_id})
        if not is_visible(session, reward=reward, member=member, customer_id=customer_id, clock=clock):
            raise RewardNotVisible(
                f"reward {reward_id} is not offered to this member", details={"reward_id": reward_id}
            )
        shipping = clean_address(address) if reward.kind == RewardKind.GIFT else None
        if reward.kind == RewardKind.COUPON and reward.coupon_template_id is not None:
            lock_template(session, workspace_id, reward.coupon_template_id)
        reward = get_reward(session, workspace_id=workspace_id, reward_id=reward_id, for_update=True)
        if not reward.is_active:
            raise RewardNotFound(f"reward {reward_id} is not in the mall", details={"reward_id": reward_id})
        if reward.stock is not None and reward.stock <= 0:
            raise OutOfStock(f"{reward.name!r} is out of stock", details={"reward_id": reward.id})
        redemption = _insert(session, reward=reward, member=member, key=key, address=shipping, clock=clock)
        if reward.points_price > 0:
            posting = spend(
                session,
                member=member,
                points=reward.points_price,
                description=f"兑换：{reward.name}",
                idempotency_key=f"redemption:{key}",
                clock=clock,
                source_ref=f"redemption:{redemption.id}",
            )
            redemption.points_entry_id = posting.entry.id
        _fulfil(
            session,
            reward=reward,
            redemption=redemption,
            customer_id=customer_id,
            coupon_source="reward",
            coupon_key=f"redemption:{key}",
            clock=clock,
        )
    return redemption


def _fulfil(
    session: Session,
    *,
    reward: Reward,
    redemption: Redemption,
    customer_id: int,
    coupon_source: str,
    coupon_key: str,
    clock: Clock,
) -> None:
    """What a written redemption sets off, redeemed or granted: one from the stock, the coupon of a
    coupon reward (source and idempotency key given), the ticket of a lottery-entry reward, and the
    customer's `loyalty.redeemed` timeline event (with the points the redemption cost)."""
    if reward.stock is not None:
        reward.stock -= 1
    reward.redeemed_count += 1
    reward.updated_at = clock.now()
    if reward.kind == RewardKind.COUPON and reward.coupon_template_id is not None:
        coupon = issue_coupon(
            session,
            workspace_id=reward.workspace_id,
            template_id=reward.coupon_template_id,
            customer_id=customer_id,
            source=coupon_source,
            idempotency_key=coupon_key,
            clock=clock,
        )
        redemption.coupon_id = coupon.id
    if reward.kind == RewardKind.LOTTERY_ENTRY and reward.lottery_draw_id is not None:
        from siyu.community.lottery.entries import enter_for_redemption

        enter_for_redemption(session, redemption=redemption, reward=reward, clock=clock)
    session.flush()
    customer = session.get(Customer, customer_id)
    if customer is not None:
        properties = {"reward_id": reward.id, "reward": reward.name, "points": redemption.points}
        system_event(
            session,
            customer,
            "loyalty.redeemed",
            f"loyalty:redemption:{redemption.id}",
            clock.now(),
            clock,
            properties,
        )


def grant_reward(
    session: Session,
    *,
    workspace_id: int,
    customer_id: int,
    reward_id: int,
    idempotency_key: str,
    clock: Clock,
    source: str = "referral",
) -> Redemption:
    """Give a mall reward without points (a referral gift): a redemption at 0 points, fulfilled as
    `redeem` fulfils one (stock, coupon, lottery ticket, timeline event). The stock and the
    per-member limit apply; visibility does not. The coupon of a coupon reward is issued with
    `source` under `idempotency_key` itself. Refusals: `RewardNotFound` (unknown or inactive),
    `OutOfStock`, `RedemptionLimitReached`, the coupon template's and the draw's own; in a savepoint,
    so a refusal leaves nothing. The caller keeps the key unique (no retry lookup here)."""
    with session.begin_nested():
        member = ensure_member(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock)
        reward = get_reward(session, workspace_id=workspace_id, reward_id=reward_id)
        if reward.kind == RewardKind.COUPON and reward.coupon_template_id is not None:
            lock_template(session, workspace_id, reward.coupon_template_id)
        reward = get_reward(session, workspace_id=workspace_id, reward_id=reward_id, for_update=True)
        message, details = f"mall reward {reward.name!r} is not available", {"reward_id": reward.id}
        if not reward.is_active:
            raise RewardNotFound(message, details=details)
        if reward.stock is not None and reward.stock <= 0:
            raise OutOfStock(message, details=details)
        redemption = _insert(session, reward=reward, member=member, key=idempotency_key, address=None, clock=clock)
        redemption.points = 0
        _fulfil(
            session,
            reward=reward,
            redemption=redemption,
            customer_id=customer_id,
            coupon_source=source,
            coupon_key=idempotency_key,
            clock=clock,
        )
    return redemption


def member_redemptions(
    session: Session, *, workspace_id: int, customer_id: int, limit: int = 100
) -> list[tuple[Redemption, Reward]]:
    """The member's redemptions newest first, with their rewards (none for a customer without a member row)."""
    member = get_member(session, workspace_id, customer_id)
    if member is None:
        return []
    rows = session.execute(
        select(Redemption, Reward)
        .join(Reward, Reward.id == Redemption.reward_id)
        .where(Redemption.workspace_id == workspace_id, Redemption.member_id == member.id)
        .order_by(Redemption.id.desc())
        .limit(max(1, min(limit, 500)))
    ).all()
    return [(redemption, reward) for redemption, reward in rows]
