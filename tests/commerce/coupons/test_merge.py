"""Coupons follow a customer merge to the survivor, clashing slots renumbered."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

import siyu.commerce.tasks  # noqa: F401 - registers the merge listener, as the app does
from siyu.commerce.coupons.issuing import issue_coupon
from siyu.customers.service.merge import merge_customers
from siyu.kit.clock import FrozenClock
from siyu.models import Coupon, CouponEvent
from tests.commerce.coupons.factories import buyer, make_template
from tests.factories import actor_for, make_workspace


def test_merged_customers_coupons_move_to_the_survivor(db: Session, clock: FrozenClock) -> None:
    # given two profiles of one person, each holding slot 1 of the same template
    ws = make_workspace(db, clock=clock)
    template = make_template(db, workspace=ws, clock=clock)
    survivor, merged = buyer(db, workspace=ws, clock=clock), buyer(db, workspace=ws, clock=clock)
    kept, moved = (
        issue_coupon(
            db,
            workspace_id=ws.id,
            template_id=template.id,
            customer_id=c.id,
            source="api",
            idempotency_key=f"k{c.id}",
            clock=clock,
        )
        for c in (survivor, merged)
    )
    # when they are merged
    merge_customers(db, actor=actor_for(ws), survivor_id=survivor.id, merged_id=merged.id, reason="同一人", clock=clock)
    # then the survivor holds both, the moved one in slot 2, with an event saying why
    db.expire_all()
    rows = db.execute(select(Coupon.id, Coupon.customer_id, Coupon.slot).where(Coupon.template_id == template.id))
    assert sorted(rows) == sorted([(kept.id, survivor.id, 1), (moved.id, survivor.id, 2)])
    event = db.scalar(select(CouponEvent).where(CouponEvent.coupon_id == moved.id, CouponEvent.kind == "merged"))
    assert event is not None and event.reason == f"customer {merged.id} merged into {survivor.id}"


def test_merge_renumbers_slots_within_an_occasion_only(db: Session, clock: FrozenClock) -> None:
    # given the survivor holding member day 23 Nov, the merged profile holding 23 Nov and 30 Nov
    ws = make_workspace(db, clock=clock)
    template = make_template(db, workspace=ws, clock=clock)
    survivor, merged = buyer(db, workspace=ws, clock=clock), buyer(db, workspace=ws, clock=clock)

    def issue(customer_id: int, occasion: str) -> Coupon:
        return issue_coupon(
            db,
            workspace_id=ws.id,
            template_id=template.id,
            customer_id=customer_id,
            source="offer:member_day",
            idempotency_key=f"{occasion}:c{customer_id}",
            clock=clock,
            occasion=occasion,
        )

    kept = issue(survivor.id, "member_day:2026-11-23")
    clash, free = issue(merged.id, "member_day:2026-11-23"), issue(merged.id, "member_day:2026-11-30")
    # when they are merged
    merge_customers(db, actor=actor_for(ws), survivor_id=survivor.id, merged_id=merged.id, reason="同一人", clock=clock)
    # then only the coupon of the shared occasion moves to slot 2
    db.expire_all()
    rows = db.execute(
        select(Coupon.id, Coupon.customer_id, Coupon.occasion, Coupon.slot).where(Coupon.template_id == template.id)
    )
    assert sorted(rows) == sorted(
        [
            (kept.id, survivor.id, "member_day:2026-11-23", 1),
            (clash.id, survivor.id, "member_day:2026-11-23", 2),
            (free.id, survivor.id, "member_day:2026-11-30", 1),
        ]
    )
