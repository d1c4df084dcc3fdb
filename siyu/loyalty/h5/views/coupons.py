"""My coupons: unused (code shown big, soonest expiry first), used, expired."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.loyalty.h5 import reading
from siyu.loyalty.h5.reading import CouponTab
from siyu.loyalty.h5.views.common import (
    MemberDep,
    MemberRoute,
    clock_of,
    member_transaction,
    render_member,
    translator,
    yuan,
)
from siyu.models import CouponKind, CouponTemplate

router = APIRouter(route_class=MemberRoute)


def coupon_value(template: CouponTemplate, _: Callable[[str], str]) -> str:
    """What the coupon is worth, as printed on it: ¥20, 8.5折, 包邮, 赠品."""
    if template.kind == CouponKind.AMOUNT_OFF:
        return _("¥{amount}").format(amount=yuan(template.value))
    if template.kind == CouponKind.PERCENT_OFF:
        return _("{discount} 折").format(discount=f"{(100 - template.value) / 10:g}")
    if template.kind == CouponKind.FREE_SHIPPING:
        return _("包邮")
    return _("赠品")


def coupon_terms(template: CouponTemplate, _: Callable[[str], str]) -> str:
    """When it can be used: the threshold, the cap of a percentage, the gift."""
    parts = [
        _("满 ¥{amount} 可用").format(amount=yuan(template.threshold_fen)) if template.threshold_fen else _("无门槛")
    ]
    if template.kind == CouponKind.PERCENT_OFF and template.max_discount_fen:
        parts.append(_("最多减 ¥{amount}").format(amount=yuan(template.max_discount_fen)))
    if template.kind == CouponKind.GIFT and template.gift_name:
        parts.append(template.gift_name)
    return " · ".join(parts)


@router.get("/coupons")
def coupons(request: Request, member: MemberDep, tab: str = CouponTab.UNUSED) -> Response:
    """The member's coupons in one tab, with how many each tab holds."""
    if tab not in CouponTab.ALL:
        tab = CouponTab.UNUSED
    _ = translator(request)
    with member_transaction(request, member, read_only=True) as session:
        views, counts = reading.member_coupons(
            session, workspace_id=member.workspace_id, customer_id=member.customer_id, tab=tab, clock=clock_of(request)
        )
        return render_member(
            request,
            session,
            member,
            "member/coupons.html",
            {
                "coupons": views,
                "counts": counts,
                "current": tab,
                "tabs": [
                    (CouponTab.UNUSED, _("未使用")),
                    (CouponTab.USED, _("已使用")),
                    (CouponTab.EXPIRED, _("已过期")),
                ],
                "value_of": lambda t: coupon_value(t, _),
                "terms_of": lambda t: coupon_terms(t, _),
            },
            tab="coupons",
        )
