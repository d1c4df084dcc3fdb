"""The standing offers siyu issues by itself: first-order coupon on joining the pool, birthday
gift, member day, tier-welcome pack.

Each offer is a coupon template with `offer` set and its parameters in `offer_settings`. Every
issue carries an idempotency key naming the occasion, so running a daily job twice, or late,
never issues twice: `offer:first_order:t{template}:c{customer}` (once ever),
`offer:birthday:{year}:t{template}:c{customer}` (once a year), `offer:member_day:{date}:…`
(once per member day), `offer:tier_welcome:{tier}:t{template}:c{customer}` (once per tier ever).
Birthday and member-day coupons are recurring: they are issued with an `occasion`
("birthday:{year}", "member_day:{date}"), so the template's `per_customer_limit` counts per
occasion, not for life (a limit of 1 is one per member day).
A template out of stock, or whose limit the customer reached, is skipped — an offer never makes
the write that triggered it (an order, an upgrade) fail.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from sqlalchemy import and_, exists, extract, func, or_, select
from sqlalchemy.orm import Session

from siyu.commerce.coupons.issuing import by_key, issue_coupon
from siyu.commerce.errors import CouponLimitReached, CouponNotUsable, CouponOutOfStock, CouponTemplateNotFound
from siyu.customers.errors import CustomerNotFound
from siyu.kit.clock import Clock, as_utc
from siyu.loyalty.program import brand_zone, local_midnight
from siyu.models import (
    Coupon,
    CouponOffer,
    CouponTemplate,
    CouponTemplateStatus,
    Customer,
    Member,
    Order,
    Relationship,
    Tier,
)

logger = logging.getLogger(__name__)
SKIPPED = (CouponOutOfStock, CouponLimitReached, CouponNotUsable, CouponTemplateNotFound, CustomerNotFound)


def offer_templates(session: Session, workspace_id: int, offer: CouponOffer) -> list[CouponTemplate]:
    """Active templates of one offer, in id order (the lock order)."""
    return list(
        session.scalars(
            select(CouponTemplate)
            .where(
                CouponTemplate.workspace_id == workspace_id,
                CouponTemplate.offer == offer,
                CouponTemplate.status == CouponTemplateStatus.ACTIVE,
            )
            .order_by(CouponTemplate.id)
        )
    )


def _try_issue(
    session: Session,
    *,
    workspace_id: int,
    template_id: int,
    customer_id: int,
    source: str,
    key: str,
    clock: Clock,
    expires_at: datetime | None = None,
    occasion: str = "",
) -> tuple[Coupon | None, bool]:
    """(the coupon or None when skipped, whether it was issued by this call)."""
    if (done := by_key(session, workspace_id, key)) is not None:
        return done, False
    try:
        with session.begin_nested():
            coupon = issue_coupon(
                session,
                workspace_id=workspace_id,
                template_id=template_id,
                customer_id=customer_id,
                source=source,
                idempotency_key=key,
                clock=clock,
                actor_label="offer",
                expires_at=expires_at,
                occasion=occasion,
            )
    except SKIPPED as exc:
        logger.info("offer %s skipped for customer %s: %s", key, customer_id, exc)
        return None, False
    return coupon, True


def issue_tier_welcome(
    session: Session, *, workspace_id: int, customer_id: int, tier_id: int, clock: Clock
) -> list[Coupon]:
    """The welcome pack of a tier the customer just reached: the templates whose offer is
    `tier_welcome` for this tier, and those the tier's benefits list (`welcome_coupon_template_ids`).
    Once per tier per customer, ever (a downgrade and a new upgrade do not issue it again)."""
    templates = offer_templates(session, workspace_id, CouponOffer.TIER_WELCOME)
    ids = {t.id for t in templates if t.offer_settings.get("tier_id") == tier_id}
    tier = session.scalar(select(Tier).where(Tier.id == tier_id, Tier.workspace_id == workspace_id))
    if tier is not None:
        ids.update(int(i) for i in (tier.benefits or {}).get("welcome_coupon_template_ids") or [])
    issued = []
    for template_id in sorted(ids):
        coupon, _ = _try_issue(
            session,
            workspace_id=workspace_id,
            template_id=template_id,
            customer_id=customer_id,
            source=f"offer:tier_welcome:{tier_id}",
            key=f"offer:tier_welcome:{tier_id}:t{template_id}:c{customer_id}",
            clock=clock,
        )
        if coupon is not None:
            issued.append(coupon)
    return issued


def joined_at(session: Session, workspace_id: int, customer_id: int) -> datetime | None:
    """When the customer joined the pool: their earliest relationship with a staff member."""
    value = session.scalar(
        select(func.min(Relationship.added_at)).where(
            Relationship.workspace_id == workspace_id, Relationship.customer_id == customer_id
        )
    )
    return as_utc(value) if value is not None else None


def issue_first_order(session: Session, *, workspace_id: int, customer_id: int, clock: Clock) -> list[Coupon]:
    """The new-customer first-order coupons, valid `offer_settings.valid_days` (else the
    template's `valid_days`, else 7) brand-local days counting the day they joined. Not issued
    to a customer who already ordered since joining, nor once the window is over. Call it when a
    customer joins the pool (a relationship is added); the daily sweep catches up otherwise."""
    joined = joined_at(session, workspace_id, customer_id)
    if joined is None:
        return []
    ordered = session.scalar(select(Order.id).where(Order.customer_id == customer_id, Order.paid_at >= joined).limit(1))
    if ordered is not None:
        return []
    zone = brand_zone(session, workspace_id)
    issued = []
    for template in offer_templates(session, workspace_id, CouponOffer.FIRST_ORDER):
        days = int(template.offer_settings.get("valid_days") or template.valid_days or 7)
        expires = local_midnight(joined.astimezone(zone).date() + timedelta(days=days), zone)
        if expires <= clock.now():
            continue
        coupon, _ = _try_issue(
            session,
            workspace_id=workspace_id,
            template_id=template.id,
            customer_id=customer_id,
            source="offer:first_order",
            key=f"offer:first_order:t{template.id}:c{customer_id}",
            clock=clock,
            expires_at=expires,
        )
        if coupon is not None:
            issued.append(coupon)
    return issued


def sweep_first_order(session: Session, *, workspace_id: int, clock: Clock, lookback_days: int = 3) -> int:
    """Issue first-order coupons to customers who joined in the last `lookback_days`; returns how
    many were issued (customers who already hold a first-order coupon are passed over)."""
    if not offer_templates(session, workspace_id, CouponOffer.FIRST_ORDER):
        return 0
    since = clock.now() - timedelta(days=lookback_days)
    first_add = func.min(Relationship.added_at)
    customer_ids = session.scalars(
        select(Relationship.customer_id)
        .where(
            Relationship.workspace_id == workspace_id,
            ~exists().where(Coupon.customer_id == Relationship.customer_id, Coupon.source == "offer:first_order"),
        )
        .group_by(Relationship.customer_id)
        .having(first_add >= since)
        .order_by(Relationship.customer_id)
    ).all()
    issued = 0
    for customer_id in customer_ids:
        issued += len(issue_first_order(session, workspace_id=workspace_id, customer_id=customer_id, clock=clock))
    return issued


def _birthday_days(today: date, days_before: int) -> list[tuple[int, int]]:
    """(month, day) of birthdays due an offer today: today through `days_before` days ahead; a
    29 February birthday counts as 28 February in other years."""
    pairs = []
    for offset in range(days_before + 1):
        day = today + timedelta(days=offset)
        pairs.append((day.month, day.day))
        if (day.month, day.day) == (2, 28) and not _is_leap(day.year):
            pairs.append((2, 29))
    return pairs


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def birthday_offers(session: Session, *, workspace_id: int, clock: Clock) -> int:
    """Birthday gifts: each birthday template goes to customers whose birthday is today or within
    its `days_before` days (brand-local), once a year (the key holds the birthday's year; the
    limit counts per birthday year). A job that missed days catches up while the birthday is
    still ahead."""
    zone = brand_zone(session, workspace_id)
    today = clock.now().astimezone(zone).date()
    issued = 0
    for template in offer_templates(session, workspace_id, CouponOffer.BIRTHDAY):
        pairs = _birthday_days(today, int(template.offer_settings.get("days_before") or 0))
        matches = or_(
            *(and_(extract("month", Customer.birthday) == m, extract("day", Customer.birthday) == d) for m, d in pairs)
        )
        rows = session.execute(
            select(Customer.id, Customer.birthday)
            .where(
                Customer.workspace_id == workspace_id,
                Customer.merged_into_id.is_(None),
                Customer.erased_at.is_(None),
                Customer.birthday.is_not(None),
                matches,
            )
            .order_by(Customer.id)
        ).all()
        for customer_id, birthday in rows:
            assert birthday is not None
            # The year of the birthday this offer is for (a 31 Dec birthday offered on 28 Dec of 2026
            # and one offered on 2 Jan are different years).
            year = today.year + (1 if (birthday.month, birthday.day) < (today.month, today.day) else 0)
            _, created = _try_issue(
                session,
                workspace_id=workspace_id,
                template_id=template.id,
                customer_id=customer_id,
                source="offer:birthday",
                key=f"offer:birthday:{year}:t{template.id}:c{customer_id}",
                clock=clock,
                occasion=f"birthday:{year}",
            )
            issued += created
    return issued


def is_member_day(settings: dict[str, object], day: date) -> bool:
    if "weekday" in settings:
        return day.isoweekday() == settings["weekday"]
    return day.day == settings.get("month_day")


def member_day_offers(session: Session, *, workspace_id: int, clock: Clock) -> int:
    """Member-day coupons: on the template's weekday (1 = Monday) or day of the month, every member
    (of `tier_ids` when given) gets one, once per member day (the limit counts per member day)."""
    zone = brand_zone(session, workspace_id)
    today = clock.now().astimezone(zone).date()
    issued = 0
    for template in offer_templates(session, workspace_id, CouponOffer.MEMBER_DAY):
        if not is_member_day(template.offer_settings, today):
            continue
        query = select(Member.customer_id).where(Member.workspace_id == workspace_id).order_by(Member.customer_id)
        tier_ids = template.offer_settings.get("tier_ids")
        if tier_ids:
            query = query.where(Member.tier_id.in_(tier_ids))
        for customer_id in session.scalars(query).all():
            _, created = _try_issue(
                session,
                workspace_id=workspace_id,
                template_id=template.id,
                customer_id=customer_id,
                source="offer:member_day",
                key=f"offer:member_day:{today.isoformat()}:t{template.id}:c{customer_id}",
                clock=clock,
                occasion=f"member_day:{today.isoformat()}",
            )
            issued += created
    return issued
