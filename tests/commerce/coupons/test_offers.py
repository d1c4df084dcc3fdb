"""Standing offers: first-order coupon after joining, birthday gift once a year, member day,
tier-welcome pack; each once per occasion however often the job runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.commerce.coupons.offers import (
    birthday_offers,
    issue_first_order,
    issue_tier_welcome,
    member_day_offers,
    sweep_first_order,
)
from siyu.kit.clock import FrozenClock
from siyu.models import Coupon, CouponOffer, Member, Order, OrderStatus, Tier, Workspace
from tests.commerce.coupons.factories import buyer, make_template
from tests.factories import make_relationship, make_staff, make_workspace


def _coupons(db: Session, ws: Workspace) -> list[tuple[int, int, str]]:
    rows = db.execute(
        select(Coupon.template_id, Coupon.customer_id, Coupon.idempotency_key)
        .where(Coupon.workspace_id == ws.id)
        .order_by(Coupon.id)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_first_order_coupon_valid_n_days_after_joining(db: Session, clock: FrozenClock) -> None:
    # given a first-order template valid 3 days, a customer who added a staff member yesterday 20:00 Shanghai
    ws = make_workspace(db, clock=clock)
    template = make_template(
        db, workspace=ws, clock=clock, offer=CouponOffer.FIRST_ORDER, offer_settings={"valid_days": 3}
    )
    customer = buyer(db, workspace=ws, clock=clock)
    staff = make_staff(db, workspace=ws, clock=clock)
    make_relationship(db, customer=customer, staff=staff, added_at=datetime(2026, 11, 22, 12, tzinfo=UTC))
    # when the offer runs (twice)
    [coupon] = issue_first_order(db, workspace_id=ws.id, customer_id=customer.id, clock=clock)
    assert issue_first_order(db, workspace_id=ws.id, customer_id=customer.id, clock=clock)[0].id == coupon.id
    # then one coupon, usable 22–24 Nov (expires 25 Nov 00:00 +08:00)
    assert coupon.expires_at == datetime(2026, 11, 24, 16, tzinfo=UTC)
    assert coupon.source == "offer:first_order"
    assert _coupons(db, ws) == [(template.id, customer.id, f"offer:first_order:t{template.id}:c{customer.id}")]


def test_first_order_skips_buyers_and_late_joiners(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    make_template(db, workspace=ws, clock=clock, offer=CouponOffer.FIRST_ORDER, offer_settings={"valid_days": 3})
    staff = make_staff(db, workspace=ws, clock=clock)
    bought, old, never = (buyer(db, workspace=ws, clock=clock) for _ in range(3))
    make_relationship(db, customer=bought, staff=staff, added_at=clock.now() - timedelta(hours=5))
    db.add(
        Order(
            workspace_id=ws.id,
            customer_id=bought.id,
            platform="taobao",
            external_id="T1",
            status=OrderStatus.PAID,
            total_fen=100,
            paid_at=clock.now() - timedelta(hours=1),
            created_at=clock.now(),
        )
    )
    make_relationship(db, customer=old, staff=staff, added_at=clock.now() - timedelta(days=10))
    db.flush()
    for customer in (bought, old, never):
        assert issue_first_order(db, workspace_id=ws.id, customer_id=customer.id, clock=clock) == []
    assert sweep_first_order(db, workspace_id=ws.id, clock=clock) == 0


def test_sweep_catches_up_on_recent_joiners(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    make_template(db, workspace=ws, clock=clock, offer=CouponOffer.FIRST_ORDER, offer_settings={"valid_days": 7})
    staff = make_staff(db, workspace=ws, clock=clock)
    recent = [buyer(db, workspace=ws, clock=clock) for _ in range(2)]
    for customer in recent:
        make_relationship(db, customer=customer, staff=staff, added_at=clock.now() - timedelta(days=1))
    assert sweep_first_order(db, workspace_id=ws.id, clock=clock) == 2
    assert sweep_first_order(db, workspace_id=ws.id, clock=clock) == 0
    assert sorted(c for _, c, _ in _coupons(db, ws)) == sorted(c.id for c in recent)


def test_birthday_gift_days_before_once_a_year(db: Session, clock: FrozenClock) -> None:
    # given a birthday template issued 3 days before; today is 23 Nov (Shanghai)
    ws = make_workspace(db, clock=clock)
    template = make_template(
        db, workspace=ws, clock=clock, offer=CouponOffer.BIRTHDAY, offer_settings={"days_before": 3}
    )
    today = buyer(db, workspace=ws, clock=clock, birthday=date(1990, 11, 23))
    in_three = buyer(db, workspace=ws, clock=clock, birthday=date(1988, 11, 26))
    buyer(db, workspace=ws, clock=clock, birthday=date(1990, 11, 27))  # four days: not yet
    buyer(db, workspace=ws, clock=clock, birthday=date(1990, 11, 22))  # yesterday: passed
    # when the job runs, and runs again the next day
    assert birthday_offers(db, workspace_id=ws.id, clock=clock) == 2
    clock.advance(timedelta(days=1))
    assert birthday_offers(db, workspace_id=ws.id, clock=clock) == 1  # the 27 Nov one is now due
    # then each birthday got one coupon keyed by this year
    keys = [k for _, _, k in _coupons(db, ws)]
    assert f"offer:birthday:2026:t{template.id}:c{today.id}" in keys
    assert f"offer:birthday:2026:t{template.id}:c{in_three.id}" in keys
    assert len(keys) == 3


def test_birthday_across_new_year_and_29_february(db: Session) -> None:
    clock = FrozenClock(datetime(2027, 2, 28, 2, tzinfo=UTC))
    ws = make_workspace(db, clock=clock)
    template = make_template(
        db, workspace=ws, clock=clock, offer=CouponOffer.BIRTHDAY, offer_settings={"days_before": 0}
    )
    leap = buyer(db, workspace=ws, clock=clock, birthday=date(2000, 2, 29))
    assert birthday_offers(db, workspace_id=ws.id, clock=clock) == 1
    assert _coupons(db, ws) == [(template.id, leap.id, f"offer:birthday:2027:t{template.id}:c{leap.id}")]
    clock.set(datetime(2027, 12, 29, 2, tzinfo=UTC))
    other = make_template(db, workspace=ws, clock=clock, offer=CouponOffer.BIRTHDAY, offer_settings={"days_before": 5})
    new_year = buyer(db, workspace=ws, clock=clock, birthday=date(1999, 1, 2))
    assert birthday_offers(db, workspace_id=ws.id, clock=clock) == 1
    assert _coupons(db, ws)[-1] == (other.id, new_year.id, f"offer:birthday:2028:t{other.id}:c{new_year.id}")


def _member(db: Session, ws: Workspace, clock: FrozenClock, tier: Tier | None = None) -> int:
    customer = buyer(db, workspace=ws, clock=clock)
    db.add(
        Member(
            workspace_id=ws.id,
            customer_id=customer.id,
            tier_id=tier.id if tier else None,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
    )
    db.flush()
    return customer.id


def _tier(db: Session, ws: Workspace, clock: FrozenClock, rank: int, **values: object) -> Tier:
    tier = Tier(
        workspace_id=ws.id, name=f"T{rank}", rank=rank, created_at=clock.now(), updated_at=clock.now(), **values
    )
    db.add(tier)
    db.flush()
    return tier


def test_member_day_on_its_weekday_for_its_tiers(db: Session, clock: FrozenClock) -> None:
    # 23 Nov 2026 is a Monday
    ws = make_workspace(db, clock=clock)
    gold = _tier(db, ws, clock, 1)
    monday = make_template(
        db,
        workspace=ws,
        clock=clock,
        offer=CouponOffer.MEMBER_DAY,
        offer_settings={"weekday": 1, "tier_ids": [gold.id]},
    )
    make_template(db, workspace=ws, clock=clock, offer=CouponOffer.MEMBER_DAY, offer_settings={"month_day": 8})
    gold_member = _member(db, ws, clock, gold)
    _member(db, ws, clock)
    assert member_day_offers(db, workspace_id=ws.id, clock=clock) == 1
    assert member_day_offers(db, workspace_id=ws.id, clock=clock) == 0
    assert _coupons(db, ws) == [(monday.id, gold_member, f"offer:member_day:2026-11-23:t{monday.id}:c{gold_member}")]
    clock.advance(timedelta(days=1))
    assert member_day_offers(db, workspace_id=ws.id, clock=clock) == 0


def test_tier_welcome_pack_once_per_tier(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    listed = make_template(db, workspace=ws, clock=clock)
    gold = _tier(db, ws, clock, 1, benefits={"welcome_coupon_template_ids": [listed.id]})
    by_offer = make_template(
        db, workspace=ws, clock=clock, offer=CouponOffer.TIER_WELCOME, offer_settings={"tier_id": gold.id}
    )
    empty = make_template(
        db,
        workspace=ws,
        clock=clock,
        offer=CouponOffer.TIER_WELCOME,
        offer_settings={"tier_id": gold.id},
        total_stock=0,
    )
    customer = _member(db, ws, clock, gold)
    pack = issue_tier_welcome(db, workspace_id=ws.id, customer_id=customer, tier_id=gold.id, clock=clock)
    # the out-of-stock template is skipped, not an error
    assert sorted(c.template_id for c in pack) == sorted([listed.id, by_offer.id])
    assert empty.issued_count == 0
    again = issue_tier_welcome(db, workspace_id=ws.id, customer_id=customer, tier_id=gold.id, clock=clock)
    assert sorted(c.id for c in again) == sorted(c.id for c in pack)
    assert len(_coupons(db, ws)) == 2


def test_member_day_limit_counts_per_member_day(db: Session, clock: FrozenClock) -> None:
    # given a weekly Monday member-day template, one per customer, and one member; 23 Nov 2026 is a Monday
    ws = make_workspace(db, clock=clock)
    template = make_template(
        db, workspace=ws, clock=clock, offer=CouponOffer.MEMBER_DAY, offer_settings={"weekday": 1}, per_customer_limit=1
    )
    member = _member(db, ws, clock)
    # when the job runs on this Monday (twice) and on the next two Mondays
    issued = [member_day_offers(db, workspace_id=ws.id, clock=clock)]
    issued.append(member_day_offers(db, workspace_id=ws.id, clock=clock))
    for _ in range(2):
        clock.advance(timedelta(days=7))
        issued.append(member_day_offers(db, workspace_id=ws.id, clock=clock))
    # then one coupon each member day, each in slot 1 of its own occasion
    assert issued == [1, 0, 1, 1]
    rows = db.execute(
        select(Coupon.idempotency_key, Coupon.occasion, Coupon.slot)
        .where(Coupon.customer_id == member)
        .order_by(Coupon.id)
    )
    assert [tuple(r) for r in rows] == [
        (f"offer:member_day:2026-11-23:t{template.id}:c{member}", "member_day:2026-11-23", 1),
        (f"offer:member_day:2026-11-30:t{template.id}:c{member}", "member_day:2026-11-30", 1),
        (f"offer:member_day:2026-12-07:t{template.id}:c{member}", "member_day:2026-12-07", 1),
    ]
    assert template.issued_count == 3


def test_birthday_limit_counts_per_birthday_year(db: Session) -> None:
    # given a birthday template (on the day, one per customer) and a customer born 23 Nov
    clock = FrozenClock(datetime(2026, 11, 23, 2, tzinfo=UTC))
    ws = make_workspace(db, clock=clock)
    template = make_template(
        db,
        workspace=ws,
        clock=clock,
        offer=CouponOffer.BIRTHDAY,
        offer_settings={"days_before": 0},
        per_customer_limit=1,
    )
    customer = buyer(db, workspace=ws, clock=clock, birthday=date(1990, 11, 23))
    # when the job runs on the 2026 birthday (twice) and on the 2027 one
    issued = [
        birthday_offers(db, workspace_id=ws.id, clock=clock),
        birthday_offers(db, workspace_id=ws.id, clock=clock),
    ]
    clock.set(datetime(2027, 11, 23, 2, tzinfo=UTC))
    issued.append(birthday_offers(db, workspace_id=ws.id, clock=clock))
    # then one coupon a year
    assert issued == [1, 0, 1]
    rows = db.execute(select(Coupon.occasion, Coupon.slot).where(Coupon.customer_id == customer.id).order_by(Coupon.id))
    assert [tuple(r) for r in rows] == [("birthday:2026", 1), ("birthday:2027", 1)]
    assert template.issued_count == 2
