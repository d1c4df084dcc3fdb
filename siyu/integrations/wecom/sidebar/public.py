"""Routes of the sidebar H5 (WeCom OAuth, JS-SDK signatures, pages).

    GET  /sidebar?ws=<id>             always → WeCom OAuth (silent snsapi_base), a nonce cookie bound to `state`
    GET  /sidebar/oauth?code=&state=  nonce checked → auth/getuserinfo → staff → session cookie → /sidebar/home
    GET  /sidebar/home                the shell: JS-SDK config, getCurExternalContact → /sidebar/c?eu=
    GET  /sidebar/jssdk?url=          wx.config + wx.agentConfig signatures for the page URL (JSON)
    GET  /sidebar/c?eu=<external id>  the customer page (profile, tags, notes, scripts, tasks)
    POST /sidebar/c/{id}/tags|notes   forms (CSRF of the session); POST /sidebar/c/{id}/sent (JSON)

Domain errors become friendly zh-CN pages with their 4xx status (`SidebarRoute`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import JSONResponse, RedirectResponse, Response

from siyu.db import Database
from siyu.integrations.wecom.config import WecomConfig, load_config
from siyu.integrations.wecom.errors import NotConfigured, WecomError
from siyu.integrations.wecom.sidebar import auth, jssdk, service
from siyu.integrations.wecom.status import note_error
from siyu.kit.clock import Clock
from siyu.kit.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from siyu.loyalty.h5.views.common import html_lang, translator
from siyu.models import Staff
from siyu.web.templating import templates
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)


def _message(request: Request, *, title: str, message: str, status_code: int) -> Response:
    return templates.TemplateResponse(
        request,
        "sidebar/message.html",
        {"_": translator(request), "html_lang": html_lang(request), "title": title, "message": message},
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


def _error_page(request: Request, exc: DomainError) -> Response:
    _ = translator(request)
    if isinstance(exc, auth.UnknownStaff):
        title, text = _("无法使用侧边栏"), _("您的企业微信账号还不是本品牌的导购，请联系管理员在 siyu 中添加。")
    elif isinstance(exc, service.NotYourCustomer):
        title, text = _("不是您的客户"), _("只能查看与您是好友的客户。")
    elif isinstance(exc, service.UnknownContact):
        title, text = _("客户尚未同步"), _("siyu 中还没有这位客户，请稍后再试（同步完成后即可查看）。")
    elif isinstance(exc, auth.SidebarSessionInvalid):
        title, text = _("请重新打开侧边栏"), _("登录已过期，请在企业微信聊天中重新打开侧边栏。")
    elif exc.status_code == 404:
        title, text = _("没有找到"), _("您要找的内容不存在或已下架。")
    else:
        title, text = _("操作未完成"), exc.message
    return _message(request, title=title, message=text, status_code=exc.status_code)


class SidebarRoute(APIRoute):
    """A sidebar route: domain errors and malformed parameters become friendly pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except DomainError as exc:
                return _error_page(request, exc)
            except RequestValidationError as exc:
                errors = exc.errors()
                name = str(errors[0]["loc"][-1]) if errors and errors[0].get("loc") else "request"
                return _error_page(request, InvalidInput(f"{name} is invalid", details={"field": name}))

        return guarded


router = APIRouter(prefix="/sidebar", include_in_schema=False, route_class=SidebarRoute)


def _public_url(request: Request) -> str:
    """siyu's public address (never the request's Host header, which the client chooses)."""
    return str(request.app.state.settings.public_url).rstrip("/")


def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def _secret(request: Request) -> str:
    return str(request.app.state.settings.session_secret())


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def _config(request: Request, workspace_id: int) -> WecomConfig:
    with _database(request).transaction(read_only=True) as session:
        bind_workspace(session, workspace_id)
        try:
            return load_config(session, workspace_id)
        except NotConfigured:
            raise NotFound("WeCom is not configured for this workspace", details={"field": "ws"}) from None


def _session(request: Request) -> auth.SidebarSession:
    return auth.read_session_cookie(
        request.cookies.get(auth.COOKIE_NAME), secret=_secret(request), clock=_clock(request)
    )


def _wecom_failed(request: Request, workspace_id: int, exc: WecomError | NotConfigured) -> Response:
    logger.warning("sidebar WeCom call failed: %s", type(exc).__name__, extra={"api": getattr(exc, "api", None)})
    with _database(request).transaction() as session:
        bind_workspace(session, workspace_id)
        note_error(session, workspace_id, exc, _clock(request))
    _ = translator(request)
    return _message(request, title=_("企业微信暂时不可用"), message=_("请稍后重新打开侧边栏。"), status_code=502)


@router.get("")
def entry(request: Request, ws: int = 0) -> Response:
    """Start: always through WeCom's silent OAuth (the WeCom client may be shared by several staff
    members, so an earlier session is never reused here); a nonce cookie binds the round trip to
    this browser."""
    if ws <= 0:
        raise InvalidInput("ws is required", details={"field": "ws"})
    config = _config(request, ws)
    redirect_uri = _public_url(request) + "/sidebar/oauth"
    nonce = auth.new_nonce()
    state = auth.state_token(ws, nonce, secret=_secret(request), clock=_clock(request))
    response = RedirectResponse(auth.authorize_url(config, redirect_uri=redirect_uri, state=state), status_code=302)
    response.set_cookie(
        auth.NONCE_COOKIE,
        nonce,
        max_age=auth.STATE_MINUTES * 60,
        path=auth.COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=bool(request.app.state.settings.session_cookie_secure),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/oauth")
def oauth(request: Request, code: str = "", state: str = "") -> Response:
    """WeCom's redirect: check the state and this browser's nonce, identify the member, open the session."""
    clock = _clock(request)
    workspace_id = auth.read_state(
        state, secret=_secret(request), clock=clock, nonce=request.cookies.get(auth.NONCE_COOKIE)
    )
    config = _config(request, workspace_id)
    failure: WecomError | NotConfigured | None = None
    staff_id = 0
    with _database(request).transaction(read_only=True) as session:
        bind_workspace(session, workspace_id)
        try:
            staff = auth.staff_for_code(session, config, code)
        except WecomError as exc:
            if exc.code == 40029:  # a used or expired code: start again
                return RedirectResponse(f"/sidebar?ws={workspace_id}", status_code=303)
            failure = exc
        except NotConfigured as exc:  # the app secret is not set
            failure = exc
        else:
            staff_id = staff.id
    if failure is not None:
        return _wecom_failed(request, workspace_id, failure)
    value, _csrf = auth.session_cookie_value(workspace_id, staff_id, secret=_secret(request), clock=clock)
    response = RedirectResponse("/sidebar/home", status_code=303)
    response.set_cookie(
        auth.COOKIE_NAME,
        value,
        max_age=int(auth.session_lifetime().total_seconds()),
        path=auth.COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=bool(request.app.state.settings.session_cookie_secure),
    )
    response.delete_cookie(auth.NONCE_COOKIE, path=auth.COOKIE_PATH)
    response.headers["Cache-Control"] = "no-store"
    return response


def _staff(session: Any, signed: auth.SidebarSession) -> Staff:
    staff = session.get(Staff, signed.staff_id)
    if staff is None or staff.workspace_id != signed.workspace_id or not staff.is_active:
        raise auth.UnknownStaff("staff member gone or inactive")
    return staff


def _page(request: Request, name: str, values: dict[str, Any], signed: auth.SidebarSession) -> Response:
    config = _config(request, signed.workspace_id)
    context = {
        "_": translator(request),
        "html_lang": html_lang(request),
        "csrf_token": signed.csrf,
        "js_sdk_urls": auth.js_sdk_urls(config),
        **values,
    }
    return templates.TemplateResponse(request, name, context, headers={"Cache-Control": "no-store"})


@router.get("/home")
def home(request: Request) -> Response:
    """The shell: finds the open chat's customer through the JS-SDK; shows the staff member's tasks."""
    signed = _session(request)
    with _database(request).transaction(read_only=True) as session:
        bind_workspace(session, signed.workspace_id)
        staff = _staff(session, signed)
        work = service.staff_work(session, staff, clock=_clock(request))
        return _page(request, "sidebar/home.html", {"staff": staff, "work": work, "card": None}, signed)


@router.get("/jssdk")
def jssdk_config(request: Request, url: str = "", refresh: int = 0) -> Response:
    """`wx.config` / `wx.agentConfig` values for a sidebar page on siyu's public host (others → 422).

    `refresh=1` (the page retries once when WeCom's client rejected the signature) drops the cached
    tickets first, at most once a minute per workspace."""
    signed = _session(request)
    own = urlsplit(_public_url(request))
    target = urlsplit(url)
    # The host only: behind a TLS-terminating proxy the request may arrive as http for an https page.
    if not url or target.netloc != own.netloc or not target.path.startswith("/sidebar"):
        raise InvalidInput("url must be a sidebar page of this site", details={"field": "url"})
    config = _config(request, signed.workspace_id)
    try:
        if refresh:
            jssdk.forget_tickets(config, clock=_clock(request))
        values = jssdk.js_sdk_config(config, url=url, clock=_clock(request))
    except (WecomError, NotConfigured) as exc:
        with _database(request).transaction() as session:
            bind_workspace(session, signed.workspace_id)
            note_error(session, signed.workspace_id, exc, _clock(request))
        return JSONResponse({"error": "wecom_unavailable"}, status_code=502, headers={"Cache-Control": "no-store"})
    return JSONResponse(values.as_json(), headers={"Cache-Control": "no-store"})


@router.get("/c")
def customer_page(request: Request, eu: str = "", notice: str = "") -> Response:
    """The customer of the open chat (by external_userid): only a customer who is this staff member's friend."""
    signed = _session(request)
    clock = _clock(request)
    with _database(request).transaction(read_only=True) as session:
        bind_workspace(session, signed.workspace_id)
        staff = _staff(session, signed)
        customer = service.customer_by_external_userid(session, signed.workspace_id, eu)
        card = service.customer_card(session, staff, customer.id, clock=clock)
        values = {
            "staff": staff,
            "card": card,
            "external_userid": eu,
            "tag_ids": service.customer_tag_ids(session, customer.id),
            "sendables": service.sendables(session, staff, customer.id),
            "work": service.staff_work(session, staff, clock=clock),
            "notice": notice,
            "note_nonce": secrets.token_urlsafe(18),
        }
        return _page(request, "sidebar/customer.html", values, signed)


async def _form(request: Request, signed: auth.SidebarSession) -> tuple[dict[str, str], dict[str, list[str]]]:
    form = await request.form()
    sent = form.get("csrf_token")
    if not isinstance(sent, str) or not secrets.compare_digest(sent, signed.csrf):
        raise PermissionDenied("CSRF token missing or wrong", details={"field": "csrf_token"})
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    lists = {name: [v for v in form.getlist(name) if isinstance(v, str)] for name in ("tag_id", "original_tag_id")}
    return values, lists


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a number", details={"field": name}) from None


@router.post("/c/{customer_id}/tags")
async def save_tags(request: Request, customer_id: int) -> Response:
    """Apply what the staff member changed on the form (ticked vs the tags shown when the page loaded),
    and mirror WeCom-linked tags with mark_tag on her edge with the chat's external_userid."""
    signed = _session(request)
    values, lists = await _form(request, signed)
    ticked = [_int(v, "tag_id") for v in lists["tag_id"]]
    original = [_int(v, "original_tag_id") for v in lists["original_tag_id"]]
    clock = _clock(request)
    config = _config(request, signed.workspace_id)
    database = _database(request)
    # The tag change is committed first; mark_tag is sent with no transaction open, and a failure
    # recorded in a transaction of its own.
    with database.transaction() as session:
        bind_workspace(session, signed.workspace_id)
        staff = _staff(session, signed)
        change = service.set_tags(
            session,
            staff,
            customer_id,
            ticked,
            original=original,
            external_userid=values.get("eu", ""),
            clock=clock,
            config=config,
        )
    change = service.mark_tags(database, change, clock=clock, config=config)
    notice = "tags_wecom_failed" if change.wecom_error else "tags_saved"
    return RedirectResponse(f"/sidebar/c?eu={_quote(values.get('eu', ''))}&notice={notice}", status_code=303)


@router.post("/c/{customer_id}/notes")
async def add_note(request: Request, customer_id: int) -> Response:
    """Add a note to the customer's timeline."""
    signed = _session(request)
    values, _ids = await _form(request, signed)
    with _database(request).transaction() as session:
        bind_workspace(session, signed.workspace_id)
        staff = _staff(session, signed)
        service.add_note(
            session, staff, customer_id, values.get("text", ""), nonce=values.get("nonce", ""), clock=_clock(request)
        )
    return RedirectResponse(f"/sidebar/c?eu={_quote(values.get('eu', ''))}&notice=note_saved", status_code=303)


@router.post("/c/{customer_id}/sent")
async def record_sent(request: Request, customer_id: int) -> Response:
    """The page sent a script / content item with sendChatMessage: note it on the timeline."""
    signed = _session(request)
    values, _ids = await _form(request, signed)
    with _database(request).transaction() as session:
        bind_workspace(session, signed.workspace_id)
        staff = _staff(session, signed)
        service.record_sent(
            session,
            staff,
            customer_id,
            values.get("kind", ""),
            _int(values.get("item_id", ""), "item_id"),
            clock=_clock(request),
        )
    return JSONResponse({"ok": True})


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
