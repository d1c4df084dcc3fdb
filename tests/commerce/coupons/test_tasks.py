"""The coupon jobs: daily expiry in batches, issuing to a segment (resumable, stock-bounded), and
the offers run."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.commerce.coupons.issuing import issue_coupon
from siyu.commerce.tasks import expire_coupons, issue_to_segment, run_offers
from siyu.db import Database
from siyu.kit.clock import FrozenClock
from siyu.models import Coupon, CouponEvent, CouponOffer, CouponState
from tests.commerce.coupons.factories import buyer, make_template
from tests.factories import make_workspace
from tests.segments.factories import make_segment


def test_expiry_marks_only_due_unused_coupons(db: Session, database: Database, clock: FrozenClock) -> None:
    # given coupons valid 7 days: three issued today, one a week later, one of them voided
    ws = make_workspace(db, clock=clock)
    template = make_template(db, workspace=ws, clock=clock, per_customer_limit=5)
    customer = buyer(db, workspace=ws, clock=clock)

    def issue(key: str) -> Coupon:
        return issue_coupon(
            db,
            workspace_id=ws.id,
            template_id=template.id,
            customer_id=customer.id,
            source="api",
            idempotency_key=key,
            clock=clock,
        )

    due, also_due, voided = issue("a"), issue("b"), issue("c")
    voided.state = CouponState.VOID
    clock.advance(timedelta(days=7))
    later = issue("d")
    db.commit()
    # when expiry runs on 30 Nov 10:00 Shanghai (after 30 Nov 00:00), in batches of one
    assert expire_coupons(database, clock, batch=1) == 2
    assert expire_coupons(database, clock, batch=1) == 0
    # then the two unused due coupons expired, with an event each
    db.expire_all()
    states = {c.id: c.state for c in db.scalars(select(Coupon).where(Coupon.workspace_id == ws.id))}
    assert states == {
        due.id: CouponState.EXPIRED,
        also_due.id: CouponState.EXPIRED,
        voided.id: CouponState.VOID,
        later.id: CouponState.ISSUED,
    }
    kinds = db.scalars(select(CouponEvent.kind).where(CouponEvent.coupon_id == due.id).order_by(CouponEvent.id))
    assert list(kinds) == ["issued", "expired"]


def test_issue_to_segment_once_per_customer_and_within_stock(
    db: Session, database: Database, clock: FrozenClock
) -> None:
    ws = make_workspace(db, clock=clock)
    template = make_template(db, workspace=ws, clock=clock, total_stock=3)
    ids = [buyer(db, workspace=ws, clock=clock).id for _ in range(5)]
    segment = make_segment(db, workspace=ws, clock=clock, members=ids)
    db.commit()
    args = dict(workspace_id=ws.id, template_id=template.id, segment_id=segment.id, run_key="job:7", clock=clock)
    first = issue_to_segment(database, **args)  # type: ignore[arg-type]
    # a job run twice issues nothing more
    second = issue_to_segment(database, **args)  # type: ignore[arg-type]
    assert first == {"issued": 3, "out_of_stock": 2, "skipped": 0}
    assert second == {"issued": 3, "out_of_stock": 2, "skipped": 0}
    holders = db.scalars(
        select(Coupon.customer_id).where(Coupon.template_id == template.id).order_by(Coupon.customer_id)
    )
    assert list(holders) == sorted(ids)[:3]


def test_offers_run_issues_birthdays(db: Session, database: Database, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    template = make_template(db, workspace=ws, clock=clock, offer=CouponOffer.BIRTHDAY)
    customer = buyer(db, workspace=ws, clock=clock, birthday=date(1995, 11, 23))
    db.commit()
    counts = run_offers(database, clock)
    assert counts["birthday"] >= 1
    assert run_offers(database, clock)["birthday"] == 0
    coupon = db.scalar(select(Coupon).where(Coupon.template_id == template.id))
    assert coupon is not None and coupon.customer_id == customer.id
    assert coupon.issued_at == datetime(2026, 11, 23, 2, tzinfo=UTC)
