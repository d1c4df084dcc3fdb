"""Commerce settings: what happens to an order whose buyer matches no customer, coupons given back
on a full refund, and the order webhook's secret (rotated here, shown once)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.commerce import settings as service
from siyu.commerce.views.kit import validated
from siyu.kit.errors import DomainError
from siyu.models import UnknownCustomerPolicy, Workspace
from siyu.web.deps import ConsoleCtx, Ctx, FormDep
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)


def _page(request: Request, ctx: Ctx, *, secret: str | None = None, errors: dict[str, str] | None = None) -> Response:
    workspace = ctx.session.get(Workspace, ctx.actor.workspace_id)
    context = {
        "settings": service.view(ctx.session, workspace_id=ctx.actor.workspace_id),
        "policies": [str(p) for p in UnknownCustomerPolicy],
        "secret": secret,
        "webhook_path": f"/hooks/orders/{workspace.slug if workspace else ''}",
        "errors": errors or {},
    }
    return render(request, "commerce/settings.html", context, status_code=422 if errors else 200)


@router.get("/commerce/settings")
def settings_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.COMMERCE_SETTINGS)
    return _page(request, ctx)


@router.post("/commerce/settings")
def save_settings(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.COMMERCE_SETTINGS)
    policy = form.get("unknown_customer")
    try:
        restore = form.get("restore_coupon_on_refund") == "on"
        data = validated(
            service.CommerceSettingsIn, {"unknown_customer": policy or None, "restore_coupon_on_refund": restore}
        )
        service.update_settings(ctx.session, actor=ctx.actor, data=data, clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        return _page(request, ctx, errors={"form": error_text(request, exc)})
    _ = translator(request)
    flash(request, _("订单设置已保存"))
    return redirect("/commerce/settings")


@router.post("/commerce/settings/webhook-secret")
def rotate_secret(request: Request, ctx: ConsoleCtx) -> Response:
    """Make a new webhook secret and show it on this response only; the old one stops working."""
    ctx.actor.require(Scope.COMMERCE_SETTINGS)
    secret = service.rotate_webhook_secret(ctx.session, actor=ctx.actor, clock=ctx.clock)
    return _page(request, ctx, secret=secret)
