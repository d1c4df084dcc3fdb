"""Coupon rules for operators: templates (create, change, archive), issuing by hand, redeeming
against an order, voiding, and listing. Issuing and redeeming themselves live in `issuing.py`
and `redeeming.py` (the order and loyalty areas call those directly)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audit.service import record
from siyu.auth.permissions import Actor, Scope
from siyu.commerce.coupons.issuing import issue_coupon, normalise_code
from siyu.commerce.coupons.redeeming import redeem_for_order
from siyu.commerce.coupons.schemas import CouponTemplateIn
from siyu.commerce.errors import CouponNotFound, CouponNotUsable, CouponTemplateNotFound, OrderNotFound
from siyu.customers.repository import get_visible, visibility_clause
from siyu.kit.clock import Clock
from siyu.kit.errors import Conflict, InvalidInput
from siyu.kit.pagination import MAX_PAGE_SIZE, Page, decode_id_cursor, encode_cursor
from siyu.models import (
    Coupon,
    CouponEvent,
    CouponState,
    CouponTemplate,
    CouponTemplateStatus,
    Customer,
    Order,
    Segment,
)

OFFER_SETTING_KEYS = {
    "none": set(),
    "first_order": {"valid_days"},
    "birthday": {"days_before"},
    "member_day": {"weekday", "month_day", "tier_ids"},
    "tier_welcome": {"tier_id"},
}
FROZEN_ONCE_ISSUED = ("kind", "value", "max_discount_fen", "threshold_fen", "channels", "gift_name")
"""What an issued coupon is worth and where it is usable: fixed once a coupon of the template exists."""

# --- templates ----------------------------------------------------------------------------------


def get_template(session: Session, actor: Actor, template_id: int, *, for_update: bool = False) -> CouponTemplate:
    actor.require(Scope.COMMERCE_READ)
    query = select(CouponTemplate).where(
        CouponTemplate.id == template_id, CouponTemplate.workspace_id == actor.workspace_id
    )
    template = session.scalar(query.with_for_update() if for_update else query)
    if template is None:
        raise CouponTemplateNotFound(f"coupon template {template_id} not found")
    return template


def list_templates(
    session: Session, actor: Actor, *, status: CouponTemplateStatus | None = None
) -> Sequence[CouponTemplate]:
    """Newest first (at most 500)."""
    actor.require(Scope.COMMERCE_READ)
    query = select(CouponTemplate).where(CouponTemplate.workspace_id == actor.workspace_id)
    if status is not None:
        query = query.where(CouponTemplate.status == status)
    return session.scalars(query.order_by(CouponTemplate.id.desc()).limit(500)).all()


def _check_offer(data: CouponTemplateIn) -> dict[str, Any]:
    """The offer settings, checked: unknown keys and out-of-range numbers name the field."""
    settings = dict(data.offer_settings)
    allowed = OFFER_SETTING_KEYS[str(data.offer)]
    for key in settings:
        if key not in allowed:
            raise InvalidInput(
                f"unknown offer setting {key!r} for {data.offer}", details={"field": f"offer_settings.{key}"}
            )

    def number(key: str, low: int, high: int) -> None:
        value = settings.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high):
            raise InvalidInput(
                f"{key} must be a whole number from {low} to {high}", details={"field": f"offer_settings.{key}"}
            )

    number("valid_days", 1, 3650)
    number("days_before", 0, 60)
    number("weekday", 1, 7)
    number("month_day", 1, 31)
    number("tier_id", 1, 2**53)
    if data.offer == "member_day" and ("weekday" in settings) == ("month_day" in settings):
        raise InvalidInput(
            "a member day is a weekday (1 = Monday) or a day of the month", details={"field": "offer_settings"}
        )
    if data.offer == "tier_welcome" and "tier_id" not in settings:
        raise InvalidInput("a tier-welcome coupon names its tier", details={"field": "offer_settings.tier_id"})
    tier_ids = settings.get("tier_ids")
    if tier_ids is not None and (
        not isinstance(tier_ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tier_ids)
    ):
        raise InvalidInput("tier_ids must be a list of tier ids", details={"field": "offer_settings.tier_ids"})
    return settings


def _values(data: CouponTemplateIn) -> dict[str, Any]:
    return {
        "name": data.name.strip(),
        "kind": data.kind,
        "value": data.value,
        "max_discount_fen": data.max_discount_fen,
        "gift_name": data.gift_name,
        "threshold_fen": data.threshold_fen,
        "valid_from": data.valid_from,
        "valid_until": data.valid_until,
        "valid_days": data.valid_days,
        "per_customer_limit": data.per_customer_limit,
        "total_stock": data.total_stock,
        "channels": [str(c) for c in data.channels],
        "offer": data.offer,
        "offer_settings": _check_offer(data),
        "description": data.description,
    }


def _frozen_value(field: str, value: Any) -> Any:
    """A frozen field as compared: channels in any order, a blank gift name as none."""
    if field == "channels":
        return sorted(str(c) for c in value or [])
    if field == "gift_name":
        return (value or "").strip() or None
    return value


def _audit_values(values: dict[str, Any]) -> dict[str, Any]:
    as_text = ("valid_from", "valid_until", "kind", "offer")
    return {k: (str(v) if v is not None and k in as_text else v) for k, v in values.items()}


def _unique_name(session: Session, actor: Actor, name: str, exclude: int | None = None) -> None:
    query = select(CouponTemplate.id).where(
        CouponTemplate.workspace_id == actor.workspace_id, CouponTemplate.name == name
    )
    if exclude is not None:
        query = query.where(CouponTemplate.id != exclude)
    if session.scalar(query) is not None:
        raise Conflict(f"a coupon template named {name!r} exists", details={"field": "name"})


def create_template(session: Session, *, actor: Actor, data: CouponTemplateIn, clock: Clock) -> CouponTemplate:
    actor.require(Scope.COMMERCE_WRITE)
    values = _values(data)
    _unique_name(session, actor, values["name"])
    now = clock.now()
    template = CouponTemplate(
        workspace_id=actor.workspace_id,
        status=CouponTemplateStatus.ACTIVE,
        issued_count=0,
        created_at=now,
        updated_at=now,
        **values,
    )
    session.add(template)
    session.flush()
    record(
        session,
        actor,
        action="create",
        entity_type="coupon_template",
        entity_id=template.id,
        after=_audit_values(values),
        clock=clock,
    )
    return template


def update_template(
    session: Session, *, actor: Actor, template_id: int, data: CouponTemplateIn, clock: Clock
) -> CouponTemplate:
    """Change a template. Once coupons were issued, what they are worth (`FROZEN_ONCE_ISSUED`:
    redemption reads it from the template) is refused with a 409 naming the field; the name,
    description, stock, status and the validity of future issues may still change. Coupons already
    issued keep their validity. Stock below what was issued is refused."""
    actor.require(Scope.COMMERCE_WRITE)
    template = get_template(session, actor, template_id, for_update=True)
    values = _values(data)
    if template.issued_count > 0:
        for field in FROZEN_ONCE_ISSUED:
            if _frozen_value(field, values[field]) != _frozen_value(field, getattr(template, field)):
                raise Conflict(
                    f"{field} cannot change: {template.issued_count} coupons of this template were issued "
                    "(create a new template instead)",
                    details={"field": field, "issued_count": template.issued_count},
                )
    _unique_name(session, actor, values["name"], exclude=template.id)
    if values["total_stock"] is not None and values["total_stock"] < template.issued_count:
        raise InvalidInput(
            f"{template.issued_count} coupons were already issued; stock cannot be lower",
            details={"field": "total_stock"},
        )
    before = {k: getattr(template, k) for k in values}
    for key, value in values.items():
        setattr(template, key, value)
    template.updated_at = clock.now()
    record(
        session,
        actor,
        action="update",
        entity_type="coupon_template",
        entity_id=template.id,
        before=_audit_values(before),
        after=_audit_values(values),
        clock=clock,
    )
    return template


def archive_template(session: Session, *, actor: Actor, template_id: int, clock: Clock) -> CouponTemplate:
    """Stop issuing the template; coupons already issued stay usable."""
    actor.require(Scope.COMMERCE_WRITE)
    template = get_template(session, actor, template_id, for_update=True)
    if template.status != CouponTemplateStatus.ARCHIVED:
        template.status, template.updated_at = CouponTemplateStatus.ARCHIVED, clock.now()
        record(session, actor, action="archive", entity_type="coupon_template", entity_id=template.id, clock=clock)
    return template


# --- coupons ------------------------------------------------------------------------------------


def issue_to_customer(
    session: Session,
    *,
    actor: Actor,
    template_id: int,
    customer_id: int,
    idempotency_key: str,
    clock: Clock,
) -> tuple[Coupon, bool]:
    """Issue one coupon by hand or API (source "api"); returns (coupon, created)."""
    actor.require(Scope.COMMERCE_WRITE)
    get_visible(session, actor, customer_id)
    key = f"api:{idempotency_key}"
    existing = session.scalar(
        select(Coupon).where(Coupon.workspace_id == actor.workspace_id, Coupon.idempotency_key == key)
    )
    if existing is not None:
        if existing.template_id != template_id or existing.customer_id != customer_id:
            raise Conflict(
                "this idempotency key was used for another template or customer",
                details={"field": "idempotency_key"},
            )
        return existing, False
    coupon = issue_coupon(
        session,
        workspace_id=actor.workspace_id,
        template_id=template_id,
        customer_id=customer_id,
        source="api",
        idempotency_key=key,
        clock=clock,
        actor_label=actor.label,
    )
    record(
        session,
        actor,
        action="issue",
        entity_type="coupon",
        entity_id=coupon.id,
        after={"template_id": template_id, "customer_id": customer_id, "code": coupon.code},
        clock=clock,
    )
    return coupon, True


def check_segment(session: Session, actor: Actor, segment_id: int) -> Segment:
    segment = session.scalar(
        select(Segment).where(Segment.id == segment_id, Segment.workspace_id == actor.workspace_id)
    )
    if segment is None or segment.archived_at is not None:
        raise InvalidInput("unknown or archived segment", details={"field": "segment_id"})
    return segment


def get_coupon(session: Session, actor: Actor, coupon_id: int, *, for_update: bool = False) -> Coupon:
    """A coupon of a customer the actor may see."""
    actor.require(Scope.COMMERCE_READ)
    query = (
        select(Coupon)
        .join(Customer, Customer.id == Coupon.customer_id)
        .where(Coupon.id == coupon_id, Coupon.workspace_id == actor.workspace_id, visibility_clause(actor))
    )
    coupon = session.scalar(query.with_for_update(of=Coupon) if for_update else query)
    if coupon is None:
        raise CouponNotFound(f"coupon {coupon_id} not found")
    return coupon


def get_by_code(session: Session, actor: Actor, code: str) -> Coupon:
    actor.require(Scope.COMMERCE_READ)
    coupon = session.scalar(
        select(Coupon)
        .join(Customer, Customer.id == Coupon.customer_id)
        .where(
            Coupon.workspace_id == actor.workspace_id,
            Coupon.code == normalise_code(code),
            visibility_clause(actor),
        )
    )
    if coupon is None:
        raise CouponNotFound(f"no coupon with code {normalise_code(code)}", details={"field": "code"})
    return coupon


@dataclass(frozen=True)
class CouponFilter:
    customer_id: int | None = None
    state: CouponState | None = None
    template_id: int | None = None


def list_coupons(
    session: Session, actor: Actor, flt: CouponFilter, *, cursor: str | None = None, limit: int = 50
) -> Page[Coupon]:
    """Newest first, cursor-paginated; staff see their customers' coupons only."""
    actor.require(Scope.COMMERCE_READ)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = (
        select(Coupon)
        .join(Customer, Customer.id == Coupon.customer_id)
        .where(Coupon.workspace_id == actor.workspace_id, visibility_clause(actor))
    )
    if flt.customer_id is not None:
        query = query.where(Coupon.customer_id == flt.customer_id)
    if flt.state is not None:
        query = query.where(Coupon.state == flt.state)
    if flt.template_id is not None:
        query = query.where(Coupon.template_id == flt.template_id)
    if cursor:
        query = query.where(Coupon.id < decode_id_cursor(cursor))
    rows = list(session.scalars(query.order_by(Coupon.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1].id) if more and rows else None)


def coupon_events(session: Session, coupon: Coupon) -> Sequence[CouponEvent]:
    return session.scalars(select(CouponEvent).where(CouponEvent.coupon_id == coupon.id).order_by(CouponEvent.id)).all()


def redeem_code(session: Session, *, actor: Actor, code: str, order_id: int, clock: Clock) -> Coupon:
    """Redeem a coupon against an order already in siyu (the shop did not pass the code along).

    The order records the code; an order already naming another coupon is refused."""
    actor.require(Scope.COMMERCE_WRITE)
    order = session.scalar(
        select(Order)
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.id == order_id, Order.workspace_id == actor.workspace_id, visibility_clause(actor))
        .with_for_update(of=Order)
    )
    if order is None:
        raise OrderNotFound(f"order {order_id} not found", details={"field": "order_id"})
    clean = normalise_code(code)
    if order.coupon_code and normalise_code(order.coupon_code) != clean:
        raise CouponNotUsable(
            f"order {order_id} already used coupon {order.coupon_code}", details={"field": "order_id"}
        )
    order.coupon_code = clean
    coupon = redeem_for_order(session, order=order, clock=clock)
    record(
        session,
        actor,
        action="redeem",
        entity_type="coupon",
        entity_id=coupon.id,
        after={"order_id": order.id, "discount_fen": coupon.discount_fen},
        clock=clock,
    )
    return coupon


def void_coupon(session: Session, *, actor: Actor, coupon_id: int, reason: str, clock: Clock) -> Coupon:
    """An operator voids an unused coupon (with a reason). Voiding a void coupon changes nothing;
    a redeemed or expired one cannot be voided."""
    actor.require(Scope.COMMERCE_WRITE)
    reason = reason.strip()
    if not reason:
        raise InvalidInput("give a reason", details={"field": "reason"})
    coupon = get_coupon(session, actor, coupon_id, for_update=True)
    if coupon.state == CouponState.VOID:
        return coupon
    if coupon.state != CouponState.ISSUED:
        raise Conflict(f"a {coupon.state} coupon cannot be voided", details={"state": str(coupon.state)})
    now = clock.now()
    coupon.state, coupon.voided_at, coupon.void_reason = CouponState.VOID, now, reason[:200]
    session.add(
        CouponEvent(
            workspace_id=coupon.workspace_id,
            coupon_id=coupon.id,
            kind="voided",
            reason=reason[:200],
            actor=actor.label,
            occurred_at=now,
        )
    )
    record(
        session,
        actor,
        action="void",
        entity_type="coupon",
        entity_id=coupon.id,
        before={"state": "issued"},
        after={"state": "void", "reason": reason[:200]},
        clock=clock,
    )
    return coupon
