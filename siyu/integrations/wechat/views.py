"""Console page of the official account: `/integrations/wechat` (settings, connection test,
callback URL, parametric QR codes of live codes, last events and the last error)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.integrations.wechat.client import client_for
from siyu.integrations.wechat.config import SECRET_FIELDS, config_of, get_account
from siyu.integrations.wechat.qrcodes import ensure_qr
from siyu.integrations.wechat.service import AccountIn, callback_url, save_account, test_connection
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.kit.errors import DomainError, InvalidInput
from siyu.kit.ids import parse_id
from siyu.messaging.crypto import decrypt_credentials
from siyu.messaging.views.forms import field_of, text
from siyu.models import EventSource, EventStatus, IntegrationEvent, LiveCode, WechatQrCode
from siyu.web.deps import ConsoleCtx, FormDep
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
PAGE = "integrations/wechat/page.html"
FIELDS = frozenset(
    {"form", "app_id", "oauth_scope", "use_fake", "is_active", "live_code_id", "variant", *SECRET_FIELDS}
)


def _on(form: Any, key: str) -> bool:
    return text(form, key) in ("1", "on", "true")


def _page(
    request: Request,
    ctx: ConsoleCtx,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    test_error: str | None = None,
    tested: bool = False,
    status_code: int = 200,
) -> Response:
    account = get_account(ctx.session, ctx.actor.workspace_id)
    saved: dict[str, Any] = {}
    if account is not None and account.secrets_encrypted:
        try:
            saved = decrypt_credentials(account.secrets_encrypted)
        except DomainError:
            saved = {}
    shown = values or {
        "app_id": account.app_id if account else "",
        "oauth_scope": account.oauth_scope if account else "snsapi_base",
        "use_fake": bool(account and account.is_fake),
        "is_active": account.is_active if account else True,
    }
    ws = ctx.actor.workspace_id
    events = ctx.session.scalars(
        select(IntegrationEvent)
        .where(IntegrationEvent.workspace_id == ws, IntegrationEvent.source == EventSource.OFFICIAL_ACCOUNT)
        .order_by(IntegrationEvent.id.desc())
        .limit(30)
    ).all()
    failed = ctx.session.scalar(
        select(func.count())
        .select_from(IntegrationEvent)
        .where(
            IntegrationEvent.workspace_id == ws,
            IntegrationEvent.source == EventSource.OFFICIAL_ACCOUNT,
            IntegrationEvent.status == EventStatus.FAILED,
        )
    )
    qr_rows = ctx.session.execute(
        select(WechatQrCode, LiveCode.name)
        .join(LiveCode, LiveCode.id == WechatQrCode.live_code_id)
        .where(WechatQrCode.workspace_id == ws)
        .order_by(WechatQrCode.id.desc())
        .limit(200)
    ).all()
    codes = ctx.session.execute(
        select(LiveCode.id, LiveCode.name)
        .where(LiveCode.workspace_id == ws, LiveCode.deleted_at.is_(None))
        .order_by(LiveCode.id.desc())
        .limit(200)
    ).all()
    context = {
        "account": account,
        "values": shown,
        "errors": errors or {},
        "secrets_set": {name: bool(saved.get(name)) for name in SECRET_FIELDS},
        "callback_url": callback_url(ctx.settings, ws),
        "login_url": f"{ctx.settings.public_url.rstrip('/')}/h5/wechat/login?ws={ws}",
        "events": events,
        "failed": failed or 0,
        "qr_rows": qr_rows,
        "codes": codes,
        "test_error": test_error,
        "tested": tested,
    }
    return render(request, PAGE, context, status_code=status_code)


@router.get("/integrations/wechat")
def wechat_page(request: Request, ctx: ConsoleCtx) -> Response:
    """The official-account page (`integrations:read`)."""
    ctx.actor.require(Scope.INTEGRATIONS_READ)
    return _page(request, ctx)


@router.post("/integrations/wechat")
def save_wechat(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Save the settings (`integrations:manage`); blank secrets keep the saved ones."""
    ctx.actor.require(Scope.INTEGRATIONS_MANAGE)
    values: dict[str, Any] = {
        "app_id": text(form, "app_id"),
        "oauth_scope": text(form, "oauth_scope") or "snsapi_base",
        "use_fake": _on(form, "use_fake"),
        "is_active": _on(form, "is_active"),
    }
    data = AccountIn(
        app_id=values["app_id"],
        oauth_scope=values["oauth_scope"],
        use_fake=values["use_fake"],
        is_active=values["is_active"],
        app_secret=text(form, "app_secret"),
        callback_token=text(form, "callback_token"),
        callback_aes_key=text(form, "callback_aes_key"),
    )
    try:
        save_account(ctx.session, actor=ctx.actor, data=data, settings=ctx.settings, clock=ctx.clock)
    except DomainError as exc:
        ctx.session.rollback()
        status_code = exc.status_code if 400 <= exc.status_code < 500 else 400
        errors = {field_of(exc, FIELDS): error_text(request, exc)}
        return _page(request, ctx, values=values, errors=errors, status_code=status_code)
    _ = translator(request)
    flash(request, _("公众号设置已保存"))
    return redirect("/integrations/wechat")


@router.post("/integrations/wechat/test")
def test_wechat(request: Request, ctx: ConsoleCtx) -> Response:
    """Connection test (`integrations:write`): fetch an access token with the saved secret."""
    ctx.actor.require(Scope.INTEGRATIONS_WRITE)
    account = get_account(ctx.session, ctx.actor.workspace_id)
    if account is None:
        return _page(request, ctx, test_error="not configured", tested=True, status_code=400)
    try:
        error = test_connection(ctx.session, config_of(account), ctx.clock)
    except NotConfigured as exc:
        error = str(exc)
    return _page(request, ctx, test_error=error, tested=True)


@router.post("/integrations/wechat/qr")
def create_qr(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    """Create a live code's parametric QR (`integrations:write`); `variant` optional."""
    ctx.actor.require(Scope.INTEGRATIONS_WRITE)
    account = get_account(ctx.session, ctx.actor.workspace_id)
    try:
        live_code_id = parse_id(text(form, "live_code_id"))
        if live_code_id is None:
            raise InvalidInput("live_code_id is required", details={"field": "live_code_id"})
        if account is None or not account.is_active:
            raise InvalidInput("the official account is not configured", details={"field": "form"})
        config = config_of(account)
        ensure_qr(
            ctx.session,
            config,
            client_for(config),
            live_code_id=live_code_id,
            variant=text(form, "variant") or None,
            clock=ctx.clock,
        )
    except DomainError as exc:
        ctx.session.rollback()
        status_code = exc.status_code if 400 <= exc.status_code < 500 else 400
        return _page(request, ctx, errors={field_of(exc, FIELDS): error_text(request, exc)}, status_code=status_code)
    except (WecomError, NotConfigured) as exc:
        ctx.session.rollback()
        return _page(request, ctx, errors={"live_code_id": str(exc)}, status_code=502)
    _ = translator(request)
    flash(request, _("公众号二维码已生成"))
    return redirect("/integrations/wechat#qrcodes")
