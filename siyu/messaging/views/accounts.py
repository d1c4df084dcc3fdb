"""Channel accounts: the list, new/edit with per-kind settings and write-only credentials, and
the "测试连接" check.

Credentials are never sent back to the browser: their inputs stay empty, with "已保存" as the
placeholder when the account has some; leaving them empty keeps the saved ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from siyu.auth.permissions import Scope
from siyu.kit.errors import DomainError, InvalidInput
from siyu.messaging.schemas import AccountIn
from siyu.messaging.service import accounts
from siyu.messaging.views.forms import field_of, text, validated
from siyu.models import AdapterKind, ChannelAccount, ConsentChannel
from siyu.web.deps import ConsoleCtx, Ctx, FormDep, IdPath
from siyu.web.pages import error_text, redirect
from siyu.web.templating import flash, render, translator

router = APIRouter(include_in_schema=False)
FORM = "channel_accounts/form.html"


def _(message: str) -> str:
    """Marks a field label for the catalogue; the template translates it when it renders."""
    return message


@dataclass(frozen=True)
class Field:
    """One input of a kind's settings or credentials."""

    key: str
    label: str
    """A msgid: the template translates it."""
    type: str = "text"
    """"text", "number", "bool" or "consent" (a consent channel select)."""
    required: bool = False
    hint: str = ""


_TIMEOUT = Field("timeout_s", _("超时（秒）"), "number", hint="10")
_CALLBACK = Field("callback_token", _("回调校验令牌"))
_WECOM_API = Field("api_base_url", _("接口地址"), hint="https://qyapi.weixin.qq.com/cgi-bin/")
_WECOM_SECRETS = (Field("corp_id", _("企业 ID（CorpID）")), Field("secret", _("客户联系 Secret")))
SETTINGS: dict[AdapterKind, tuple[Field, ...]] = {
    AdapterKind.SANDBOX: (Field("consent_channel", _("模拟的授权渠道"), "consent"),),
    AdapterKind.WECOM_CUSTOMER: (_WECOM_API, _TIMEOUT),
    AdapterKind.WECOM_GROUP: (_WECOM_API, _TIMEOUT),
    AdapterKind.SMS_ALIYUN: (
        Field("sign_name", _("短信签名"), required=True),
        Field("template_code", _("默认模板 ID")),
        Field("link_param", _("短链参数名"), hint="link"),
        Field("endpoint", _("接口地址"), hint="dysmsapi.aliyuncs.com"),
        _TIMEOUT,
    ),
    AdapterKind.SMS_TENCENT: (
        Field("sdk_app_id", _("SDK AppID"), required=True),
        Field("sign_name", _("短信签名"), required=True),
        Field("template_id", _("默认模板 ID")),
        Field("region", _("地域"), hint="ap-guangzhou"),
        Field("link_param", _("短链参数位置"), hint="3"),
        Field("endpoint", _("接口地址"), hint="sms.tencentcloudapi.com"),
        _TIMEOUT,
    ),
    AdapterKind.EMAIL: (
        Field("host", _("SMTP 服务器"), required=True),
        Field("port", _("端口"), "number"),
        Field("from_address", _("发件人"), required=True, hint="星河咖啡 <news@brand.example>"),
        Field("reply_to", _("回复地址")),
        Field("starttls", _("使用 STARTTLS"), "bool"),
        Field("ssl", _("使用 SSL"), "bool"),
        _TIMEOUT,
    ),
    AdapterKind.WEBHOOK: (Field("url", _("Webhook 地址"), required=True, hint="https://"), _TIMEOUT),
    AdapterKind.OFFICIAL_ACCOUNT: (
        Field("template_id", _("模板消息 ID"), required=True),
        Field("fields", _("模板字段映射（JSON）"), hint='{"thing1": "title", "thing2": "text", "time3": "sent_at"}'),
    ),
}
CREDENTIALS: dict[AdapterKind, tuple[Field, ...]] = {
    AdapterKind.SANDBOX: (),
    AdapterKind.WECOM_CUSTOMER: _WECOM_SECRETS,
    AdapterKind.WECOM_GROUP: _WECOM_SECRETS,
    AdapterKind.SMS_ALIYUN: (
        Field("access_key_id", _("AccessKey ID")),
        Field("access_key_secret", _("AccessKey Secret")),
        _CALLBACK,
    ),
    AdapterKind.SMS_TENCENT: (Field("secret_id", _("SecretId")), Field("secret_key", _("SecretKey")), _CALLBACK),
    AdapterKind.EMAIL: (Field("username", _("用户名")), Field("password", _("密码"))),
    AdapterKind.WEBHOOK: (Field("secret", _("签名密钥")),),
    AdapterKind.OFFICIAL_ACCOUNT: (),
}
"""Secrets per kind, sealed at rest; the form never shows them again."""


def _setting_value(field: Field, raw: str) -> Any:
    if field.type == "bool":
        return raw in ("1", "on", "true")
    if field.type == "number":
        try:
            number = float(raw)
        except ValueError:
            raise InvalidInput(f"{field.key}: expected a number", details={"field": f"settings.{field.key}"}) from None
        if not 0 < number < 1_000_000:
            raise InvalidInput(f"{field.key}: out of range", details={"field": f"settings.{field.key}"})
        return int(number) if number.is_integer() else number
    return raw


def _values_from(form: FormData, account: ChannelAccount | None) -> dict[str, Any]:
    """The posted values; for an existing account the kind is the account's own."""
    kind = str(account.kind) if account else text(form, "kind") or str(AdapterKind.SANDBOX)
    chosen = AdapterKind(kind) if kind in {str(k) for k in AdapterKind} else AdapterKind.SANDBOX
    return {
        "name": text(form, "name"),
        "kind": str(chosen),
        "is_active": text(form, "is_active") in ("1", "on", "true"),
        "settings": {f.key: text(form, f"settings.{chosen}.{f.key}") for f in SETTINGS[chosen]},
        # Secrets typed in this request only travel to the service, never back into the form.
        "credentials": {f.key: text(form, f"credentials.{chosen}.{f.key}") for f in CREDENTIALS[chosen]},
        "clear_credentials": text(form, "clear_credentials") in ("1", "on", "true"),
    }


def _input(values: dict[str, Any]) -> AccountIn:
    kind = AdapterKind(values["kind"])
    for field in SETTINGS[kind]:
        # The form marks these required; the adapters would only find out at the first send.
        if field.required and not values["settings"][field.key]:
            raise InvalidInput(f"{field.key}: required", details={"field": f"settings.{field.key}"})
    settings = {
        f.key: _setting_value(f, values["settings"][f.key])
        for f in SETTINGS[kind]
        if values["settings"][f.key] or f.type == "bool"
    }
    typed = {k: v for k, v in values["credentials"].items() if v}
    credentials: dict[str, Any] | None = {} if values["clear_credentials"] else (typed or None)
    data = {
        "name": values["name"],
        "kind": kind,
        "settings": {k: v for k, v in settings.items() if v is not False},
        "credentials": credentials,
        "is_active": values["is_active"],
    }
    return validated(AccountIn, data)


def _values_of(account: ChannelAccount | None, kind: AdapterKind = AdapterKind.SANDBOX) -> dict[str, Any]:
    if account is None:
        return {"name": "", "kind": str(kind), "is_active": True, "settings": {}, "clear_credentials": False}
    saved = dict(account.settings or {})
    return {
        "name": account.name,
        "kind": str(account.kind),
        "is_active": account.is_active,
        "settings": {k: "" if v is None else v for k, v in saved.items()},
        "clear_credentials": False,
    }


def _shown(kind: str) -> frozenset[str]:
    chosen = AdapterKind(kind)
    return frozenset(
        {"form", "name", "kind", "settings", "credentials"}
        | {f"settings.{f.key}" for f in SETTINGS[chosen]}
        | {f"credentials.{f.key}" for f in CREDENTIALS[chosen]}
    )


def _form_page(
    request: Request,
    values: dict[str, Any],
    account: ChannelAccount | None,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    shown_values = {k: v for k, v in values.items() if k != "credentials"}
    context = {
        "account": account,
        "values": shown_values,
        "errors": errors or {},
        "kinds": [str(k) for k in AdapterKind],
        "settings_fields": {str(k): v for k, v in SETTINGS.items()},
        "credential_fields": {str(k): v for k, v in CREDENTIALS.items()},
        "has_credentials": bool(account and account.credentials_encrypted),
        "consent_channels": ["", *(str(c) for c in ConsentChannel)],
    }
    return render(request, FORM, context, status_code=status_code)


def _refused(request: Request, ctx: Ctx, exc: DomainError, values: dict[str, Any], account_id: int | None) -> Response:
    ctx.session.rollback()
    account = accounts.get_account(ctx.session, ctx.actor, account_id) if account_id is not None else None
    status = exc.status_code if 400 <= exc.status_code < 500 else 400
    errors = {field_of(exc, _shown(values["kind"])): error_text(request, exc)}
    return _form_page(request, values, account, errors=errors, status_code=status)


@router.get("/channel-accounts")
def accounts_page(request: Request, ctx: ConsoleCtx) -> Response:
    ctx.actor.require(Scope.TOUCH_READ)
    rows = accounts.list_accounts(ctx.session, ctx.actor)
    return render(request, "channel_accounts/list.html", {"rows": rows})


@router.get("/channel-accounts/new")
def new_account_page(request: Request, ctx: ConsoleCtx, kind: str = "sandbox") -> Response:
    ctx.actor.require(Scope.TOUCH_CHANNELS)
    chosen = AdapterKind(kind) if kind in {str(k) for k in AdapterKind} else AdapterKind.SANDBOX
    return _form_page(request, _values_of(None, chosen), None)


@router.post("/channel-accounts")
def create_account(request: Request, ctx: ConsoleCtx, form: FormDep) -> Response:
    ctx.actor.require(Scope.TOUCH_CHANNELS)
    values = _values_from(form, None)
    try:
        account = accounts.create_account(ctx.session, actor=ctx.actor, data=_input(values), clock=ctx.clock)
    except DomainError as exc:
        return _refused(request, ctx, exc, values, None)
    _ = translator(request)
    flash(request, _("渠道账号已保存"))
    return redirect(f"/channel-accounts/{account.id}/edit")


@router.get("/channel-accounts/{account_id}/edit")
def edit_account_page(request: Request, ctx: ConsoleCtx, account_id: IdPath) -> Response:
    """The account's settings (read-only without touch:channels) and its connection check."""
    ctx.actor.require(Scope.TOUCH_READ)
    account = accounts.get_account(ctx.session, ctx.actor, account_id)
    return _form_page(request, _values_of(account), account)


@router.post("/channel-accounts/{account_id}/edit")
def update_account(request: Request, ctx: ConsoleCtx, account_id: IdPath, form: FormDep) -> Response:
    ctx.actor.require(Scope.TOUCH_CHANNELS)
    account = accounts.get_account(ctx.session, ctx.actor, account_id)
    values = _values_from(form, account)
    try:
        data = _input(values)
        accounts.update_account(ctx.session, actor=ctx.actor, account_id=account_id, data=data, clock=ctx.clock)
    except DomainError as exc:
        return _refused(request, ctx, exc, values, account_id)
    _ = translator(request)
    flash(request, _("渠道账号已保存"))
    return redirect(f"/channel-accounts/{account_id}/edit")


@router.post("/channel-accounts/{account_id}/test")
def test_account(request: Request, ctx: ConsoleCtx, account_id: IdPath) -> Response:
    """Check the settings and credentials with the provider (HTMX: the result replaces the panel)."""
    ctx.actor.require(Scope.TOUCH_CHANNELS)
    context: dict[str, Any] = {"ok": True, "error": None}
    try:
        accounts.test_account(ctx.session, actor=ctx.actor, account_id=account_id, clock=ctx.clock)
    except DomainError as exc:
        if exc.status_code in (403, 404):
            raise
        # The service stored the provider's answer as the account's last error: keep it.
        ctx.session.commit()
        context = {"ok": False, "error": error_text(request, exc)}
    return render(request, "channel_accounts/_test_result.html", context)
