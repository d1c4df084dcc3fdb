"""Daily expiry: unused coupons past their `expires_at` become `expired`, each with an event."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.models import Coupon, CouponEvent, CouponState


def expire_due(session: Session, *, workspace_id: int, clock: Clock, limit: int = 1000) -> int:
    """Expire up to `limit` due coupons of a workspace (oldest expiry first); returns how many.
    Call it until it returns less than `limit`; each call is one batch in the caller's
    transaction, so a crash loses at most one uncommitted batch and the next run resumes."""
    now = clock.now()
    rows = session.scalars(
        select(Coupon)
        .where(
            Coupon.workspace_id == workspace_id,
            Coupon.state == CouponState.ISSUED,
            Coupon.expires_at.is_not(None),
            Coupon.expires_at <= now,
        )
        .order_by(Coupon.expires_at, Coupon.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for coupon in rows:
        coupon.state = CouponState.EXPIRED
        session.add(
            CouponEvent(
                workspace_id=workspace_id, coupon_id=coupon.id, kind="expired", reason="validity ended", occurred_at=now
            )
        )
    session.flush()
    return len(rows)
