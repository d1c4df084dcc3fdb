"""The member panel on the customer page: tier and its history, balance and ledger, coupons, orders.

Loaded into `customers/detail.html` by HTMX (`customers/_member.html`), so the customer page needs
no loyalty code; each section shows only if the actor holds its read scope.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.customers.repository import get_visible
from siyu.loyalty.members import get_member
from siyu.loyalty.views import queries
from siyu.models import Coupon, CouponTemplate, Order
from siyu.web.deps import ConsoleCtx, IdPath
from siyu.web.templating import render

router = APIRouter(include_in_schema=False)
SHOWN = 10


@router.get("/customers/{customer_id}/member")
def member_panel(request: Request, ctx: ConsoleCtx, customer_id: IdPath, cursor: str | None = None) -> Response:
    ctx.actor.require(Scope.CUSTOMERS_READ)
    customer = get_visible(ctx.session, ctx.actor, customer_id)
    ws = ctx.actor.workspace_id
    context: dict[str, Any] = {
        "customer": customer,
        "member": None,
        "loyalty": False,
        "commerce": False,
        "entries": [],
        "entries_next": None,
    }
    if ctx.actor.can(Scope.LOYALTY_READ):
        context["loyalty"] = True
        member = get_member(ctx.session, ws, customer.id)
        context["member"] = member
        context["tier_names"] = queries.tier_names(ctx.session, ws)
        if member is not None:
            until = ctx.clock.now() + timedelta(days=queries.notice_days(ctx.session, ws))
            page = queries.ledger(ctx.session, member, cursor=cursor, limit=SHOWN)
            context |= {
                "entries": page.items,
                "entries_next": f"/customers/{customer.id}/member?cursor={page.next_cursor}"
                if page.next_cursor
                else None,
                "changes": queries.tier_changes(ctx.session, member, limit=SHOWN),
                "expiring": queries.expiring_within(ctx.session, member, until=until),
            }
    if ctx.actor.can(Scope.COMMERCE_READ):
        context["commerce"] = True
        context["coupons"] = ctx.session.execute(
            select(Coupon, CouponTemplate.name)
            .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
            .where(Coupon.workspace_id == ws, Coupon.customer_id == customer.id)
            .order_by(Coupon.id.desc())
            .limit(SHOWN)
        ).all()
        context["orders"] = list(
            ctx.session.scalars(
                select(Order)
                .where(Order.workspace_id == ws, Order.customer_id == customer.id)
                .order_by(Order.paid_at.desc(), Order.id.desc())
                .limit(SHOWN)
            )
        )
    template = "loyalty/_ledger_rows.html" if cursor else "loyalty/_member_panel.html"
    return render(request, template, context)
