"""Operator rules: staff see only their customers' coupons; voiding; redeeming by code."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.commerce.coupons import service
from siyu.commerce.coupons.issuing import issue_coupon
from siyu.commerce.coupons.schemas import CouponTemplateIn
from siyu.commerce.errors import CouponNotFound
from siyu.kit.clock import FrozenClock
from siyu.kit.errors import Conflict, PermissionDenied
from siyu.models import AuditEntry, CouponKind, CouponState, CouponTemplate, Role
from tests.commerce.coupons.factories import buyer, make_template
from tests.factories import actor_for, make_staff, make_workspace


def test_staff_see_only_their_customers_coupons(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    staff = make_staff(db, workspace=ws, clock=clock)
    mine = buyer(db, workspace=ws, clock=clock)
    mine.owner_staff_id = staff.id
    theirs = buyer(db, workspace=ws, clock=clock)
    template = make_template(db, workspace=ws, clock=clock)
    coupons = [
        issue_coupon(
            db,
            workspace_id=ws.id,
            template_id=template.id,
            customer_id=c.id,
            source="api",
            idempotency_key=f"k{c.id}",
            clock=clock,
        )
        for c in (mine, theirs)
    ]
    db.flush()
    actor = actor_for(ws, role=Role.STAFF, staff_id=staff.id)
    page = service.list_coupons(db, actor, service.CouponFilter())
    assert [c.id for c in page.items] == [coupons[0].id]
    with pytest.raises(CouponNotFound):
        service.get_coupon(db, actor, coupons[1].id)
    # staff may read but not void
    with pytest.raises(PermissionDenied):
        service.void_coupon(db, actor=actor, coupon_id=coupons[0].id, reason="x", clock=clock)
    assert coupons[0].state == CouponState.ISSUED


def test_void_twice_is_one_void(db: Session, clock: FrozenClock) -> None:
    ws = make_workspace(db, clock=clock)
    customer = buyer(db, workspace=ws, clock=clock)
    template = make_template(db, workspace=ws, clock=clock)
    coupon = issue_coupon(
        db,
        workspace_id=ws.id,
        template_id=template.id,
        customer_id=customer.id,
        source="api",
        idempotency_key="k",
        clock=clock,
    )
    actor = actor_for(ws)
    service.void_coupon(db, actor=actor, coupon_id=coupon.id, reason=" 客户投诉 ", clock=clock)
    service.void_coupon(db, actor=actor, coupon_id=coupon.id, reason="again", clock=clock)
    assert (coupon.state, coupon.void_reason) == (CouponState.VOID, "客户投诉")
    assert [e.kind for e in service.coupon_events(db, coupon)] == ["issued", "voided"]


def _template_in(template: CouponTemplate, **changes: object) -> CouponTemplateIn:
    fields = (
        "name",
        "kind",
        "value",
        "max_discount_fen",
        "gift_name",
        "threshold_fen",
        "valid_from",
        "valid_until",
        "valid_days",
        "per_customer_limit",
        "total_stock",
        "channels",
        "offer",
        "offer_settings",
        "description",
    )
    return CouponTemplateIn.model_validate({f: getattr(template, f) for f in fields} | changes)


def test_what_issued_coupons_are_worth_cannot_change(db: Session, clock: FrozenClock) -> None:
    # given a ¥50-off template above ¥300, usable on taobao and jd, with one coupon issued
    ws = make_workspace(db, clock=clock)
    template = make_template(
        db, workspace=ws, clock=clock, value=5_000, threshold_fen=30_000, channels=["taobao", "jd"]
    )
    customer = buyer(db, workspace=ws, clock=clock)
    issue_coupon(
        db,
        workspace_id=ws.id,
        template_id=template.id,
        customer_id=customer.id,
        source="api",
        idempotency_key="k",
        clock=clock,
    )
    actor = actor_for(ws)
    changes: list[tuple[str, dict[str, object]]] = [
        ("value", {"value": 500}),
        ("kind", {"kind": CouponKind.PERCENT_OFF, "value": 15}),
        ("max_discount_fen", {"max_discount_fen": 1_000}),
        ("threshold_fen", {"threshold_fen": 0}),
        ("channels", {"channels": ["taobao"]}),
        ("gift_name", {"gift_name": "小样"}),
    ]
    # when each of kind, value, max discount, threshold, channels and gift name is changed
    for field, change in changes:
        with pytest.raises(Conflict) as refused:
            service.update_template(
                db, actor=actor, template_id=template.id, data=_template_in(template, **change), clock=clock
            )
        # then it is refused (409) naming the field, and the template is unchanged
        assert refused.value.status_code == 409
        assert refused.value.details == {"field": field, "issued_count": 1}
    db.refresh(template)
    assert (template.kind, template.value, template.threshold_fen, template.channels) == (
        "amount_off",
        5_000,
        30_000,
        ["taobao", "jd"],
    )
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "update")) == 0
    # when the name, description, stock, validity of future issues and channel order change
    changed = service.update_template(
        db,
        actor=actor,
        template_id=template.id,
        data=_template_in(
            template,
            name="满300减50（加印）",
            description="双十二",
            total_stock=500,
            valid_days=14,
            channels=["jd", "taobao"],
        ),
        clock=clock,
    )
    # then they are saved
    assert (changed.name, changed.description, changed.total_stock, changed.valid_days, changed.value) == (
        "满300减50（加印）",
        "双十二",
        500,
        14,
        5_000,
    )


def test_a_template_never_issued_may_change_its_value(db: Session, clock: FrozenClock) -> None:
    # given a ¥50-off template nobody holds yet
    ws = make_workspace(db, clock=clock)
    template = make_template(db, workspace=ws, clock=clock, value=5_000)
    # when it becomes 15% off
    changed = service.update_template(
        db,
        actor=actor_for(ws),
        template_id=template.id,
        data=_template_in(template, kind=CouponKind.PERCENT_OFF, value=15),
        clock=clock,
    )
    # then it is saved
    assert (changed.kind, changed.value) == ("percent_off", 15)
