"""Form helpers shared by the calendars console pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.responses import Response

from siyu.campaigns.calendars.common import SLOT_ORDER
from siyu.kit.errors import DomainError, InvalidInput
from siyu.kit.ids import parse_id
from siyu.models import ContentItem
from siyu.web.deps import Ctx
from siyu.web.pages import error_text

WEEKDAYS = [1, 2, 3, 4, 5, 6, 7]
SLOTS = [str(s) for s in SLOT_ORDER]


def text(form: FormData, key: str) -> str:
    """A form field as text ("" when missing or a file)."""
    value = form.get(key)
    return value if isinstance(value, str) else ""


def form_id(form: FormData, key: str, *, required: bool = True) -> int | None:
    """An id picked in a form; a missing (when required) or malformed one is a 422 naming `key`."""
    raw = text(form, key).strip()
    value = parse_id(raw)
    if value is None and (required or raw):
        raise InvalidInput(f"{key}: choose one", details={"field": key})
    return value


def build(model: Callable[..., Any], **values: Any) -> Any:
    """A request shape from form values; pydantic's complaint becomes a 422 naming the field."""
    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "form"
        raise InvalidInput(f"{field}: {first['msg']}", details={"field": field}) from exc


def errors_of(request: Request, exc: DomainError, known: set[str]) -> dict[str, str]:
    """The message under the field the service named (or its list's name, or the form)."""
    field = str(exc.details.get("field", "form")) if isinstance(exc.details, dict) else "form"
    if field not in known:
        field = field.split(".")[0] if field.split(".")[0] in known else "form"
    return {field: error_text(request, exc)}


def retry(request: Request, ctx: Ctx, exc: DomainError, known: set[str], page: Callable[..., Response]) -> Response:
    """Undo the failed write and show the page again with the error."""
    ctx.session.rollback()
    status = exc.status_code if 400 <= exc.status_code < 500 else 400
    return page(errors=errors_of(request, exc, known), status_code=status)


def live_contents(ctx: Ctx) -> list[ContentItem]:
    """The workspace's content items that are not archived, by name (for the pickers)."""
    return list(
        ctx.session.scalars(
            select(ContentItem)
            .where(ContentItem.workspace_id == ctx.actor.workspace_id, ContentItem.archived_at.is_(None))
            .order_by(ContentItem.name)
        )
    )
