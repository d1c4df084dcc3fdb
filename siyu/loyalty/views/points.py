"""Points: find a member, read their ledger, and adjust their points by hand with a reason."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.commerce.views.kit import parse_int
from siyu.customers.repository import get_visible
from siyu.kit.errors import DomainError, InvalidInput
from siyu.kit.ids import random_token
from siyu.loyalty.members import get_member
from siyu.loyalty.points.service import adjust_points
from siyu.loyalty.views import queries
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)


@router.get("/loyalty/points")
def points_page(request: Request, ctx: ConsoleCtx, q: str = "") -> Response:
    ctx.actor.require(Scope.LOYALTY_READ)
    q = q.strip()
    rows = queries.search_members(ctx.session, ctx.actor, q) if q else queries.top_members(ctx.session, ctx.actor)
    context = {"rows": rows, "q": q, "tier_names": queries.tier_names(ctx.session, ctx.actor.workspace_id)}
    return render(request, "loyalty/points.html", context)


def _member_context(ctx: Ctx, customer_id: int, cursor: str | None) -> dict[str, Any]:
    customer = get_visible(ctx.session, ctx.actor, customer_id)
    ws = ctx.actor.workspace_id
    member = get_member(ctx.session, ws, customer.id)
    context: dict[str, Any] = {
        "customer": customer,
        "member": member,
        "tier_names": queries.tier_names(ctx.session, ws),
        "entries": [],
        "entries_next": None,
        "adjust_key": random_token(12),
        "adjust_values": {},
        "errors": {},
    }
    if member is not None:
        page = queries.ledger(ctx.session, member, cursor=cursor, limit=50)
        until = ctx.clock.now() + timedelta(days=queries.notice_days(ctx.session, ws))
        context |= {
            "entries": page.items,
            "entries_next": f"/loyalty/points/{customer.id}?cursor={page.next_cursor}" if page.next_cursor else None,
            "expiring": queries.expiring_within(ctx.session, member, until=until),
        }
    return context


@router.get("/loyalty/points/{customer_id}")
def member_points_page(request: Request, ctx: ConsoleCtx, customer_id: IdPath, cursor: str | None = None) -> Response:
    ctx.actor.require(Scope.LOYALTY_READ)
    return render(request, "loyalty/member_points.html", _member_context(ctx, customer_id, cursor))


@router.post("/loyalty/points/{customer_id}/adjust")
def adjust(request: Request, ctx: ConsoleCtx, customer_id: IdPath, form: FormDep) -> Response:
    """Add or take points with the reason the member will read; the form's one-time key makes a
    double submit count once."""
    ctx.actor.require(Scope.LOYALTY_ADJUST)
    values = {k: v.strip() if isinstance(v := form.get(k), str) else "" for k in ("points", "reason", "key")}
    _ = translator(request)
    try:
        points = parse_int(values["points"], "points", allow_negative=True)
        if points == 0:
            raise InvalidInput("points: give a number of points other than 0", details={"field": "points"})
        if not values["key"]:
            raise InvalidInput("reload the page and try again", details={"field": "form"})
        entry = adjust_points(
            ctx.session,
            actor=ctx.actor,
            customer_id=customer_id,
            points=points,
            reason=values["reason"],
            idempotency_key=f"console-adjust:{values['key']}",
            clock=ctx.clock,
        )
    except DomainError as exc:
        if exc.status_code in (403, 404):
            raise
        ctx.session.rollback()
        context = _member_context(ctx, customer_id, None)
        context["adjust_values"] = values
        context["errors"] = {"adjust": error_text(request, exc)}
        return render(request, "loyalty/member_points.html", context, status_code=exc.status_code)
    flash(request, _("积分已调整") + f": {entry.amount:+,} → {entry.balance_after:,}")
    return redirect(f"/loyalty/points/{customer_id}")
