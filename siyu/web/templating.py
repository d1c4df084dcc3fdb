"""Jinja2 templates with the catalogue, the CSRF token and the current user in every page."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from siyu.analytics.tables import display
from siyu.kit.i18n import LOCALES, gettext_for, normalize_locale
from siyu.kit.phone import display_phone, mask_phone
from siyu.web.deps import csrf_token

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent / "static"
FLASH_KEY = "flash"

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True, undefined=jinja2.StrictUndefined
    )
)
templates.env.filters["mask_phone"] = mask_phone
templates.env.filters["display_phone"] = display_phone
templates.env.filters["cell"] = display  # analytics report cells: yuan, percents, "—" for None


def compact_json(value: Any) -> str:
    """Before/after documents of the audit log, on one line, Chinese left readable."""
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)


templates.env.filters["compact_json"] = compact_json


def request_locale(request: Request) -> str:
    chosen = request.session.get("locale") if "session" in request.scope else None
    if chosen:
        return normalize_locale(chosen)
    return normalize_locale(request.app.state.settings.default_locale)


def translator(request: Request) -> Callable[[str], str]:
    """`_` for a view: translates a catalogue message into the request's language."""
    return gettext_for(request_locale(request)).gettext


def flash(request: Request, message: str, *, kind: str = "success") -> None:
    """Show `message` (already translated) on the next page rendered for this session."""
    messages = list(request.session.get(FLASH_KEY, []))
    messages.append({"kind": kind, "message": message})
    request.session[FLASH_KEY] = messages[-5:]


def _time_formatter(tz: ZoneInfo) -> Callable[[datetime | date | None], str]:
    def fmt(value: datetime | date | None) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            return value.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        return value.isoformat()

    return fmt


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """Render a console template in the request's language."""
    locale = request_locale(request)
    translations = gettext_for(locale)
    actor = getattr(request.state, "actor", None)
    workspaces = getattr(request.state, "workspaces", [])
    current = next((w for w in workspaces if actor is not None and w.id == actor.workspace_id), None)
    tz = ZoneInfo(current.timezone if current else request.app.state.settings.timezone)
    flashes = request.session.pop(FLASH_KEY, []) if "session" in request.scope else []
    values: dict[str, Any] = {
        "_": translations.gettext,
        "ngettext": translations.ngettext,
        "locale": locale,
        "locales": LOCALES,
        "csrf_token": csrf_token(request),
        "actor": actor,
        "user": getattr(request.state, "user", None),
        "workspaces": workspaces,
        "current_workspace": current,
        "current_path": request.url.path,
        "flashes": flashes,
        "fmt_time": _time_formatter(tz),
        "can": (lambda scope: actor is not None and actor.can(scope)),
    }
    values.update(context or {})
    return templates.TemplateResponse(request, name, values, status_code=status_code, headers=headers)


def visitor_locale(request: Request) -> str:
    """The public visitor's language, from the browser's first `Accept-Language` choice."""
    first = request.headers.get("accept-language", "").split(",")[0].split(";")[0].strip()
    return normalize_locale(first or None)


def visitor_translator(request: Request) -> Callable[[str], str]:
    """`_` for a public page."""
    return gettext_for(visitor_locale(request)).gettext


def render_public(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> Response:
    """Render a page for the public (scanners, link clickers): no login, no console session cookie.

    The language follows the browser (`Accept-Language`), since the visitor never chose one.
    """
    locale = visitor_locale(request)
    values: dict[str, Any] = {"_": gettext_for(locale).gettext, "locale": locale}
    values.update(context or {})
    return templates.TemplateResponse(request, name, values, status_code=status_code)
