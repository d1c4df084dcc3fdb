"""The public unsubscribe page `/u/{token}`: GET shows a confirmation, POST withdraws consent.

A GET never unsubscribes: mail scanners and chat link previews open links on their own.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from siyu.db import Database
from siyu.kit.clock import Clock
from siyu.kit.errors import NotFound
from siyu.kit.i18n import gettext_for
from siyu.messaging.unsubscribe import read_token, unsubscribe
from siyu.shortlinks.public import _locale
from siyu.web.templating import templates

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


def _texts(request: Request) -> tuple[str, Any]:
    locale = _locale(request)
    return locale, gettext_for(locale).gettext


def _page(request: Request, locale: str, *, title: str, message: str, form: bool, status_code: int = 200) -> Response:
    return templates.TemplateResponse(
        request,
        "unsubscribe/page.html",
        {
            "_": gettext_for(locale).gettext,
            "html_lang": "zh-CN" if locale == "zh_CN" else locale,
            "title": title,
            "message": message,
            "form": form,
        },
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


def _known(request: Request, token: str) -> int | None:
    try:
        return read_token(token, request.app.state.settings.session_secret())
    except NotFound:
        return None


def _invalid(request: Request) -> Response:
    locale, _ = _texts(request)
    return _page(request, locale, title=_("链接无效"), message=_("请检查链接是否完整。"), form=False, status_code=404)


@router.get("/u/{token}")
def confirm_unsubscribe(request: Request, token: str) -> Response:
    """Ask before unsubscribing (link scanners only GET)."""
    if _known(request, token) is None:
        return _invalid(request)
    locale, _ = _texts(request)
    return _page(request, locale, title=_("退订消息"), message=_("退订后，您将不再通过此渠道收到营销消息。"), form=True)


@router.post("/u/{token}")
def do_unsubscribe(request: Request, token: str) -> Response:
    """Withdraw consent for the channel the message came on; repeating it changes nothing."""
    delivery_id = _known(request, token)
    if delivery_id is None:
        return _invalid(request)
    database: Database = request.app.state.database
    clock: Clock = request.app.state.clock
    try:
        with database.transaction() as session:
            channel = unsubscribe(session, delivery_id=delivery_id, clock=clock)
    except NotFound:
        return _invalid(request)
    locale, _ = _texts(request)
    if channel is None:  # say so rather than pretend
        return _page(
            request,
            locale,
            title=_("无法在线退订"),
            message=_("此消息的渠道不支持在线退订，请直接联系品牌。"),
            form=False,
            status_code=409,
        )
    return _page(request, locale, title=_("已退订"), message=_("您已退订，不会再通过此渠道收到营销消息。"), form=False)
