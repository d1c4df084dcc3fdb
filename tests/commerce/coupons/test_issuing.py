"""Issuing coupons: codes, validity, the per-customer limit, total stock and idempotent retries."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.commerce.coupons.issuing import CODE_ALPHABET, issue_coupon, normalise_code
from siyu.commerce.errors import CouponLimitReached, CouponNotUsable, CouponOutOfStock, CouponTemplateNotFound
from siyu.customers.errors import CustomerNotFound
from siyu.kit.clock import FrozenClock
from siyu.models import Coupon, CouponEvent, CouponState, CouponTemplateStatus
from tests.commerce.coupons.factories import buyer, make_template
from tests.factories import make_workspace


def _count(db: Session, model: type, workspace_id: int) -> int:
    return int(db.scalar(select(func.count()).select_from(model).where(model.workspace_id == workspace_id)) or 0)


def test_issue_gives_a_typable_code_valid_n_brand_days(db: Session, clock: FrozenClock) -> None:
    # given a ¥20-off template valid 7 days, and 10:00 on 23 Nov in Shanghai
    ws = make_workspace(db, clock=clock)
    template = make_template(db, workspace=ws, clock=clock, valid_days=7)
    customer = buyer(db, workspace=ws, clock=clock)
    # when a coupon is issued
    coupon = issue_coupon(
        db,
        workspace_id=ws.id,
        template_id=template.id,
        customer_id=customer.id,
        source="api",
        idempotency_key="k1",
        clock=clock,
        actor_label="admin@test",
    )
    # then its code is 10 characters without 0/O/1/I, usable through 29 Nov (expires 30 Nov 00:00 +08:00)
    assert re.fullmatch(f"[{CODE_ALPHABET}]{{10}}", coupon.code)
    assert not set(coupon.code) & set("0O1I")
    assert coupon.state == CouponState.ISSUED
    assert coupon.slot == 1
    assert coupon.valid_from == clock.now()
    assert coupon.expires_at == datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
    assert template.issued_count == 1
    events = db.scalars(select(CouponEvent).where(CouponEvent.coupon_id == coupon.id)).all()
    assert [(e.kind, e.reason, e.actor) for e in events] == [("issued", "api", "admin@test")]


def test_fixed_window_is_copied_and_normalised_codes_match(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 31, 16, tzinfo=UTC)
    template = make_template(db, workspace=ws, clock=clock, valid_from=start, valid_until=end)
    customer = buyer(db, workspace=ws, clock=clock)
    coupon = issue_coupon(
        db,
        workspace_id=ws.id,
        template_id=template.id,
        customer_id=customer.id,
        source="api",
        idempotency_key="k1",
        clock=clock,
    )
    assert (coupon.valid_from, coupon.expires_at) == (start, end)
    assert normalise_code(f" {coupon.code[:5].lower()}-{coupon.code[5:]} ") == coupon.code


def test_same_key_returns_the_same_coupon(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    template = make_template(db, workspace=ws, clock=clock, per_customer_limit=3)
    customer = buyer(db, workspace=ws, clock=clock)
    args = dict(workspace_id=ws.id, template_id=template.id, customer_id=customer.id, source="api", clock=clock)
    first = issue_coupon(db, idempotency_key="k1", **args)  # type: ignore[arg-type]
    # when the same issue is retried
    again = issue_coupon(db, idempotency_key="k1", **args)  # type: ignore[arg-type]
    # then nothing more was issued
    assert again.id == first.id
    assert template.issued_count == 1
    assert _count(db, CouponEvent, ws.id) == 1


def test_per_customer_limit_refuses_the_next_and_writes_nothing(db: Session, clock: FrozenClock) -> None:
    # given a template of 2 per customer, issued twice to the customer
    ws = make_workspace(db, clock=clock)
    template = make_template(db, workspace=ws, clock=clock, per_customer_limit=2)
    customer, other = buyer(db, workspace=ws, clock=clock), buyer(db, workspace=ws, clock=clock)
    args = dict(workspace_id=ws.id, template_id=template.id, source="api", clock=clock)
    slots = [issue_coupon(db, customer_id=customer.id, idempotency_key=f"k{i}", **args).slot for i in (1, 2)]  # type: ignore[arg-type]
    # when a third is issued
    with pytest.raises(CouponLimitReached) as caught:
        issue_coupon(db, customer_id=customer.id, idempotency_key="k3", **args)  # type: ignore[arg-type]
    # then it is refused naming the limit, and another customer still gets one
    assert slots == [1, 2]
    assert caught.value.details == {"field": "customer_id", "per_customer_limit": 2}
    assert template.issued_count == 2
    assert issue_coupon(db, customer_id=other.id, idempotency_key="k4", **args).slot == 1  # type: ignore[arg-type]
    assert _count(db, Coupon, ws.id) == 3


def test_total_stock_is_never_oversold(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    template = make_template(db, workspace=ws, clock=clock, total_stock=1)
    a, b = buyer(db, workspace=ws, clock=clock), buyer(db, workspace=ws, clock=clock)
    args = dict(workspace_id=ws.id, template_id=template.id, source="api", clock=clock)
    issue_coupon(db, customer_id=a.id, idempotency_key="a", **args)  # type: ignore[arg-type]
    with pytest.raises(CouponOutOfStock):
        issue_coupon(db, customer_id=b.id, idempotency_key="b", **args)  # type: ignore[arg-type]
    assert template.issued_count == 1
    assert _count(db, Coupon, ws.id) == 1


def test_archived_expired_unknown_and_foreign_are_refused(db: Session, clock: FrozenClock) -> None:
    ws, other_ws = make_workspace(db, clock=clock), make_workspace(db, clock=clock)
    customer = buyer(db, workspace=ws, clock=clock)
    stranger = buyer(db, workspace=other_ws, clock=clock)
    archived = make_template(db, workspace=ws, clock=clock, status=CouponTemplateStatus.ARCHIVED)
    over = make_template(db, workspace=ws, clock=clock, valid_until=datetime(2026, 11, 1, tzinfo=UTC))
    live = make_template(db, workspace=ws, clock=clock)
    args = dict(workspace_id=ws.id, source="api", clock=clock)
    with pytest.raises(CouponNotUsable):
        issue_coupon(db, template_id=archived.id, customer_id=customer.id, idempotency_key="1", **args)  # type: ignore[arg-type]
    with pytest.raises(CouponNotUsable):
        issue_coupon(db, template_id=over.id, customer_id=customer.id, idempotency_key="2", **args)  # type: ignore[arg-type]
    with pytest.raises(CouponTemplateNotFound):
        issue_coupon(db, template_id=live.id + 1000, customer_id=customer.id, idempotency_key="3", **args)  # type: ignore[arg-type]
    with pytest.raises(CustomerNotFound):
        issue_coupon(db, template_id=live.id, customer_id=stranger.id, idempotency_key="4", **args)  # type: ignore[arg-type]
    assert _count(db, Coupon, ws.id) == 0
    assert live.issued_count == 0


def test_occasion_scopes_the_limit_and_the_unique_key_still_caps_it(db: Session, clock: FrozenClock) -> None:
    # given a template of 1 per customer, issued once for life and once for occasion "member_day:2026-11-23"
    ws = make_workspace(db, clock=clock)
    template = make_template(db, workspace=ws, clock=clock, per_customer_limit=1)
    customer = buyer(db, workspace=ws, clock=clock)
    args = dict(workspace_id=ws.id, template_id=template.id, customer_id=customer.id, source="api", clock=clock)
    life = issue_coupon(db, idempotency_key="life", **args)  # type: ignore[arg-type]
    monday = issue_coupon(db, idempotency_key="m1", occasion="member_day:2026-11-23", **args)  # type: ignore[arg-type]
    # when a second coupon of the same occasion, and a second for life, are issued
    with pytest.raises(CouponLimitReached) as same_day:
        issue_coupon(db, idempotency_key="m2", occasion="member_day:2026-11-23", **args)  # type: ignore[arg-type]
    with pytest.raises(CouponLimitReached):
        issue_coupon(db, idempotency_key="life2", **args)  # type: ignore[arg-type]
    # then both are refused; another occasion still gets its own slot 1
    assert same_day.value.message == f"the customer already holds 1 of {template.name!r} for member_day:2026-11-23"
    assert (life.occasion, life.slot, monday.occasion, monday.slot) == ("", 1, "member_day:2026-11-23", 1)
    other = issue_coupon(db, idempotency_key="m3", occasion="member_day:2026-11-30", **args)  # type: ignore[arg-type]
    assert (other.occasion, other.slot) == ("member_day:2026-11-30", 1)
    assert template.issued_count == 3
    assert _count(db, Coupon, ws.id) == 3
    # and the unique (template, customer, occasion, slot) key refuses a writer that skips the check
    with pytest.raises(IntegrityError), db.begin_nested():
        db.add(
            Coupon(
                workspace_id=ws.id,
                template_id=template.id,
                customer_id=customer.id,
                code="ZZZZZZZZZZ",
                slot=1,
                occasion="member_day:2026-11-23",
                state="issued",
                source="api",
                idempotency_key="raw",
                issued_at=clock.now(),
                valid_from=clock.now(),
            )
        )
        db.flush()
