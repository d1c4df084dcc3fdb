"""Console pages of the WeCom integration: `/integrations/wecom` (configuration, connection test,
callback URL, last events, sync status, last error, audit of changes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.integrations.wecom.config import SECRET_FIELDS
from siyu.integrations.wecom.errors import KNOWN_CODES
from siyu.integrations.wecom.settings.service import (
    SettingsIn,
    check_connection,
    integration_view,
    save_settings,
)
from siyu.kit.errors import DomainError, InvalidInput
from siyu.messaging.views.forms import field_of, text, validated
from siyu.models import EventStatus
from siyu.web.deps import ConsoleCtx, FormDep
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
PAGE = "integrations/wecom/page.html"
FIELDS = frozenset({"form", "corp_id", "agent_id", "use_fake", "is_active", *SECRET_FIELDS})


def _on(form: Any, key: str) -> bool:
    return text(form, key) in ("1", "on", "true")


def _page(
    request: Request,
    ctx: ConsoleCtx,
    *,
    status: str | None = None,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    view = integration_view(ctx.session, ctx.actor, ctx.settings, event_status=status)
    integration = view.integration
    shown = values or {
        "corp_id": integration.corp_id if integration else "",
        "agent_id": (integration.agent_id or "") if integration else "",
        "use_fake": bool(integration and integration.is_fake),
        "is_active": integration.is_active if integration else True,
    }
    context = {
        "view": view,
        "values": shown,
        "errors": errors or {},
        "status": status or "",
        "statuses": [str(s) for s in EventStatus],
        "known_codes": KNOWN_CODES,
        "fake_mounted": bool(getattr(request.app.state, "fake_wecom", None) is not None),
    }
    return render(request, PAGE, context, status_code=status_code)


@router.get("/integrations/wecom")
def wecom_page(request: Request, ctx: ConsoleCtx, status: str = "") -> Response:
    """The integration page (`integrations:read`); `?status=failed` filters the events."""
    ctx.actor.require(Scope.INTEGRATIONS_READ)
    chosen = status if status in {str(s) for s in EventStatus} else None
    return _page(request, ctx, status=chosen)


@router.post("/integrations/wecom")
def save_wecom(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Save the corp settings (`integrations:manage`); blank secrets keep the saved ones."""
    ctx.actor.require(Scope.INTEGRATIONS_MANAGE)
    values: dict[str, Any] = {
        "corp_id": text(form, "corp_id"),
        "agent_id": text(form, "agent_id"),
        "use_fake": _on(form, "use_fake"),
        "is_active": _on(form, "is_active"),
    }
    data = values | {name: text(form, name) or None for name in SECRET_FIELDS}
    try:
        save_settings(
            ctx.session, actor=ctx.actor, data=validated(SettingsIn, data), clock=ctx.clock, settings=ctx.settings
        )
    except DomainError as exc:
        ctx.session.rollback()
        status_code = exc.status_code if 400 <= exc.status_code < 500 else 400
        errors = {field_of(exc, FIELDS): error_text(request, exc)}
        return _page(request, ctx, values=values, errors=errors, status_code=status_code)
    _ = translator(request)
    flash(request, _("企业微信设置已保存"))
    return redirect("/integrations/wecom")


@router.post("/integrations/wecom/test")
def test_wecom(request: Request, ctx: ConsoleCtx) -> Response:
    """Run the connection test (`integrations:write`; HTMX: the result replaces the panel)."""
    ctx.actor.require(Scope.INTEGRATIONS_WRITE)
    try:
        checks = check_connection(ctx.session, actor=ctx.actor, clock=ctx.clock, settings=ctx.settings)
    except InvalidInput as exc:
        return render(
            request, "integrations/wecom/_test_result.html", {"checks": [], "error": error_text(request, exc)}
        )
    return render(request, "integrations/wecom/_test_result.html", {"checks": checks, "error": None})
