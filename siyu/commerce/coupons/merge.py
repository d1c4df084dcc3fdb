"""Coupons follow a customer merge: the merged profile's coupons move to the survivor.

They cannot simply be `MOVABLE` rows: the per-customer limit is the unique `(template, customer,
occasion, slot)` key, and both profiles may hold slot 1 of the same template (and occasion). Moved coupons that would
collide take the survivor's next free slots (both were issued legitimately, so the survivor may
hold more than the limit). Undoing the merge leaves the coupons with the survivor: a merge
listener has no undo hook yet.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import Clock
from siyu.models import Coupon, CouponEvent


def fold_coupons(session: Session, *, workspace_id: int, survivor_id: int, merged_id: int, clock: Clock) -> None:
    """Move `merged_id`'s coupons to `survivor_id`, renumbering clashing slots; one event each."""
    moving = session.scalars(
        select(Coupon)
        .where(Coupon.workspace_id == workspace_id, Coupon.customer_id == merged_id)
        .order_by(Coupon.id)
        .with_for_update()
    ).all()
    if not moving:
        return
    taken: dict[tuple[int, str], set[int]] = defaultdict(set)
    for template_id, occasion, slot in session.execute(
        select(Coupon.template_id, Coupon.occasion, Coupon.slot).where(
            Coupon.workspace_id == workspace_id, Coupon.customer_id == survivor_id
        )
    ):
        taken[(template_id, occasion)].add(slot)
    now = clock.now()
    for coupon in moving:
        slots = taken[(coupon.template_id, coupon.occasion)]
        if coupon.slot in slots:
            coupon.slot = max(slots) + 1
        slots.add(coupon.slot)
        coupon.customer_id = survivor_id
        session.add(
            CouponEvent(
                workspace_id=workspace_id,
                coupon_id=coupon.id,
                kind="merged",
                reason=f"customer {merged_id} merged into {survivor_id}",
                occurred_at=now,
            )
        )
    session.flush()
