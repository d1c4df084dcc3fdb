"""The public redirect `/s/{slug}`: no login, a 302 to the target, a friendly page otherwise."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from siyu.db import Database
from siyu.kit.clock import Clock
from siyu.kit.i18n import gettext_for, normalize_locale
from siyu.shortlinks.clicks import Visit, follow
from siyu.shortlinks.errors import ShortLinkGone, ShortLinkNotFound
from siyu.shortlinks.slugs import is_wellformed_slug
from siyu.web.templating import templates
from siyu.web.visitor import client_ip_hash, remember_visitor, short_user_agent, visitor_cookie, visitor_id

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


def _locale(request: Request) -> str:
    """The console language if this browser chose one, else the first zh/en in Accept-Language."""
    chosen = request.session.get("locale") if "session" in request.scope else None
    if chosen:
        return normalize_locale(chosen)
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith(("zh", "en")):
            return normalize_locale(tag)
    return normalize_locale(request.app.state.settings.default_locale)


def unavailable_page(request: Request, status_code: int) -> Response:
    """A small mobile page for a link that does not exist (404), is gone (410) or failed (503)."""
    locale = _locale(request)
    _ = gettext_for(locale).gettext
    texts = {
        404: (_("链接不存在"), _("请检查链接是否完整，或联系发送给您的品牌。")),
        410: (_("链接已失效"), _("该链接已过期或已被删除，活动可能已经结束。")),
        503: (_("暂时无法打开"), _("请稍后再试。")),
    }
    title, message = texts.get(status_code, texts[404])
    return templates.TemplateResponse(
        request,
        "short_links/unavailable.html",
        {"_": _, "html_lang": "zh-CN" if locale == "zh_CN" else locale, "title": title, "message": message},
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


@router.get("/s/{slug:path}")
def follow_short_link(request: Request, slug: str) -> Response:
    """Record the click and redirect (302) to the target; 404 / 410 pages for unknown or gone links."""
    if not is_wellformed_slug(slug):
        return unavailable_page(request, 404)
    raw_cookie, is_new = visitor_cookie(request)
    settings = request.app.state.settings
    visit = Visit(
        visitor_id=visitor_id(raw_cookie),
        ip_hash=client_ip_hash(request, salt=settings.session_secret()),
        user_agent=short_user_agent(request),
    )
    database: Database = request.app.state.database
    clock: Clock = request.app.state.clock
    try:
        with database.transaction() as session:
            location = follow(session, slug=slug, visit=visit, clock=clock).location
    except ShortLinkNotFound:
        return unavailable_page(request, 404)
    except ShortLinkGone:
        return unavailable_page(request, 410)
    except Exception:
        # A visitor holding a printed card gets a page, never a stack trace; the log keeps the why.
        logger.exception("short link redirect failed", extra={"slug": slug})
        return unavailable_page(request, 503)
    response = RedirectResponse(location, status_code=302, headers={"Cache-Control": "no-store"})
    if is_new:
        remember_visitor(response, raw_cookie)
    return response
