"""Jinja2 templates with the catalogue, the CSRF token and the current user in every page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from siyu.kit.i18n import LOCALES, gettext_for, normalize_locale
from siyu.kit.phone import display_phone, mask_phone
from siyu.web.deps import csrf_token

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent / "static"

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True, undefined=jinja2.StrictUndefined
    )
)
templates.env.filters["mask_phone"] = mask_phone
templates.env.filters["display_phone"] = display_phone


def request_locale(request: Request) -> str:
    chosen = request.session.get("locale") if "session" in request.scope else None
    if chosen:
        return normalize_locale(chosen)
    return normalize_locale(request.app.state.settings.default_locale)


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
    values: dict[str, Any] = {
        "_": translations.gettext,
        "ngettext": translations.ngettext,
        "locale": locale,
        "locales": LOCALES,
        "csrf_token": csrf_token(request),
        "actor": getattr(request.state, "actor", None),
        "user": getattr(request.state, "user", None),
        "workspaces": getattr(request.state, "workspaces", []),
        "current_path": request.url.path,
    }
    values.update(context or {})
    return templates.TemplateResponse(request, name, values, status_code=status_code, headers=headers)
