"""The fulfilment queue: redemptions by status; ship with a tracking number, mark delivered, cancel."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.customers.masking import sees_pii
from siyu.kit.errors import DomainError
from siyu.loyalty.rewards import fulfilment
from siyu.loyalty.views import queries
from siyu.models import RedemptionStatus
from siyu.web.deps import ConsoleCtx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
STATUSES = tuple(str(s) for s in RedemptionStatus)


@router.get("/loyalty/redemptions")
def redemptions_page(
    request: Request, ctx: ConsoleCtx, status: str = "awaiting_shipment", cursor: str | None = None
) -> Response:
    """A work queue: one status at a time, oldest first (all statuses: newest first)."""
    ctx.actor.require(Scope.LOYALTY_READ)
    chosen = RedemptionStatus(status) if status in STATUSES else None
    page = queries.redemptions(ctx.session, ctx.actor, status=chosen, cursor=cursor)
    context = {
        "rows": page.items,
        "status": str(chosen) if chosen else "",
        "statuses": STATUSES,
        "counts": queries.status_counts(ctx.session, ctx.actor),
        "next_url": f"/loyalty/redemptions?status={status}&cursor={page.next_cursor}" if page.next_cursor else None,
        "pii": sees_pii(ctx.actor),
    }
    return render(request, "loyalty/redemptions.html", context)


def _back(form: object) -> str:
    status = form.get("back_status") if hasattr(form, "get") else None
    return (
        f"/loyalty/redemptions?status={status}"
        if isinstance(status, str) and status in STATUSES
        else ("/loyalty/redemptions")
    )


@router.post("/loyalty/redemptions/{redemption_id}/{action}")
def act(request: Request, ctx: ConsoleCtx, redemption_id: IdPath, action: str, form: FormDep) -> Response:
    """ship (tracking_no), deliver, cancel (reason); a refusal comes back as a message."""
    ctx.actor.require(Scope.LOYALTY_FULFIL)
    _ = translator(request)
    text = {k: v.strip() if isinstance(v := form.get(k), str) else "" for k in ("tracking_no", "reason")}
    rid, session = redemption_id, ctx.session
    try:
        if action == "ship":
            fulfilment.ship_redemption(
                ctx.session,
                actor=ctx.actor,
                redemption_id=redemption_id,
                tracking_no=text["tracking_no"],
                clock=ctx.clock,
            )
            message = _("已发货") + f": {text['tracking_no']}"
        elif action == "deliver":
            fulfilment.deliver_redemption(session, actor=ctx.actor, redemption_id=rid, clock=ctx.clock)
            message = _("已标记签收")
        elif action == "cancel":
            fulfilment.cancel_redemption(
                ctx.session,
                actor=ctx.actor,
                redemption_id=redemption_id,
                reason=text["reason"] or None,
                clock=ctx.clock,
            )
            message = _("兑换已取消，积分和库存已退回")
        else:
            return Response(status_code=404)
    except DomainError as exc:
        if exc.status_code in (403, 404):
            raise
        ctx.session.rollback()
        flash(request, error_text(request, exc), kind="error")
        return redirect(_back(form))
    flash(request, message)
    return redirect(_back(form))
