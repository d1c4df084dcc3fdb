"""Issuing coupons: one coupon of a template to one customer, idempotent on a key.

Caps are never count-then-insert. Total stock is enforced under the template's row lock
(`issued_count` moves in the same transaction as the insert); the per-customer limit is the
unique `(template, customer, occasion, slot)` key, slot 1..`per_customer_limit`: for life when
`occasion` is "" (the default), per occasion for recurring offers (a member day, a birthday year).
Lock order is the brief's:
customers → members → coupon templates → rewards, so callers that already hold a member lock
(the rewards mall, tier upgrades) may call this.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.commerce.errors import CouponLimitReached, CouponNotUsable, CouponOutOfStock, CouponTemplateNotFound
from siyu.customers.errors import CustomerNotFound
from siyu.kit.clock import Clock, as_utc
from siyu.loyalty.program import brand_zone, local_midnight
from siyu.models import Coupon, CouponEvent, CouponState, CouponTemplate, CouponTemplateStatus, Customer

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
"""Human-typable: no 0/O or 1/I that people mistake for each other on a phone screen."""
CODE_LENGTH = 10
CODE_ATTEMPTS = 8
OCCASION_LENGTH = 40


def new_code(length: int = CODE_LENGTH) -> str:
    """A random code of `length` characters from `CODE_ALPHABET` (32**10 ≈ 10**15 codes)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def normalise_code(code: str) -> str:
    """What a person typed, as stored: upper case, without spaces or dashes."""
    return "".join(ch for ch in code.upper() if ch not in " -\t")


def by_key(session: Session, workspace_id: int, idempotency_key: str) -> Coupon | None:
    return session.scalar(
        select(Coupon).where(Coupon.workspace_id == workspace_id, Coupon.idempotency_key == idempotency_key)
    )


def lock_template(session: Session, workspace_id: int, template_id: int) -> CouponTemplate:
    template = session.scalar(
        select(CouponTemplate)
        .where(CouponTemplate.id == template_id, CouponTemplate.workspace_id == workspace_id)
        .with_for_update()
    )
    if template is None:
        raise CouponTemplateNotFound(f"coupon template {template_id} not found", details={"field": "template_id"})
    return template


def validity(session: Session, template: CouponTemplate, *, issued_at: datetime) -> tuple[datetime, datetime | None]:
    """(valid_from, expires_at) of a coupon issued now.

    `valid_days = N` means usable on N brand-local calendar days counting the day of issue: issued
    on 23 Nov with N = 7, it is usable through 29 Nov and expires at midnight starting 30 Nov.
    Otherwise the template's fixed window applies (`valid_until` None = never expires).
    """
    if template.valid_days is not None:
        zone = brand_zone(session, template.workspace_id)
        day = as_utc(issued_at).astimezone(zone).date()
        return issued_at, local_midnight(day + timedelta(days=template.valid_days), zone)
    start = as_utc(template.valid_from) if template.valid_from is not None else issued_at
    end = as_utc(template.valid_until) if template.valid_until is not None else None
    return start, end


def issue_coupon(
    session: Session,
    *,
    workspace_id: int,
    template_id: int,
    customer_id: int,
    source: str,
    idempotency_key: str,
    clock: Clock,
    actor_label: str | None = None,
    expires_at: datetime | None = None,
    occasion: str = "",
) -> Coupon:
    """Issue one coupon of `template_id` to `customer_id`; the same key returns the same coupon.

    Raises `CouponOutOfStock` when the total stock is gone, `CouponLimitReached` when the customer
    holds `per_customer_limit` coupons of the template for the occasion (void or used ones count:
    a limit of one without an occasion is one ever), `CouponNotUsable` for an archived template or
    one whose fixed window is over.
    `expires_at` overrides the validity (offers: a first-order coupon valid N days after joining).
    `occasion` scopes the limit: "" counts it for life; a recurring offer passes its occasion
    ("member_day:2026-11-23", "birthday:2027") so each occasion allows `per_customer_limit` again.
    """
    if len(occasion) > OCCASION_LENGTH:
        raise ValueError(f"occasion is at most {OCCASION_LENGTH} characters")
    if (done := by_key(session, workspace_id, idempotency_key)) is not None:
        return done
    customer = session.scalar(
        select(Customer.id).where(
            Customer.id == customer_id, Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None)
        )
    )
    if customer is None:
        raise CustomerNotFound(f"customer {customer_id} not found", details={"field": "customer_id"})
    template = lock_template(session, workspace_id, template_id)
    # A concurrent issue with the same key held the lock before us: it has written the coupon.
    if (done := by_key(session, workspace_id, idempotency_key)) is not None:
        return done
    now = clock.now()
    if template.status != CouponTemplateStatus.ACTIVE:
        raise CouponNotUsable(f"coupon template {template.name!r} is archived", details={"field": "template_id"})
    valid_from, until = validity(session, template, issued_at=now)
    if expires_at is not None:
        until = expires_at
    if until is not None and until <= now:
        raise CouponNotUsable(f"coupon template {template.name!r} is no longer valid", details={"field": "template_id"})
    if template.total_stock is not None and template.issued_count >= template.total_stock:
        raise CouponOutOfStock(
            f"coupon template {template.name!r} is out of stock ({template.total_stock} issued)",
            details={"field": "template_id", "total_stock": template.total_stock},
        )
    taken = set(
        session.scalars(
            select(Coupon.slot).where(
                Coupon.template_id == template.id, Coupon.customer_id == customer_id, Coupon.occasion == occasion
            )
        )
    )
    free = [slot for slot in range(1, template.per_customer_limit + 1) if slot not in taken]
    if not free:
        raise CouponLimitReached(
            f"the customer already holds {template.per_customer_limit} of {template.name!r}"
            + (f" for {occasion}" if occasion else ""),
            details={"field": "customer_id", "per_customer_limit": template.per_customer_limit},
        )
    coupon = _insert(
        session,
        template=template,
        customer_id=customer_id,
        slot=free[0],
        occasion=occasion,
        source=source,
        idempotency_key=idempotency_key,
        issued_at=now,
        valid_from=valid_from,
        expires_at=until,
    )
    template.issued_count += 1
    session.add(
        CouponEvent(
            workspace_id=workspace_id,
            coupon_id=coupon.id,
            kind="issued",
            reason=source,
            actor=actor_label,
            occurred_at=now,
        )
    )
    session.flush()
    return coupon


def _insert(
    session: Session,
    *,
    template: CouponTemplate,
    customer_id: int,
    slot: int,
    occasion: str,
    source: str,
    idempotency_key: str,
    issued_at: datetime,
    valid_from: datetime,
    expires_at: datetime | None,
) -> Coupon:
    """Insert with a fresh code, retrying on the (astronomically rare) code collision."""
    for _ in range(CODE_ATTEMPTS):
        code = new_code()
        coupon = Coupon(
            workspace_id=template.workspace_id,
            template_id=template.id,
            customer_id=customer_id,
            code=code,
            slot=slot,
            occasion=occasion,
            state=CouponState.ISSUED,
            source=source[:100],
            idempotency_key=idempotency_key,
            issued_at=issued_at,
            valid_from=valid_from,
            expires_at=expires_at,
        )
        try:
            with session.begin_nested():
                session.add(coupon)
                session.flush()
        except IntegrityError:
            clash = session.scalar(
                select(Coupon.id).where(Coupon.workspace_id == template.workspace_id, Coupon.code == code)
            )
            if clash is None:  # not the code: the unique slot key refused (a writer outside the lock)
                raise CouponLimitReached(
                    "the customer's coupon limit was reached concurrently", details={"field": "customer_id"}
                ) from None
            continue
        return coupon
    raise RuntimeError("could not find a free coupon code")  # pragma: no cover - 32**10 codes
