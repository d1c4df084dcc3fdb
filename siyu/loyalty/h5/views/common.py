"""What every member H5 page shares: the member session, CSRF, the friendly error page, rendering.

Routes use `MemberRoute`: a domain error raised anywhere in a handler (a missing or expired
session, a forged form, an unknown reward) becomes a friendly zh-CN page with a 4xx status,
never the console's error page or a stack trace.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import Clock, as_utc
from siyu.kit.errors import DomainError, PermissionDenied, Unauthenticated
from siyu.kit.i18n import gettext_for, normalize_locale
from siyu.loyalty.h5.links import (
    COOKIE_NAME,
    MemberLinkExpired,
    MemberLinkInvalid,
    MemberSession,
    link_lifetime,
    read_session_cookie,
)
from siyu.loyalty.h5.reading import brand_name, current_customer, zone_of
from siyu.web.templating import templates
from siyu.workspaces.scope import bind_workspace

logger = logging.getLogger(__name__)


class MemberSessionMissing(Unauthenticated):
    """No member session: the page was opened without coming through a signed link."""

    code = "member_session_missing"


class MemberFormExpired(PermissionDenied):
    """A form without the session's CSRF token (an old page, or another site posting)."""

    code = "member_form_expired"


def member_locale(request: Request) -> str:
    """zh-CN unless the browser asks for English first (the member never chose a language)."""
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith(("zh", "en")):
            return normalize_locale(tag)
    return normalize_locale(request.app.state.settings.default_locale)


def translator(request: Request) -> Callable[[str], str]:
    return gettext_for(member_locale(request)).gettext


def _error_texts(request: Request, exc: DomainError) -> tuple[str, str]:
    _ = translator(request)
    if isinstance(exc, MemberLinkExpired):
        return _("链接已过期"), _("这个会员中心链接已过期，请联系品牌客服获取新的链接。")
    if isinstance(exc, MemberLinkInvalid):
        return _("链接无效"), _("请检查链接是否完整，或联系品牌客服获取新的链接。")
    if isinstance(exc, MemberSessionMissing):
        return _("请从链接进入"), _("请通过品牌发给您的会员中心链接进入。")
    if isinstance(exc, MemberFormExpired):
        return _("页面已过期"), _("请返回刷新页面后再试一次。")
    if exc.status_code == 404:
        return _("没有找到"), _("您要找的内容不存在或已下架。")
    return _("操作未完成"), _("请稍后再试，或联系品牌客服。")


def message_page(request: Request, *, title: str, message: str, status_code: int) -> Response:
    """A bare friendly page (no member chrome): bad links, missing sessions, errors."""
    return templates.TemplateResponse(
        request,
        "member/message.html",
        {"_": translator(request), "html_lang": html_lang(request), "title": title, "message": message},
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


def error_page(request: Request, exc: DomainError) -> Response:
    title, message = _error_texts(request, exc)
    return message_page(request, title=title, message=message, status_code=exc.status_code)


class MemberRoute(APIRoute):
    """An H5 route: domain errors (and malformed parameters) become friendly pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except DomainError as exc:
                return error_page(request, exc)
            except RequestValidationError:
                _ = translator(request)
                return message_page(
                    request, title=_("没有找到"), message=_("您要找的内容不存在或已下架。"), status_code=404
                )

        return guarded


def html_lang(request: Request) -> str:
    locale = member_locale(request)
    return "zh-CN" if locale == "zh_CN" else locale


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def current_session(request: Request) -> MemberSession:
    """The signed-in member, from the session cookie a link set, re-resolved on every request: a
    customer merged since the cookie was set is their survivor, an erased (or vanished) one has no
    session any more. The cookie itself is left as it is."""
    value = request.cookies.get(COOKIE_NAME)
    if not value:
        raise MemberSessionMissing("no member session")
    settings = _settings(request)
    try:
        signed = read_session_cookie(
            value, secret=settings.session_secret(), clock=clock_of(request), max_age=link_lifetime(settings)
        )
    except (MemberLinkExpired, MemberLinkInvalid):
        raise MemberSessionMissing("member session expired or invalid") from None
    database: Database = request.app.state.database
    with database.transaction(read_only=True) as session:
        bind_workspace(session, signed.workspace_id)
        customer = current_customer(session, workspace_id=signed.workspace_id, customer_id=signed.customer_id)
        customer_id = customer.id if customer is not None else None
    if customer_id is None:
        raise MemberSessionMissing("the session's customer was erased or is gone")
    return signed if customer_id == signed.customer_id else replace(signed, customer_id=customer_id)


MemberDep = Annotated[MemberSession, Depends(current_session)]


async def checked_form(request: Request, member: MemberDep) -> dict[str, str]:
    """The posted form (strings only), refused unless it echoes the session's CSRF token."""
    form = await request.form()
    sent = form.get("csrf_token")
    if not isinstance(sent, str) or not secrets.compare_digest(sent, member.csrf):
        raise MemberFormExpired("CSRF token missing or wrong")
    return {key: value for key, value in form.items() if isinstance(value, str)}


FormDep = Annotated[dict[str, str], Depends(checked_form)]


def clock_of(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


@contextmanager
def member_transaction(request: Request, member: MemberSession, *, read_only: bool = False) -> Iterator[Session]:
    """A transaction scoped to the member's workspace (commits at the end of the block)."""
    database: Database = request.app.state.database
    with database.transaction(read_only=read_only) as session:
        bind_workspace(session, member.workspace_id)
        yield session


@dataclass(frozen=True)
class PageChrome:
    """What the member layout needs besides the page's own values."""

    brand: str
    tab: str


def _formatters(session: Session, workspace_id: int) -> dict[str, Any]:
    zone = zone_of(session, workspace_id)

    def fmt_time(value: datetime | None) -> str:
        return "" if value is None else as_utc(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")

    def fmt_date(value: datetime | date | None) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            return as_utc(value).astimezone(zone).strftime("%Y-%m-%d")
        return value.isoformat()

    return {"fmt_time": fmt_time, "fmt_date": fmt_date}


def yuan(fen: int) -> str:
    """12345 → "123.45"; 10000 → "100"."""
    whole, part = divmod(abs(int(fen)), 100)
    sign = "-" if fen < 0 else ""
    return f"{sign}{whole:,}" if part == 0 else f"{sign}{whole:,}.{part:02d}"


def render_member(
    request: Request,
    session: Session,
    member: MemberSession,
    name: str,
    context: dict[str, Any],
    *,
    tab: str,
    status_code: int = 200,
) -> Response:
    """Render a member page (call inside the transaction: templates read loaded rows)."""
    values: dict[str, Any] = {
        "_": translator(request),
        "html_lang": html_lang(request),
        "csrf_token": member.csrf,
        "brand": brand_name(session, member.workspace_id),
        "tab": tab,
        "yuan": yuan,
        "points": lambda n: f"{int(n):,}",
    }
    values.update(_formatters(session, member.workspace_id))
    values.update(context)
    return templates.TemplateResponse(
        request, name, values, status_code=status_code, headers={"Cache-Control": "no-store"}
    )


def see_other(path: str) -> Response:
    return RedirectResponse(path, status_code=303)
