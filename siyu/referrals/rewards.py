"""Issuing and reversing referral rewards.

Every reward is one `ReferralReward` row, unique on its idempotency key, which is also the key of
the points entry, coupon or redemption it made:

- `referral:{referral_id}:referrer` / `referral:{referral_id}:referee` — per qualified referral
  (a fission program pays its referrer only through the target reward below);
- `target:{program_id}:{customer_id}` — a fission program's referrer reward, once qualified ≥ target;
- `unlock:{program_id}:{threshold}:{customer_id}` — a tiered unlock, once per threshold (keyed by the
  threshold, not the unlock row, so editing the ladder never pays a threshold twice).

A coupon or gift that could not be issued (out of stock, limit) leaves a row with `failed_at` and a
note: it is not a standing reward (reconciliation tries again next time, metrics cost ignores it).

Target and unlock rewards are *reconciled* against the referrer's current qualified count: the
missing ones are issued, those no longer justified (after a refund) are reversed. If a reversed
threshold is reached again, it is issued again under `{key}:2`, `{key}:3`… so no key is used twice.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.auth.permissions import Actor
from siyu.commerce.coupons.issuing import issue_coupon
from siyu.commerce.coupons.service import void_coupon
from siyu.kit.clock import Clock
from siyu.kit.errors import DomainError
from siyu.loyalty.members import ensure_member
from siyu.loyalty.points import ledger
from siyu.loyalty.points.service import award_points
from siyu.loyalty.rewards.catalog import get_reward
from siyu.loyalty.rewards.fulfilment import cancel_redemption
from siyu.loyalty.rewards.service import grant_reward
from siyu.models import (
    Coupon,
    CouponKind,
    CouponState,
    CouponTemplate,
    PointsReason,
    Redemption,
    RedemptionStatus,
    Referral,
    ReferralCode,
    ReferralProgram,
    ReferralReward,
    ReferralStatus,
    ReferralUnlock,
    RewardRole,
)
from siyu.referrals.programs import FISSION_KINDS, unlocks_of

SYSTEM_LABEL = "referrals"


def by_key(session: Session, workspace_id: int, key: str) -> ReferralReward | None:
    """The reward issued under a key, if any."""
    return session.scalar(
        select(ReferralReward).where(ReferralReward.workspace_id == workspace_id, ReferralReward.idempotency_key == key)
    )


def lock_referrer(session: Session, program_id: int, customer_id: int) -> ReferralCode | None:
    """Lock the referrer's code row: every change to one referrer's referrals in a program is serialised
    on it (daily cap, burst, unlock reconciliation)."""
    return session.scalar(
        select(ReferralCode)
        .where(ReferralCode.program_id == program_id, ReferralCode.customer_id == customer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _coupon_cost(session: Session, template_id: int) -> int:
    template = session.get(CouponTemplate, template_id)
    if template is None:
        return 0
    if template.kind == CouponKind.AMOUNT_OFF:
        return template.value
    if template.kind == CouponKind.PERCENT_OFF:
        return template.max_discount_fen or 0  # the most it can cost; uncapped: unknown, 0
    return 0


def issue(
    session: Session,
    *,
    program: ReferralProgram,
    customer_id: int,
    role: RewardRole,
    spec: dict[str, int],
    key: str,
    description: str,
    clock: Clock,
    referral_id: int | None = None,
    unlock_id: int | None = None,
) -> ReferralReward | None:
    """Issue one reward (None for an empty spec); the same key returns the first row. A coupon or gift
    that cannot be issued (out of stock, limit) is recorded with a note instead of failing the caller."""
    if not spec:
        return None
    ws = program.workspace_id
    if (done := by_key(session, ws, key)) is not None:
        return done
    row = ReferralReward(
        workspace_id=ws,
        program_id=program.id,
        referral_id=referral_id,
        unlock_id=unlock_id,
        customer_id=customer_id,
        role=role,
        idempotency_key=key,
        issued_at=clock.now(),
    )
    try:
        with session.begin_nested():
            if (points := spec.get("points")) is not None:
                entry = award_points(
                    session,
                    workspace_id=ws,
                    customer_id=customer_id,
                    points=int(points),
                    reason=PointsReason.REFERRAL,
                    description=description,
                    idempotency_key=key,
                    clock=clock,
                    source_ref=f"referral_program:{program.id}",
                )
                row.points, row.points_entry_id = int(points), entry.id
                row.cost_fen = int(points) * program.point_cost_fen
            elif (template_id := spec.get("coupon_template_id")) is not None:
                coupon = issue_coupon(
                    session,
                    workspace_id=ws,
                    template_id=int(template_id),
                    customer_id=customer_id,
                    source="referral",
                    idempotency_key=key,
                    clock=clock,
                )
                row.coupon_id, row.cost_fen = coupon.id, _coupon_cost(session, int(template_id))
            elif (reward_id := spec.get("reward_id")) is not None:
                # a mall reward given without points (stock and per-member limit apply)
                redemption = grant_reward(
                    session,
                    workspace_id=ws,
                    customer_id=customer_id,
                    reward_id=int(reward_id),
                    idempotency_key=key,
                    clock=clock,
                )
                row.redemption_id = redemption.id
                price = get_reward(session, workspace_id=ws, reward_id=int(reward_id)).points_price
                row.cost_fen = price * program.point_cost_fen
    except DomainError as error:
        row.note = f"not issued: {error.message}"[:500]
        row.failed_at, row.cost_fen, row.coupon_id, row.redemption_id = clock.now(), 0, None, None
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        # a concurrent writer issued the same key first (its points/coupon share the key too)
        found = by_key(session, ws, key)
        assert found is not None
        return found
    return row


def reverse(session: Session, *, reward: ReferralReward, reason: str, clock: Clock) -> None:
    """Take a reward back: its points (debt if already spent, as loyalty does for refunds), its coupon if
    unused, its gift if not yet shipped. Reversing twice changes nothing."""
    if reward.reversed_at is not None or reward.failed_at is not None:
        return
    ws = reward.workspace_id
    system = Actor.system(ws, SYSTEM_LABEL)
    notes = [reason]
    if reward.points_entry_id is not None and reward.points > 0:
        member = ensure_member(session, workspace_id=ws, customer_id=reward.customer_id, clock=clock)
        ledger.reverse_earn(
            session,
            member=member,
            entry_id=reward.points_entry_id,
            points=reward.points,
            description="邀请奖励撤销",
            idempotency_key=f"{reward.idempotency_key}:reverse",
            clock=clock,
            reason=PointsReason.REFUND,
            source_ref=f"referral_reward:{reward.id}",
        )
    if reward.coupon_id is not None:
        coupon = session.get(Coupon, reward.coupon_id)
        if coupon is not None and coupon.state == CouponState.ISSUED:
            void_coupon(session, actor=system, coupon_id=coupon.id, reason=reason, clock=clock)
        elif coupon is not None and coupon.state != CouponState.VOID:
            notes.append(f"coupon {coupon.state}")
    if reward.redemption_id is not None:
        redemption = session.get(Redemption, reward.redemption_id)
        if redemption is not None and redemption.status != RedemptionStatus.CANCELLED:
            try:
                with session.begin_nested():
                    cancel_redemption(session, actor=system, redemption_id=redemption.id, reason=reason, clock=clock)
            except DomainError:
                notes.append(f"gift {redemption.status}")
    reward.reversed_at = clock.now()
    reward.note = "; ".join(n for n in [reward.note or "", *notes] if n)[:500]
    session.flush()


def qualified_count(session: Session, program_id: int, referrer_id: int) -> int:
    """The referrer's qualified referrals in a program."""
    return int(
        session.scalar(
            select(func.count()).where(
                Referral.program_id == program_id,
                Referral.referrer_customer_id == referrer_id,
                Referral.status == ReferralStatus.QUALIFIED,
            )
        )
        or 0
    )


def _reconcile_one(
    session: Session,
    *,
    program: ReferralProgram,
    customer_id: int,
    base_key: str,
    wanted: bool,
    spec: dict[str, int],
    description: str,
    reason: str,
    clock: Clock,
    referral_id: int | None,
    unlock: ReferralUnlock | None,
) -> None:
    rows = list(
        session.scalars(
            select(ReferralReward).where(
                ReferralReward.workspace_id == program.workspace_id,
                ReferralReward.customer_id == customer_id,
                (ReferralReward.idempotency_key == base_key) | ReferralReward.idempotency_key.like(f"{base_key}:%"),
            )
        )
    )
    rows = [r for r in rows if r.idempotency_key == base_key or r.idempotency_key[len(base_key) + 1 :].isdigit()]
    live = [r for r in rows if r.reversed_at is None and r.failed_at is None]
    if wanted and not live:
        key = base_key if not rows else f"{base_key}:{len(rows) + 1}"
        issue(
            session,
            program=program,
            customer_id=customer_id,
            role=RewardRole.UNLOCK if unlock is not None else RewardRole.REFERRER,
            spec=spec,
            key=key,
            description=description,
            clock=clock,
            referral_id=referral_id,
            unlock_id=unlock.id if unlock is not None else None,
        )
    elif not wanted:
        for row in live:
            reverse(session, reward=row, reason=reason, clock=clock)


def reconcile_referrer(
    session: Session,
    *,
    program: ReferralProgram,
    referrer_id: int,
    clock: Clock,
    referral_id: int | None = None,
    reason: str = "",
) -> None:
    """Bring the referrer's target and unlock rewards in line with their qualified count (the caller
    holds `lock_referrer`). `referral_id` is the referral that changed the count, noted on new rows."""
    count = qualified_count(session, program.id, referrer_id)
    if program.kind in FISSION_KINDS and program.referrer_reward:
        _reconcile_one(
            session,
            program=program,
            customer_id=referrer_id,
            base_key=f"target:{program.id}:{referrer_id}",
            wanted=program.target_count >= 1 and count >= program.target_count,
            spec=program.referrer_reward,
            description=f"邀请达标奖励：{program.name}",
            reason=reason or "below target",
            clock=clock,
            referral_id=referral_id,
            unlock=None,
        )
    for unlock in unlocks_of(session, program.id):
        _reconcile_one(
            session,
            program=program,
            customer_id=referrer_id,
            base_key=f"unlock:{program.id}:{unlock.threshold}:{referrer_id}",
            wanted=count >= unlock.threshold,
            spec=unlock.reward,
            description=f"邀请解锁奖励：{unlock.name}",
            reason=reason or "below threshold",
            clock=clock,
            referral_id=referral_id,
            unlock=unlock,
        )


def referral_rewards(session: Session, referral: Referral) -> list[ReferralReward]:
    """The per-referral rewards of one referral (referrer and referee)."""
    return list(
        session.scalars(
            select(ReferralReward)
            .where(
                ReferralReward.referral_id == referral.id,
                ReferralReward.idempotency_key.in_(
                    [f"referral:{referral.id}:referrer", f"referral:{referral.id}:referee"]
                ),
            )
            .order_by(ReferralReward.id)
        )
    )
